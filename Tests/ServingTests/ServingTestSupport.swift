import Foundation
import XCTest
import ForgeCore
import Inference
import Models
@testable import Serving

/// Paths of the fixtures the serving tests use (no copies: the tiny checkpoints of ModelTests and
/// the tokenizer of CLITests, plus Fixtures/tiny_chat.Q8_0.gguf from make_serving_fixtures.py).
enum ServingFixtures {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let tinyChatGGUF = repoRoot + "/Tests/ServingTests/Fixtures/tiny_chat.Q8_0.gguf"
    static let photo = repoRoot + "/seeds/images/blurred_wall_clock.jpg"
    static let otherPhoto = repoRoot + "/seeds/images/chelsea_cat.jpg"
    static let llavaTokenizerFolder = repoRoot + "/Tests/CLITests/Fixtures/tiny_llava_tokenizer"

    /// tiny_llava (config + weights) with the 300-id byte-level tokenizer, as one folder of symlinks.
    static func tinyLlavaFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("serving-tiny-llava-\(ProcessInfo.processInfo.processIdentifier)").path
        if FileManager.default.fileExists(atPath: folder + "/tokenizer.json") { return folder }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try? FileManager.default.createSymbolicLink(atPath: folder + "/" + file, withDestinationPath: repoRoot + "/Tests/ModelTests/Fixtures/tiny_llava/model/" + file)
        }
        try? FileManager.default.createSymbolicLink(atPath: folder + "/tokenizer.json", withDestinationPath: llavaTokenizerFolder + "/tokenizer.json")
        return folder
    }

    static func dataURL(_ path: String, mime: String = "image/jpeg") throws -> String {
        "data:\(mime);base64," + (try Data(contentsOf: URL(fileURLWithPath: path))).base64EncodedString()
    }

    static func llavaExpectedIDs() throws -> [Int] {
        let data = try Data(contentsOf: URL(fileURLWithPath: llavaTokenizerFolder + "/expected.json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (json["llava_hf_ids"] as! [NSNumber]).map(\.intValue)
    }

    static var binary: String {
        get throws {
            let candidates = [Bundle(for: BundleMarker.self).bundleURL.deletingLastPathComponent().path + "/llava-forge", repoRoot + "/.build/debug/llava-forge"]
            guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
                throw ForgeError(.io, "llava-forge binary not found (run `swift build --build-tests` first); looked at \(candidates)")
            }
            return found
        }
    }
}

final class BundleMarker {}

/// Greedy decode of a prepared prompt, the slow independent way: one TextGenerator, no cache, no
/// scheduler — the reference the server's answers must equal.
func referenceGreedy(_ model: ChatModel, _ turns: [ChatTurn], maxTokens: Int) throws -> GenerationResult {
    let prompt = try model.prepare(turns)
    let generator = TextGenerator(engine: model.engine, detokenize: { model.detokenize($0) })
    return try generator.generate(GenerationRequest(prompt: prompt.ids, maxTokens: min(maxTokens, model.maximumPositions - prompt.ids.count),
                                                    stopTokenIDs: model.stopTokenIDs, embeddingSplice: prompt.splice))
}

/// A decoder wrapper for tests: counts sequences per step, can hold every step at a gate, add a
/// delay, and keep chosen ids (EOS) from ever winning so a generation runs to max_tokens.
final class TestEngine: DecoderEngine, @unchecked Sendable {
    let base: DecoderEngine
    var delay: Double = 0
    var suppressed: Set<Int> = []
    private let lock = NSLock()
    private var gateClosed = false
    private let gate = NSCondition()
    private(set) var maxSequencesInAStep = 0
    private(set) var steps = 0
    /// Signalled whenever a step starts.
    let stepStarted = DispatchSemaphore(value: 0)

    init(_ base: DecoderEngine) { self.base = base }

    var config: LlamaConfig { base.config }
    var maximumPositions: Int { base.maximumPositions }
    func makeCache(capacity: Int) -> KVCache { base.makeCache(capacity: capacity) }
    func embedToken(_ id: Int, into out: UnsafeMutablePointer<Float>) { base.embedToken(id, into: out) }

    func closeGate() { gate.lock(); gateClosed = true; gate.unlock() }
    func openGate() { gate.lock(); gateClosed = false; gate.broadcast(); gate.unlock() }

    func step(_ sequences: [SequenceStep]) throws -> [[Float]] {
        lock.lock()
        maxSequencesInAStep = max(maxSequencesInAStep, sequences.count)
        steps += 1
        lock.unlock()
        stepStarted.signal()
        gate.lock()
        while gateClosed { gate.wait() }
        gate.unlock()
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        var rows = try base.step(sequences)
        if !suppressed.isEmpty {
            for i in rows.indices { for id in suppressed where id < rows[i].count { rows[i][id] = -.infinity } }
        }
        return rows
    }
}

