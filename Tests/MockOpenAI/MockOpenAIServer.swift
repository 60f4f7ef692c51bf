import ForgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A loopback HTTP/1.1 server that speaks enough of the OpenAI API for tests, with fault
/// injection: every request goes to `handler`, whose `Action` says how to answer — a response
/// (optionally delayed), a connection reset, a stall, or raw bytes.
///
/// Listens on 127.0.0.1 only, on an ephemeral port chosen at `init`. One thread per connection;
/// connections are kept alive until the client closes them, `Connection: close`, or `stop()`.
/// Request bodies need a `Content-Length`; `Expect: 100-continue` is answered with
/// `100 Continue`.
public final class MockOpenAIServer: @unchecked Sendable {
    /// One request as received (header names lowercased).
    public struct Request {
        public var method: String
        public var path: String
        public var headers: [String: String]
        public var body: Data
        /// The body parsed as a JSON object, when it is one (parsed on each access: handlers
        /// that only need sizes stay cheap).
        public var json: [String: Any]? {
            body.isEmpty ? nil : (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        }

        public init(method: String, path: String, headers: [String: String], body: Data) {
            self.method = method
            self.path = path
            self.headers = headers
            self.body = body
        }
    }

    /// How to answer one request.
    public enum Action {
        /// Answer after `delay` seconds. `Content-Length` is computed unless `headers` sets it;
        /// `Content-Type` defaults to `application/json`.
        case respond(status: Int, headers: [String: String], body: Data, delay: Double = 0)
        /// Reset the connection (RST) without answering.
        case closeConnection
        /// Answer nothing; close the connection after `seconds` (sooner if the client gives up).
        case stall(seconds: Double)
        /// Write these bytes as they are, then close the connection.
        case rawBytes(Data)
    }

    private let handler: @Sendable (Request) -> Action
    /// Keep every request for `receivedRequests` (turn off for long benchmarks: only counted).
    private let recordRequests: Bool
    private var requestTotal = 0
    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private var boundPort = 0
    private var started = false
    private var stopped = false
    private var openConnections: Set<Int32> = []
    private var requests: [Request] = []
    private var accepted = 0
    private let acceptLoopDone = DispatchSemaphore(value: 0)
    private let connectionThreads = DispatchGroup()

