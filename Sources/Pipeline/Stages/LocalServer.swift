import ForgeCore
import Foundation

/// The generate stage's offline default: with no API configured, our own `llava-forge serve` with
/// a local GGUF (SmolLM2-135M-Instruct by default) on 127.0.0.1, reached over HTTP like any other
/// OpenAI-compatible server.
///
/// A server already answering `/health` on `LLAVA_FORGE_LOCAL_PORT` (default 8077) with the same
/// model name is used as it is and left running. Otherwise one is started (`serve --port 0`, the
/// port read from its first stdout line), shared by every generate stage of the process
/// (reference-counted leases), and stopped — SIGTERM, then SIGKILL after 10 s — when the last
/// lease is released, on failure too. The child exits by itself if this process dies
/// (`--exit-with-parent`).
public final class LocalServer: @unchecked Sendable {
    public static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"
    public static let defaultPort = 8077

    /// One user of a server; `release()` exactly once (further calls do nothing).
    public final class Lease: @unchecked Sendable {
        public let baseURL: String
        public let modelName: String
        private let onRelease: () -> Void
        private let lock = NSLock()
        private var released = false
        init(baseURL: String, modelName: String, onRelease: @escaping () -> Void) {
            self.baseURL = baseURL; self.modelName = modelName; self.onRelease = onRelease
        }
        public func release() {
            lock.lock()
            let first = !released
            released = true
            lock.unlock()
            if first { onRelease() }
        }
    }

    private static let registryLock = NSLock()
    private static var running: [String: LocalServer] = [:]

    let modelPath: String
    let modelName: String
    private var process: Process?
    private var port = 0
    private var users = 0
    private let stderrTail = OutputTail()

    private init(modelPath: String, modelName: String) {
        self.modelPath = modelPath
        self.modelName = modelName
    }

    /// The model file the generate stage uses when no API is configured: the stage's
    /// `local_model`, else `LLAVA_FORGE_LOCAL_MODEL`, else models/<default> beside the prompts
    /// folder (the checkout), else under the current directory.
    public static func modelPath(param: String?, environment: [String: String], promptsDir: String?) -> String {
        if let param, !param.isEmpty { return param }
        if let env = environment["LLAVA_FORGE_LOCAL_MODEL"], !env.isEmpty { return env }
        if let promptsDir {
            let root = ((promptsDir as NSString).standardizingPath as NSString).deletingLastPathComponent
            let candidate = (root as NSString).appendingPathComponent("models/" + defaultModelFile)
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
        }
        return FileManager.default.currentDirectoryPath + "/models/" + defaultModelFile
    }

    /// The name the local server gives its model (the file name without `.gguf`).
    public static func modelName(forPath path: String) -> String {
        ((path as NSString).lastPathComponent as NSString).deletingPathExtension
    }

    /// A lease on a running server for `modelPath`: an existing one on the well-known port, the
    /// one this process already started, or a new one.
    public static func acquire(modelPath: String, environment: [String: String], log: @escaping @Sendable (String) -> Void) throws -> Lease {
        guard FileManager.default.fileExists(atPath: modelPath) else {
            throw ForgeError(.config, "no LLM configured and the local model is missing: run `bash scripts/fetch_model.sh` (it downloads \(defaultModelFile) into models/), "
                             + "or set LLAVA_FORGE_BASE_URL and LLAVA_FORGE_MODEL (or --set base_url=URL --set model=NAME) to use an OpenAI-compatible server", file: modelPath)
        }
        let name = modelName(forPath: modelPath)
        let wellKnown = environment["LLAVA_FORGE_LOCAL_PORT"].flatMap(Int.init) ?? defaultPort
        if let health = HealthCheck.get(port: wellKnown, timeout: 1), health.status == 200, health.body.contains("\"model\":\(JSONText.quoted(name))") {
            log("using the local server already running on 127.0.0.1:\(wellKnown) (\(name))")
            return Lease(baseURL: "http://127.0.0.1:\(wellKnown)/v1", modelName: name, onRelease: {})
        }
        registryLock.lock()
        defer { registryLock.unlock() }
        let server = running[modelPath] ?? LocalServer(modelPath: modelPath, modelName: name)
        if server.process == nil {
            try server.start(environment: environment, log: log)
            running[modelPath] = server
        }
        server.users += 1
        let port = server.port
        return Lease(baseURL: "http://127.0.0.1:\(port)/v1", modelName: name) {
            registryLock.lock()
            defer { registryLock.unlock() }
            server.users -= 1
            if server.users == 0 {
                server.stop(log: log)
                running[modelPath] = nil
            }
        }
    }