/// An in-process server on an ephemeral loopback port; `stop()` cancels it.
final class RunningServer: @unchecked Sendable {
    let server: OpenAIServer
    let port: Int
    private let task: Task<Void, Never>

    init(service: ChatService, apiKey: String? = nil, maxRequestBytes: Int = 4 << 20) throws {
        var configuration = OpenAIServer.Configuration()
        configuration.port = 0
        configuration.apiKey = apiKey
        configuration.maxRequestBytes = maxRequestBytes
        let server = OpenAIServer(service: service, configuration: configuration)
        self.server = server
        let ready = DispatchSemaphore(value: 0)
        let box = PortBox()
        task = Task.detached {
            do {
                try await server.run(handleSignals: false, logLevel: .critical) { port in box.port = port; ready.signal() }
            } catch {
                box.error = "\(error)"
                ready.signal()
            }
        }
        guard ready.wait(timeout: .now() + 30) == .success, box.port > 0 else {
            throw ForgeError(.network, "test server did not start: \(box.error ?? "timeout")")
        }
        port = box.port
    }

    func stop() {
        task.cancel()
        let done = DispatchSemaphore(value: 0)
        let task = self.task
        Task.detached { await task.value; done.signal() }
        _ = done.wait(timeout: .now() + 10)
    }
}

private final class PortBox: @unchecked Sendable {
    var port = 0
    var error: String?
}

/// A minimal HTTP/1.1 client over a POSIX socket (loopback only): exact bytes out, raw bytes in,
/// so tests see status, headers and the body framing as a client would.
struct RawHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var error: [String: Any] { json["error"] as? [String: Any] ?? [:] }
    }

    static func connect(port: Int, timeout: Double = 60) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ForgeError(.network, "socket failed") }
        var tv = timeval()
        tv.tv_sec = Int(timeout)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else { close(fd); throw ForgeError(.network, "connect to 127.0.0.1:\(port) failed (errno \(errno))") }
        return fd
    }

    static func requestBytes(method: String, path: String, headers: [String: String] = [:], body: [UInt8]? = nil) -> [UInt8] {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        return Array(head.utf8) + (body ?? [])
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            sent += n
        }
    }

    static func readAll(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    static func request(port: Int, method: String = "POST", path: String, headers: [String: String] = [:], body: [UInt8]? = nil) throws -> Response {
        let fd = try connect(port: port)
        defer { close(fd) }
        var h = headers
        if body != nil && h["Content-Type"] == nil { h["Content-Type"] = "application/json" }
        send(fd, requestBytes(method: method, path: path, headers: h, body: body))
        return try parse(readAll(fd))
    }

    static func post(port: Int, _ json: String, key: String? = nil) throws -> Response {
        try request(port: port, path: "/v1/chat/completions", headers: key.map { ["Authorization": "Bearer \($0)"] } ?? [:], body: Array(json.utf8))
    }

    static func parse(_ raw: [UInt8]) throws -> Response {
        guard let split = raw.indices.first(where: { $0 + 3 < raw.count && raw[$0] == 13 && raw[$0 + 1] == 10 && raw[$0 + 2] == 13 && raw[$0 + 3] == 10 }) else {
            throw ForgeError(.network, "no HTTP header end in \(raw.count) bytes: \(String(decoding: raw.prefix(200), as: UTF8.self))")
        }
        let head = String(decoding: raw[..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let parts = head[0].split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw ForgeError(.network, "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[(split + 4)...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < data.count {
            guard let lineEnd = (i..<(data.count - 1)).first(where: { data[$0] == 13 && data[$0 + 1] == 10 }) else { break }
            let sizeText = String(decoding: data[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { break }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= data.count else { out += data[start...]; break }
            out += data[start..<(start + size)]
            i = start + size + 2
        }
        return out
    }

    /// The `data:` payloads of an SSE body, in order.
    static func events(_ body: String) -> [String] {
        body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
            event.hasPrefix("data: ") ? String(event.dropFirst(6)) : "<not data: \(event)>"
        }
    }
}

/// JSON text of a chat request body.
func chatBody(_ messages: [[String: Any]], _ extra: [String: Any] = [:]) -> String {
    var object: [String: Any] = ["model": "test", "messages": messages]
    for (k, v) in extra { object[k] = v }
    return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
}

/// Waits (polling, at most `timeout` s) until `condition` holds.
func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return condition()
}
