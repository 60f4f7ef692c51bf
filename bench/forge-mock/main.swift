// forge-mock: the test suite's loopback OpenAI mock as a process, for bench/generation_bench.sh.
//
//   forge-mock [--port N] [--latency-ms MS] [--rpm N --tpm N [--burst-seconds S] [--no-retry-after]]
//
// Listens on 127.0.0.1 only; prints `listening http://127.0.0.1:PORT/v1` on stdout, then serves
// until stdin closes or SIGTERM/SIGINT, and prints `requests N admitted N rejected N` on stderr.
import Foundation
import MockOpenAI
#if canImport(Glibc)
import Glibc
#endif

var port = 0
var latency = 0.0
var rpm: Double?
var tpm: Double?
var burst = 2.0
var retryAfter = true
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    func value() -> String {
        guard let v = args.next() else { FileHandle.standardError.write(Data("forge-mock: \(a) needs a value\n".utf8)); exit(64) }
        return v
    }
    switch a {
    case "--port": port = Int(value()) ?? 0
    case "--latency-ms": latency = (Double(value()) ?? 0) / 1000
    case "--rpm": rpm = Double(value())
    case "--tpm": tpm = Double(value())
    case "--burst-seconds": burst = Double(value()) ?? 2
    case "--no-retry-after": retryAfter = false
    case "--help", "-h":
        print("forge-mock [--port N] [--latency-ms MS] [--rpm N --tpm N [--burst-seconds S] [--no-retry-after]]")
        exit(0)
    default:
        FileHandle.standardError.write(Data("forge-mock: unknown option \(a)\n".utf8))
        exit(64)
    }
}

var limit: MockRateLimit?
if rpm != nil || tpm != nil {
    limit = MockRateLimit(requestsPerMinute: rpm ?? 1e9, tokensPerMinute: tpm ?? 1e12, burstSeconds: burst, sendRetryAfter: retryAfter)
}
let server: MockOpenAIServer
do {
    server = try MockOpenAIServer(recordRequests: false, port: port, handler: MockOpenAIServer.benchmarkHandler(latency: latency, limit: limit))
    try server.start()
} catch {
    FileHandle.standardError.write(Data("forge-mock: \(error)\n".utf8))
    exit(1)
}
print("listening \(server.baseURL)")
fflush(stdout)

signal(SIGTERM, SIG_IGN)
signal(SIGINT, SIG_IGN)
let stop = DispatchSemaphore(value: 0)
let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
    let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
    s.setEventHandler { stop.signal() }
    s.resume()
    return s
}
Thread.detachNewThread {
    while FileHandle.standardInput.availableData.count > 0 {}
    stop.signal()
}
stop.wait()
let counts = limit?.counts ?? (admitted: server.requestCount, rejected: 0)
FileHandle.standardError.write(Data("requests \(server.requestCount) admitted \(counts.admitted) rejected \(counts.rejected)\n".utf8))
_ = sources
exit(0)