    /// The llava-forge executable: `LLAVA_FORGE_EXECUTABLE`, this process when it is llava-forge,
    /// else a llava-forge next to this process's executable (tests run inside xctest).
    static func executable(environment: [String: String]) throws -> String {
        if let path = environment["LLAVA_FORGE_EXECUTABLE"], !path.isEmpty { return path }
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if (me as NSString).lastPathComponent == "llava-forge" { return me }
        var dir = (me as NSString).deletingLastPathComponent
        for _ in 0..<4 {
            let candidate = (dir as NSString).appendingPathComponent("llava-forge")
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        throw ForgeError(.config, "cannot find the llava-forge executable to start the local model server (set LLAVA_FORGE_EXECUTABLE)")
    }

    private func start(environment: [String: String], log: @escaping @Sendable (String) -> Void) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.executable(environment: environment))
        process.arguments = ["serve", "--model", modelPath, "--host", "127.0.0.1", "--port", "0", "--model-name", modelName,
                             "--max-concurrency", "8", "--queue", "256", "--shutdown-grace", "10", "--exit-with-parent", String(getpid())]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let tail = stderrTail
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { tail.append(data) }
        }
        do { try process.run() } catch {
            throw ForgeError(.io, "cannot start the local model server: \(error.localizedDescription)", file: process.executableURL?.path)
        }
        log("starting the local model server: \(modelName) (\(modelPath))")
        let started = Date()
        guard let line = Self.readLine(out.fileHandleForReading, timeout: 300), line.hasPrefix("listening on "),
              let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
            process.terminate()
            process.waitUntilExit()
            throw ForgeError(.network, "the local model server did not start: \(tail.text.isEmpty ? "no output" : tail.text)", file: modelPath)
        }
        // The rest of its stdout is not needed; keep the pipe drained.
        out.fileHandleForReading.readabilityHandler = { handle in if handle.availableData.isEmpty { handle.readabilityHandler = nil } }
        var healthy = false
        for _ in 0..<100 {
            if let h = HealthCheck.get(port: port, timeout: 2), h.status == 200 { healthy = true; break }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard healthy else {
            process.terminate()
            process.waitUntilExit()
            throw ForgeError(.network, "the local model server on port \(port) does not answer /health: \(tail.text)", file: modelPath)
        }
        log(String(format: "local model server ready on 127.0.0.1:%d (%.1f s)", port, Date().timeIntervalSince(started)))
        self.process = process
        self.port = port
    }

    private func stop(log: (String) -> Void) {
        guard let process, process.isRunning else { self.process = nil; return }
        process.terminate()  // SIGTERM: the server finishes what runs and exits 0
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        log("stopped the local model server (exit \(process.terminationStatus))")
        self.process = nil
    }

    /// One line from `handle`, waiting at most `timeout` seconds (nil at EOF or timeout).
    static func readLine(_ handle: FileHandle, timeout: Double) -> String? {
        let fd = handle.fileDescriptor
        var bytes: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 200)
            if ready < 0 && errno != EINTR { return nil }
            if ready <= 0 { continue }
            var byte: UInt8 = 0
            let n = read(fd, &byte, 1)
            if n <= 0 { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }
}

/// The last few KB of a child's stderr, for error messages.
final class OutputTail: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func append(_ d: Data) {
        lock.lock()
        data.append(d)
        if data.count > 4096 { data = data.suffix(4096) }
        lock.unlock()
    }
    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// `GET /health` on 127.0.0.1 over a plain socket (HTTP/1.0, connection closed by the server).
enum HealthCheck {
    static func get(port: Int, timeout: Double) -> (status: Int, body: String)? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval()
        tv.tv_sec = max(1, Int(timeout.rounded(.up)))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = Array("GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 65536 {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1."), let status = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }
}
