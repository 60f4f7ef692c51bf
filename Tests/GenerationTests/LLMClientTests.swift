import ForgeCore
import Foundation
import LLMClient
import MockOpenAI
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A counter handlers can share across connection threads.
private final class RequestCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    /// The number of calls before this one (0 for the first).
    func next() -> Int {
        lock.lock(); defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

final class LLMClientTests: XCTestCase {
    private let secretKey = "sk-test-SECRET-0123456789abcdef"

    private func startServer(_ handler: @escaping @Sendable (MockOpenAIServer.Request) -> MockOpenAIServer.Action = MockOpenAIServer.defaultHandler) throws -> MockOpenAIServer {
        let server = try MockOpenAIServer(handler: handler)
        try server.start()
        addTeardownBlock { server.stop() }
        return server
    }

    private func client(_ baseURL: String, key: String? = nil, maxRetries: Int = 3, requestTimeout: Double = 5) throws -> OpenAIClient {
        try OpenAIClient(config: ClientConfig(baseURL: baseURL, apiKey: key, connectTimeout: 2, requestTimeout: requestTimeout,
                                              maxRetries: maxRetries, backoffBase: 0.01, backoffCap: 0.05))
    }

    private func request(_ text: String = "Describe the image.") -> ChatRequest {
        ChatRequest(model: "gpt-4-0613", messages: [.system("You are a helpful assistant."), .user(text)],
                    params: SamplingParams(temperature: 0.7, maxTokens: 256))
    }

    private func expectFailure<T>(_ result: Result<T, LLMError>, file: StaticString = #filePath, line: UInt = #line) -> LLMError? {
        switch result {
        case .success(let value):
            XCTFail("expected a failure, got \(value)", file: file, line: line)
            return nil
        case .failure(let error):
            return error
        }
    }

    // MARK: - Request body

    func testBodyJSONIsCanonical() throws {
        let req = ChatRequest(
            model: "gpt-4-0613",
            messages: [.system("You are \"helpful\".\n"), .user("Caf\u{e9} \\ tab\t ctl\u{01} /")],
            params: SamplingParams(temperature: 0.7, topP: 1.0, maxTokens: 256, seed: 42, stop: ["\n\n", "END"]))
        let expected = #"{"model":"gpt-4-0613","messages":[{"role":"system","content":"You are \"helpful\".\n"},"#
            + #"{"role":"user","content":"Café \\ tab\t ctl\u0001 /"}],"temperature":0.7,"top_p":1.0,"max_tokens":256,"#
            + #""seed":42,"stop":["\n\n","END"],"stream":false}"#
        XCTAssertEqual(String(decoding: req.bodyJSON(), as: UTF8.self), expected)
        XCTAssertEqual(req.bodyJSON(), req.bodyJSON())

        // Same values set in another order → same bytes.
        var params = SamplingParams()
        params.stop = ["\n\n", "END"]
        params.seed = 42
        params.maxTokens = 256
        params.topP = 1.0
        params.temperature = 0.7
        XCTAssertEqual(ChatRequest(model: req.model, messages: req.messages, params: params).bodyJSON(), req.bodyJSON())

        // Only non-nil parameters; integral doubles keep a decimal point.
        let minimal = ChatRequest(model: "m", messages: [.user("hi")])
        XCTAssertEqual(String(decoding: minimal.bodyJSON(), as: UTF8.self),
                       #"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#)
        let zero = ChatRequest(model: "m", messages: [.user("hi")], params: SamplingParams(temperature: 0, seed: -1))
        XCTAssertEqual(String(decoding: zero.bodyJSON(), as: UTF8.self),
                       #"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.0,"seed":-1,"stream":false}"#)

        // It is valid JSON that round-trips the text.
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: req.bodyJSON()) as? [String: Any])
        let messages = try XCTUnwrap(parsed["messages"] as? [[String: Any]])
        XCTAssertEqual(messages[1]["content"] as? String, "Caf\u{e9} \\ tab\t ctl\u{01} /")
        XCTAssertEqual(parsed["stream"] as? Bool, false)

        // SamplingParams' Codable keys are the API's.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        XCTAssertEqual(String(decoding: try encoder.encode(SamplingParams(temperature: 0.5, topP: 0.9, maxTokens: 3, seed: 1, stop: ["x"])), as: UTF8.self),
                       #"{"max_tokens":3,"seed":1,"stop":["x"],"temperature":0.5,"top_p":0.9}"#)
    }

    // MARK: - Success

    func testSuccessParsesResultAndSendsExactRequest() throws {
        let server = try startServer { _ in
            MockOpenAIServer.completion(content: "A cat sits on a red mat.", finishReason: "length", promptTokens: 123,
                                        completionTokens: 45, headers: ["X-Request-ID": "req-abc", "OpenAI-Processing-Ms": "12"])
        }
        let req = request()
        let result = try client(server.baseURL, key: secretKey).complete(req).get()
        XCTAssertEqual(result.content, "A cat sits on a red mat.")
        XCTAssertEqual(result.finishReason, "length")
        XCTAssertEqual(result.promptTokens, 123)
        XCTAssertEqual(result.completionTokens, 45)
        XCTAssertEqual(result.httpStatus, 200)
        XCTAssertEqual(result.responseID, "chatcmpl-mock")
        XCTAssertEqual(result.headers["x-request-id"], "req-abc")
        XCTAssertEqual(result.headers["openai-processing-ms"], "12")
        XCTAssertEqual(result.headers["content-type"], "application/json")
        XCTAssertGreaterThan(result.latencyMs, 0)

        let received = server.receivedRequests
        XCTAssertEqual(received.count, 1)
        let sent = try XCTUnwrap(received.first)
        XCTAssertEqual(sent.method, "POST")
        XCTAssertEqual(sent.path, "/v1/chat/completions")
        XCTAssertEqual(sent.headers["authorization"], "Bearer \(secretKey)")
        XCTAssertEqual(sent.headers["content-type"], "application/json")
        XCTAssertNil(sent.headers["expect"])
        XCTAssertEqual(sent.body, req.bodyJSON())
        XCTAssertEqual(sent.json?["model"] as? String, "gpt-4-0613")
    }

    func testNoAuthorizationHeaderWithoutKey() throws {
        let server = try startServer()
        for key in [nil, ""] as [String?] {
            let result = try client(server.baseURL, key: key).complete(request("hello there")).get()
            XCTAssertEqual(result.content, "echo: hello there")
        }
        XCTAssertEqual(server.receivedRequests.count, 2)
        for sent in server.receivedRequests { XCTAssertNil(sent.headers["authorization"]) }
    }

    func testLargeBodyIsSentWithoutExpectContinue() throws {
        let server = try startServer()
        let big = String(repeating: "0123456789", count: 200_000)  // 2 MB: curl would add Expect: 100-continue
        let req = request(big)
        let result = try client(server.baseURL).complete(req).get()
        XCTAssertEqual(result.content, "echo: " + String(big.prefix(40)))
        let sent = try XCTUnwrap(server.receivedRequests.first)
        XCTAssertNil(sent.headers["expect"])
        XCTAssertEqual(sent.body, req.bodyJSON())
    }

    func testConnectionIsReused() throws {
        let server = try startServer()
        let c = try client(server.baseURL)
        for i in 0..<5 {
            XCTAssertEqual(try c.complete(request("call \(i)")).get().content, "echo: call \(i)")
        }
        XCTAssertEqual(server.requestCount, 5)
        XCTAssertEqual(server.connectionCount, 1)
    }

    func testListModels() throws {
        let server = try startServer()
        XCTAssertEqual(try client(server.baseURL, key: secretKey).listModels().get(), ["mock-model"])
        let sent = try XCTUnwrap(server.receivedRequests.first)
        XCTAssertEqual(sent.method, "GET")
        XCTAssertEqual(sent.path, "/v1/models")
        XCTAssertEqual(sent.headers["authorization"], "Bearer \(secretKey)")
    }

    // MARK: - Retries

    func testHTML500ThenSuccessIsRetried() throws {
        let counter = RequestCounter()
        let server = try startServer { req in
            counter.next() == 0 ? MockOpenAIServer.html(status: 500) : MockOpenAIServer.defaultHandler(req)
        }
        let result = try client(server.baseURL).complete(request("after a 500")).get()
        XCTAssertEqual(result.content, "echo: after a 500")
        XCTAssertEqual(server.requestCount, 2)
    }

    func testHTML502AfterRetriesExhaustedIsHTTPErrorWithPageText() throws {
        let server = try startServer { _ in MockOpenAIServer.html(status: 502) }
        let error = expectFailure(try client(server.baseURL, maxRetries: 2).complete(request()))
        guard case .http(let status, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(status, 502)
        XCTAssertEqual(message, "502 Bad Gateway 502 Bad Gateway nginx")
        XCTAssertEqual(server.requestCount, 3)
    }

    func testRetryAfterIsHonored() throws {
        let counter = RequestCounter()
        let server = try startServer { req in
            counter.next() == 0
                ? MockOpenAIServer.error(status: 429, message: "Rate limit reached for requests", type: "requests",
                                         code: "rate_limit_exceeded", headers: ["Retry-After": "1"])
                : MockOpenAIServer.defaultHandler(req)
        }
        let started = Date()
        let result = try client(server.baseURL).complete(request("patience")).get()
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(result.content, "echo: patience")
        XCTAssertEqual(server.requestCount, 2)
        XCTAssertGreaterThanOrEqual(elapsed, 0.95)
        XCTAssertLessThan(elapsed, 3)
    }

    func testRetryAfterMsIsHonoredAndReported() throws {
        let counter = RequestCounter()
        let server = try startServer { req in
            counter.next() == 0
                ? MockOpenAIServer.error(status: 429, message: "Slow down", type: "requests", headers: ["retry-after-ms": "300"])
                : MockOpenAIServer.defaultHandler(req)
        }
        let started = Date()
        XCTAssertEqual(try client(server.baseURL).complete(request("ms")).get().content, "echo: ms")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.28)

        // With no retries left, the error carries the requested delay.
        let limited = try startServer { _ in
            MockOpenAIServer.error(status: 429, message: "Slow down", type: "requests", headers: ["retry-after-ms": "200"])
        }
        let error = expectFailure(try client(limited.baseURL, maxRetries: 0).complete(request()))
        guard case .http(429, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue(message.hasPrefix("Slow down"))
        XCTAssertEqual(error?.retryAfterSeconds, 0.2)
        XCTAssertEqual(error?.isRetryable, true)
        XCTAssertEqual(limited.requestCount, 1)
    }

    func testInsufficientQuotaIsNotRetried() throws {
        for (type, code) in [("insufficient_quota", "insufficient_quota"), ("billing_error", "billing_hard_limit_reached")] {
            let message = "You exceeded your current quota, please check your plan and billing details."
            let server = try startServer { _ in MockOpenAIServer.error(status: 429, message: message, type: type, code: code) }
            let error = expectFailure(try client(server.baseURL).complete(request()))
            XCTAssertEqual(error, .quotaExhausted(message: message))
            XCTAssertEqual(error?.isRetryable, false)
            XCTAssertEqual(server.requestCount, 1)
        }
    }

    func testClientErrorsAreNotRetried() throws {
        let cases: [(Int, String, String)] = [
            (401, "Incorrect API key provided: sk-abc***xyz. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_api_key"),
            (404, "The model `gpt-9` does not exist or you do not have access to it.", "model_not_found"),
            (400, "'messages' must contain at least one message", "invalid_value"),
        ]
        for (status, message, code) in cases {
            let server = try startServer { _ in MockOpenAIServer.error(status: status, message: message, code: code) }
            let error = expectFailure(try client(server.baseURL).complete(request()))
            XCTAssertEqual(error, .http(status: status, message: message))
            XCTAssertEqual(error?.isRetryable, false)
            XCTAssertNil(error?.retryAfterSeconds)
            XCTAssertEqual(server.requestCount, 1, "status \(status)")
        }
    }

    func testConnectionResetIsRetried() throws {
        let counter = RequestCounter()
        let server = try startServer { req in
            counter.next() == 0 ? .closeConnection : MockOpenAIServer.defaultHandler(req)
        }
        XCTAssertEqual(try client(server.baseURL).complete(request("again")).get().content, "echo: again")
        XCTAssertEqual(server.requestCount, 2)

        // Resets every time → a transport error once the retries are spent.
        let broken = try startServer { _ in .closeConnection }
        let error = expectFailure(try client(broken.baseURL, maxRetries: 1).complete(request()))
        guard case .transport(let code, _)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertTrue([52, 55, 56].contains(code), "curl code \(code)")
        XCTAssertEqual(broken.requestCount, 2)
    }

    func testStallPastRequestTimeoutIsTransportTimeout() throws {
        let server = try startServer { _ in .stall(seconds: 5) }
        let started = Date()
        let error = expectFailure(try client(server.baseURL, maxRetries: 1, requestTimeout: 0.5).complete(request()))
        let elapsed = Date().timeIntervalSince(started)
        guard case .transport(let code, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(code, 28)  // CURLE_OPERATION_TIMEDOUT
        XCTAssertTrue(message.lowercased().contains("timed out"), message)
        XCTAssertEqual(error?.isRetryable, true)
        XCTAssertEqual(server.requestCount, 2)
        XCTAssertGreaterThanOrEqual(elapsed, 0.95)
        XCTAssertLessThan(elapsed, 3)
    }

    // MARK: - Bad answers and unreachable servers

    func testMalformedSuccessResponses() throws {
        let bodies = [
            "this is not JSON",
            #"{"object":"chat.completion","choices":[]}"#,
            #"{"object":"list","data":[]}"#,
            #"{"choices":[{"index":0,"finish_reason":"stop"}]}"#,
        ]
        for body in bodies {
            let server = try startServer { _ in .respond(status: 200, headers: [:], body: Data(body.utf8)) }
            let error = expectFailure(try client(server.baseURL).complete(request()))
            guard case .malformedResponse? = error else { XCTFail("\(body): got \(String(describing: error))"); continue }
            XCTAssertEqual(error?.isRetryable, false)
            XCTAssertEqual(server.requestCount, 1)
        }
    }

    func testTruncatedResponseIsTransportError() throws {
        // Claims 100 bytes, sends 10, closes: curl reports a partial file (18).
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"choices\""
        let server = try startServer { _ in .rawBytes(Data(raw.utf8)) }
        let error = expectFailure(try client(server.baseURL, maxRetries: 1).complete(request()))
        guard case .transport(let code, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(code, 18)  // CURLE_PARTIAL_FILE
        XCTAssertTrue(message.contains("90 bytes"), message)
        XCTAssertEqual(server.requestCount, 2)
    }

    func testConnectionRefusedIsTransportError() throws {
        let server = try MockOpenAIServer()
        let baseURL = server.baseURL
        server.stop()  // the port is now closed
        let started = Date()
        let error = expectFailure(try client(baseURL, maxRetries: 1).complete(request()))
        guard case .transport(let code, let message)? = error else { return XCTFail("got \(String(describing: error))") }
        XCTAssertEqual(code, 7)  // CURLE_COULDNT_CONNECT
        XCTAssertFalse(message.isEmpty)
        XCTAssertEqual(error?.isRetryable, true)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testBadBaseURLIsConfigError() {
        for url in ["", "not a url", "ftp://example.com/v1", "http:///v1", "http://example.com/v1?x=1"] {
            XCTAssertThrowsError(try OpenAIClient(config: ClientConfig(baseURL: url)), url) { error in
                XCTAssertEqual((error as? ForgeError)?.kind, .config, url)
            }
        }
        XCTAssertNoThrow(try OpenAIClient(config: ClientConfig(baseURL: "https://api.openai.com/v1/")))
    }

    func testMockAnswersExpectContinue() throws {
        let server = try startServer()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(server.port).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        func sendText(_ text: String) { _ = text.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }
        func receive(until marker: String) -> String {
            var text = ""
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !text.contains(marker) {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                text += String(decoding: buffer[0..<n], as: UTF8.self)
            }
            return text
        }
        let body = #"{"model":"m","messages":[{"role":"user","content":"continue"}]}"#
        sendText("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             + "Content-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n")
        XCTAssertTrue(receive(until: "\r\n\r\n").hasPrefix("HTTP/1.1 100 Continue\r\n"))
        sendText(body)
        let response = receive(until: "echo: continue")
        XCTAssertTrue(response.hasPrefix("HTTP/1.1 200 OK\r\n"), response)
        XCTAssertTrue(response.contains("echo: continue"), response)
        XCTAssertEqual(server.receivedRequests.first?.headers["expect"], "100-continue")
    }

    // MARK: - Concurrency

    func testConcurrentCallsFrom16Threads() throws {
        let server = try startServer()
        let c = try client(server.baseURL, key: secretKey)
        final class Outcomes: @unchecked Sendable {
            let lock = NSLock()
            var byText: [String: Result<ChatResult, LLMError>] = [:]
        }
        let collected = Outcomes()
        let group = DispatchGroup()
        for t in 0..<16 {
            group.enter()
            Thread {
                for i in 0..<4 {
                    let text = "thread \(t) call \(i)"
                    let result = c.complete(self.request(text))
                    collected.lock.lock()
                    collected.byText[text] = result
                    collected.lock.unlock()
                }
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 20), .success)
        collected.lock.lock(); defer { collected.lock.unlock() }
        XCTAssertEqual(collected.byText.count, 64)
        for (text, result) in collected.byText {
            XCTAssertEqual(try result.get().content, "echo: " + text)
        }
        XCTAssertEqual(server.requestCount, 64)
        XCTAssertLessThanOrEqual(server.connectionCount, 16)
    }

    // MARK: - Secrets

    func testKeyNeverAppearsInErrors() throws {
        // A server that echoes the Authorization header back in every kind of failure.
        let counter = RequestCounter()
        let server = try startServer { req in
            let auth = req.headers["authorization"] ?? ""
            switch counter.next() {
            case 0: return MockOpenAIServer.error(status: 401, message: "Incorrect API key provided: \(auth)", code: "invalid_api_key")
            case 1: return .respond(status: 503, headers: ["Content-Type": "text/html"], body: Data("<html><body>down for \(auth)</body></html>".utf8))
            case 2: return .respond(status: 200, headers: [:], body: Data("not json \(auth)".utf8))
            default: return MockOpenAIServer.error(status: 429, message: "quota for \(auth)", type: "insufficient_quota", code: "insufficient_quota")
            }
        }
        let c = try client(server.baseURL, key: secretKey, maxRetries: 0)
        var descriptions: [String] = []
        for _ in 0..<4 {
            if let error = expectFailure(c.complete(request())) {
                descriptions.append(error.description)
                descriptions.append(String(reflecting: error))
            }
        }
        let refused = try MockOpenAIServer()
        let closedURL = refused.baseURL
        refused.stop()
        if let error = expectFailure(try client(closedURL, key: secretKey, maxRetries: 0).complete(request())) {
            descriptions.append(error.description)
        }
        let config = ClientConfig(baseURL: server.baseURL, apiKey: secretKey)
        descriptions.append("\(config)")
        descriptions.append(String(reflecting: config))
        var dumped = ""
        dump(config, to: &dumped)
        descriptions.append(dumped)

        XCTAssertEqual(descriptions.count, 12)
        for text in descriptions {
            XCTAssertFalse(text.contains(secretKey), text)
            XCTAssertFalse(text.contains("SECRET"), text)
        }
        XCTAssertTrue(descriptions[0].contains("<redacted>"), descriptions[0])
    }

    // MARK: - Classification and key resolution

    func testErrorClassification() {
        XCTAssertTrue(LLMError.transport(code: 7, message: "").isRetryable)   // couldn't connect
        XCTAssertTrue(LLMError.transport(code: 6, message: "").isRetryable)   // DNS
        XCTAssertTrue(LLMError.transport(code: 28, message: "").isRetryable)  // timeout
        XCTAssertTrue(LLMError.transport(code: 35, message: "").isRetryable)  // TLS handshake
        XCTAssertFalse(LLMError.transport(code: 1, message: "").isRetryable)  // unsupported protocol
        XCTAssertFalse(LLMError.transport(code: 3, message: "").isRetryable)  // bad URL
        XCTAssertFalse(LLMError.transport(code: 60, message: "").isRetryable) // certificate rejected
        for status in [408, 409, 429, 500, 502, 503, 504] {
            XCTAssertTrue(LLMError.http(status: status, message: "").isRetryable, "\(status)")
        }
        for status in [400, 401, 403, 404, 422] {
            XCTAssertFalse(LLMError.http(status: status, message: "").isRetryable, "\(status)")
        }
        XCTAssertFalse(LLMError.quotaExhausted(message: "").isRetryable)
        XCTAssertFalse(LLMError.malformedResponse(message: "").isRetryable)
        XCTAssertNil(LLMError.http(status: 429, message: "Slow down").retryAfterSeconds)
        XCTAssertEqual(LLMError.http(status: 429, message: "Slow down (retry after 2 s)").retryAfterSeconds, 2)
        XCTAssertEqual(LLMError.http(status: 404, message: "gone").description, "HTTP 404: gone")
    }

    func testAPIKeyResolveFromFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("llmclient-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let keyFile = dir.appendingPathComponent("key").path
        try Data("  \(secretKey)\n".utf8).write(to: URL(fileURLWithPath: keyFile))
        XCTAssertEqual(try APIKey.resolve(keyFile: keyFile), secretKey)

        let emptyFile = dir.appendingPathComponent("empty").path
        try Data(" \n".utf8).write(to: URL(fileURLWithPath: emptyFile))
        XCTAssertThrowsError(try APIKey.resolve(keyFile: emptyFile)) { XCTAssertEqual(($0 as? ForgeError)?.kind, .config) }

        XCTAssertThrowsError(try APIKey.resolve(keyFile: dir.appendingPathComponent("missing").path)) { error in
            XCTAssertEqual((error as? ForgeError)?.kind, .io)
        }

        let saved = ProcessInfo.processInfo.environment["OPENAI_API_KEY"]
        defer { if let saved { setenv("OPENAI_API_KEY", saved, 1) } else { unsetenv("OPENAI_API_KEY") } }
        setenv("OPENAI_API_KEY", " sk-from-env \n", 1)
        XCTAssertEqual(try APIKey.resolve(keyFile: nil), "sk-from-env")
        XCTAssertEqual(try APIKey.resolve(keyFile: keyFile), secretKey)  // an explicit file wins
        unsetenv("OPENAI_API_KEY")
        XCTAssertNil(try APIKey.resolve(keyFile: nil))
    }
}