    /// Creates the listening socket on 127.0.0.1 with an ephemeral port; `start()` serves it.
    public init(recordRequests: Bool = true, port: Int = 0,
                handler: @escaping @Sendable (Request) -> Action = MockOpenAIServer.defaultHandler) throws {
        self.handler = handler
        self.recordRequests = recordRequests
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ForgeError(.network, "mock server: socket() failed: \(Self.errnoText())") }
        var yes: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1024) == 0 else {
            let text = Self.errnoText()
            close(fd)
            throw ForgeError(.network, "mock server: bind/listen on 127.0.0.1 failed: \(text)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listenFD = fd
        boundPort = Int(UInt16(bigEndian: actual.sin_port))
    }

    deinit { stop() }

    public var port: Int { boundPort }
    public var baseURL: String { "http://127.0.0.1:\(port)/v1" }

    /// Every request received so far, in arrival order (a copy).
    public var receivedRequests: [Request] {
        lock.lock(); defer { lock.unlock() }
        return requests
    }

    public var requestCount: Int {
        lock.lock(); defer { lock.unlock() }
        return requestTotal
    }

    /// TCP connections accepted so far (to check connection reuse).
    public var connectionCount: Int {
        lock.lock(); defer { lock.unlock() }
        return accepted
    }

    /// Starts accepting connections on a background thread.
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { throw ForgeError(.usage, "mock server: start() after stop()") }
        guard !started else { return }
        started = true
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Closes the listener and every connection, and waits (briefly) for the threads to finish.
    /// The port then refuses connections.
    public func stop() {
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        let wasStarted = started
        for fd in openConnections { shutdown(fd, Int32(SHUT_RDWR)) }
        if !wasStarted, listenFD >= 0 {
            close(listenFD)
            listenFD = -1
        }
        lock.unlock()
        if wasStarted {
            _ = acceptLoopDone.wait(timeout: .now() + 5)
            _ = connectionThreads.wait(timeout: .now() + 5)
        }
    }

    // MARK: - Canned answers

    /// 200 with a valid `chat.completion` body.
    public static func completion(content: String, finishReason: String = "stop", promptTokens: Int = 10,
                                  completionTokens: Int = 20, headers: [String: String] = [:]) -> Action {
        let object: [String: Any] = [
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "mock-model",
            "choices": [[
                "index": 0,
                "message": ["role": "assistant", "content": content],
                "finish_reason": finishReason,
            ] as [String: Any]],
            "usage": [
                "prompt_tokens": promptTokens,
                "completion_tokens": completionTokens,
                "total_tokens": promptTokens + completionTokens,
            ],
        ]
        return .respond(status: 200, headers: headers, body: jsonData(object))
    }

    /// An OpenAI-style error: `{"error": {"message", "type", "param": null, "code"}}`.
    public static func error(status: Int, message: String, type: String = "invalid_request_error", code: String? = nil,
                             headers: [String: String] = [:]) -> Action {
        let object: [String: Any] = [
            "error": [
                "message": message,
                "type": type,
                "param": NSNull(),
                "code": code.map { $0 as Any } ?? NSNull(),
            ] as [String: Any],
        ]
        return .respond(status: status, headers: headers, body: jsonData(object))
    }

    /// An HTML error page, as a proxy in front of the API sends for 502/503/504.
    public static func html(status: Int) -> Action {
        let title = "\(status) \(reasonPhrase(status))"
        let page = """
        <html>
        <head><title>\(title)</title></head>
        <body>
        <center><h1>\(title)</h1></center>
        <hr><center>nginx</center>
        </body>
        </html>
        """
        return .respond(status: status, headers: ["Content-Type": "text/html"], body: Data(page.utf8))
    }

    /// `GET /v1/models` → a one-model list; `POST /v1/chat/completions` → a completion whose
    /// content is `echo: ` plus the first 40 characters of the last user message; anything else
    /// → 404.
    public static let defaultHandler: @Sendable (Request) -> Action = { request in
        switch (request.method, request.path) {
        case ("GET", "/v1/models"):
            let list: [String: Any] = [
                "object": "list",
                "data": [["id": "mock-model", "object": "model", "created": 1_700_000_000, "owned_by": "mock"]],
            ]
            return .respond(status: 200, headers: [:], body: jsonData(list))
        case ("POST", "/v1/chat/completions"):
            guard let messages = request.json?["messages"] as? [[String: Any]] else {
                return error(status: 400, message: "'messages' is a required property")
            }
            let lastUser = messages.last { ($0["role"] as? String) == "user" }
            var text = ""
            switch lastUser?["content"] {
            case let s as String: text = s
            case let parts as [[String: Any]]: text = parts.compactMap { $0["text"] as? String }.joined()
            default: break
            }
            return completion(content: "echo: " + String(text.prefix(40)))
        default:
            return error(status: 404, message: "Unknown request URL: \(request.method) \(request.path)", code: "unknown_url")
        }
    }

    // MARK: - Serving

    private func acceptLoop() {
        defer {
            lock.lock()
            if listenFD >= 0 { close(listenFD); listenFD = -1 }
            lock.unlock()
            acceptLoopDone.signal()
        }
        let fd = listenFD
        while true {
            if isStopped { return }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 50)
            if ready < 0 && errno != EINTR { return }
            if ready <= 0 { continue }
            let conn = accept(fd, nil, nil)
            if conn < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EAGAIN { continue }
                return
            }
            var one: Int32 = 1
            _ = setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            lock.lock()
            if stopped {
                lock.unlock()
                close(conn)
                return
            }
            openConnections.insert(conn)
            accepted += 1
            connectionThreads.enter()
            lock.unlock()
            let thread = Thread { [self] in
                serve(conn)
                connectionThreads.leave()
            }
            thread.start()
        }
    }

    private var isStopped: Bool {
        lock.lock(); defer { lock.unlock() }
        return stopped
    }

    /// Serves requests on one connection until it closes; then closes the descriptor (under the
    /// lock, so `stop()` never touches a reused descriptor number).
    private func serve(_ fd: Int32) {
        var reset = false
        defer {
            lock.lock()
            if reset {
                var lg = linger(l_onoff: 1, l_linger: 0)
                _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, socklen_t(MemoryLayout<linger>.size))
            }
            openConnections.remove(fd)
            close(fd)
            lock.unlock()
        }
        var pending = [UInt8]()
        pending.reserveCapacity(64 * 1024)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            guard let head = readHead(fd, &pending, &chunk) else { return }
            guard let parsed = Self.parseHead(head) else {
                _ = sendAll(fd, Self.responseBytes(status: 400, headers: [:], body: Data("bad request".utf8), close: true))
                return
            }
            if parsed.headers["transfer-encoding"] != nil {
                _ = sendAll(fd, Self.responseBytes(status: 501, headers: [:], body: Data("chunked bodies are not supported".utf8), close: true))
                return
            }
            let length = Int(parsed.headers["content-length"]?.trimmingCharacters(in: .whitespaces) ?? "0") ?? -1
            guard length >= 0, length <= 256 << 20 else {
                _ = sendAll(fd, Self.responseBytes(status: 400, headers: [:], body: Data("bad Content-Length".utf8), close: true))
                return
            }
            if parsed.headers["expect"]?.lowercased() == "100-continue", pending.count < length {
                guard sendAll(fd, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return }
            }
            while pending.count < length {
                guard readSome(fd, &pending, &chunk) else { return }
            }
            let body = Data(pending[0..<length])
            pending.removeFirst(length)
            let request = Request(method: parsed.method, path: parsed.path, headers: parsed.headers, body: body)
            lock.lock()
            requestTotal += 1
            if recordRequests { requests.append(request) }
            lock.unlock()

            let wantsClose = parsed.headers["connection"]?.lowercased() == "close" || parsed.version == "HTTP/1.0"
            switch handler(request) {
            case .respond(let status, let headers, let body, let delay):
                if delay > 0, !sleepUnlessStopped(delay) { return }
                let bytes = Self.responseBytes(status: status, headers: headers, body: body, close: wantsClose)
                guard sendAll(fd, bytes), !wantsClose else { return }
            case .closeConnection:
                reset = true
                return
            case .stall(let seconds):
                waitForPeerClose(fd, upTo: seconds)
                return
            case .rawBytes(let data):
                _ = sendAll(fd, Array(data))
                return
            }
        }
    }

    /// Reads until a blank line ends the request head; returns the head (without the blank
    /// line) and leaves what follows in `pending`. Nil on EOF, error, stop or an oversized head.
    private func readHead(_ fd: Int32, _ pending: inout [UInt8], _ chunk: inout [UInt8]) -> [UInt8]? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var searchFrom = 0
        while true {
            if pending.count >= 4 {
                let found: Int? = pending.withUnsafeBufferPointer { p in
                    var i = searchFrom
                    while i + 4 <= p.count {
                        if p[i] == 13, p[i + 1] == 10, p[i + 2] == 13, p[i + 3] == 10 { return i }
                        i += 1
                    }
                    return nil
                }
                if let i = found {
                    let head = Array(pending[0..<i])
                    pending.removeFirst(i + terminator.count)
                    return head
                }
                searchFrom = max(0, pending.count - 3)
            }
            if pending.count > 1 << 20 { return nil }
            guard readSome(fd, &pending, &chunk) else { return nil }
            // A TLS ClientHello (record type 0x16) on this plain-HTTP port: answer in plain
            // text and close, as a misconfigured server would; the client reports a TLS error.
            if pending.first == 0x16 {
                _ = sendAll(fd, Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8))
                return nil
            }
        }
    }

    /// Appends what is available (waiting for it); false on EOF, error or stop.
    private func readSome(_ fd: Int32, _ pending: inout [UInt8], _ chunk: inout [UInt8]) -> Bool {
        while true {
            if isStopped { return false }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 50)
            if ready < 0 { if errno == EINTR { continue } else { return false } }
            if ready == 0 { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                chunk.withUnsafeBufferPointer { pending.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<n])) }
                return true
            }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            return false
        }
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += n
        }
        return true
    }

    /// Sleeps in small steps; false if the server was stopped meanwhile.
    private func sleepUnlessStopped(_ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if isStopped { return false }
            Thread.sleep(forTimeInterval: min(0.01, max(0, deadline.timeIntervalSinceNow)))
        }
        return !isStopped
    }

    /// Waits until `seconds` pass, the peer closes, or the server stops; never answers.
    private func waitForPeerClose(_ fd: Int32, upTo seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        var scratch = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline, !isStopped {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 20)
            if ready > 0 {
                let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n == 0 { return }  // peer closed
                if n < 0 && errno != EAGAIN && errno != EINTR { return }
            }
        }
    }

    // MARK: - HTTP text

    struct Head {
        var method: String
        var path: String
        var version: String
        var headers: [String: String]
    }

    static func parseHead(_ bytes: [UInt8]) -> Head? {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count == 3 else { return nil }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + ", " + value } ?? value
        }
        return Head(method: String(requestLine[0]), path: String(requestLine[1]), version: String(requestLine[2]), headers: headers)
    }

    static func responseBytes(status: Int, headers: [String: String], body: Data, close: Bool) -> [UInt8] {
        var fields: [(String, String)] = []
        let custom = Set(headers.keys.map { $0.lowercased() })
        if !custom.contains("content-type") { fields.append(("Content-Type", "application/json")) }
        if !custom.contains("content-length") { fields.append(("Content-Length", String(body.count))) }
        if !custom.contains("connection") { fields.append(("Connection", close ? "close" : "keep-alive")) }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { fields.append((name, value)) }
        var text = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
        for (name, value) in fields { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + Array(body)
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 422: return "Unprocessable Entity"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status \(status)"
        }
    }

    static func jsonData(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
