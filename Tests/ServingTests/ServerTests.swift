import XCTest
import Foundation
import Inference
import Models
import Tokenizers
@testable import Serving

/// The server in-process on the tiny chat GGUF (tools/reference/make_serving_fixtures.py), talked
/// to over real loopback HTTP: answers equal the plain generator's, SSE framing, auth, 503 on a
/// full queue, every bad-input class as an OpenAI error body — and it keeps serving after each.
final class ServerTests: XCTestCase {
    static let model: ChatModel = try! ChatModel(path: ServingFixtures.tinyChatGGUF)

    func makeService(engine: DecoderEngine? = nil, concurrency: Int = 4, queue: Int = 8) -> ChatService {
        var options = ChatService.Options(modelName: "tiny-chat")
        options.maxConcurrency = concurrency
        options.queueCapacity = queue
        options.limits = .init(maxTokens: 64)
        return ChatService(model: Self.model, options: options, engine: engine)
    }

    func withServer(_ service: ChatService, apiKey: String? = nil, maxRequestBytes: Int = 4 << 20, _ body: (Int) throws -> Void) throws {
        let server = try RunningServer(service: service, apiKey: apiKey, maxRequestBytes: maxRequestBytes)
        defer { server.stop() }
        try body(server.port)
    }

    let hello: [[String: Any]] = [["role": "system", "content": "You are terse."], ["role": "user", "content": "Hello there, who are you?"]]
    var helloTurns: [ChatTurn] { [ChatTurn(role: .system, text: "You are terse."), ChatTurn(role: .user, text: "Hello there, who are you?")] }

    func testTheFixtureHasAChatTemplateAndTokenizer() throws {
        let m = Self.model
        XCTAssertEqual(m.template.name, .chatML, "the GGUF's Jinja template is ChatML")
        XCTAssertTrue(m.stopTokenIDs.contains(2), "<|im_end|> stops")
        let prompt = try m.prepare(helloTurns)
        XCTAssertEqual(prompt.text, "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello there, who are you?<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(prompt.ids.first, 1, "<|im_start|> is one special token")
        XCTAssertEqual(prompt.ids, m.tokenizer.encode(prompt.text))
        XCTAssertNil(prompt.splice)
    }

    func testGreedyAnswerEqualsTheGenerator() throws {
        let expected = try referenceGreedy(Self.model, helloTurns, maxTokens: 24)
        XCTAssertGreaterThan(expected.tokens.count, 0)
        let service = makeService()
        try withServer(service) { port in
            let r = try RawHTTP.post(port: port, chatBody(hello, ["temperature": 0, "max_tokens": 24]))
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.headers["content-type"], "application/json")
            let json = r.json
            XCTAssertEqual(json["object"] as? String, "chat.completion")
            XCTAssertEqual(json["model"] as? String, "tiny-chat")
            XCTAssertTrue((json["id"] as? String)?.hasPrefix("chatcmpl-") ?? false)
            let choice = (json["choices"] as! [[String: Any]])[0]
            let message = choice["message"] as! [String: Any]
            XCTAssertEqual(message["role"] as? String, "assistant")
            XCTAssertEqual(message["content"] as? String, expected.text)
            XCTAssertEqual(choice["finish_reason"] as? String, expected.finishReason == .stop ? "stop" : "length")
            let usage = json["usage"] as! [String: Any]
            XCTAssertEqual(usage["prompt_tokens"] as? Int, expected.promptTokens)
            XCTAssertEqual(usage["completion_tokens"] as? Int, expected.tokens.count)
            XCTAssertEqual(usage["total_tokens"] as? Int, expected.promptTokens + expected.tokens.count)

            // The same request again: the prompt prefix now comes from the prefix cache (its whole
            // 32-token blocks, at most all but the last prompt token), and the answer is unchanged.
            let again = try RawHTTP.post(port: port, chatBody(hello, ["temperature": 0, "max_tokens": 24]))
            let cached = ((again.json["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
            XCTAssertEqual(cached, min(expected.promptTokens - 1, expected.promptTokens / 32 * 32))
            XCTAssertGreaterThan(cached ?? 0, 0)
            XCTAssertEqual(((again.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String, expected.text)
        }
    }

    func testConcurrentRequestsAreBatchedAndEachEqualsItsGreedyAnswer() throws {
        let questions = ["Hello there, who are you?", "What is a cat?", "Tell me about the sea.", "Why is the sky blue?", "Count to three."]
        let expected = try questions.map { try referenceGreedy(Self.model, [ChatTurn(role: .user, text: $0)], maxTokens: 20).text }
        let engine = TestEngine(Self.model.engine)
        engine.delay = 0.01
        let service = makeService(engine: engine, concurrency: 4)
        try withServer(service) { port in
            var answers = [String?](repeating: nil, count: questions.count)
            let lock = NSLock()
            DispatchQueue.concurrentPerform(iterations: questions.count) { i in
                let r = try? RawHTTP.post(port: port, chatBody([["role": "user", "content": questions[i]]], ["temperature": 0, "max_tokens": 20]))
                let text = ((r?.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String
                lock.lock(); answers[i] = text; lock.unlock()
            }
            for i in questions.indices { XCTAssertEqual(answers[i], expected[i], questions[i]) }
        }
        XCTAssertGreaterThanOrEqual(engine.maxSequencesInAStep, 2, "concurrent requests shared decode steps")
        XCTAssertLessThanOrEqual(engine.maxSequencesInAStep, 4)
    }

    func testStreamingIsSSEEndingWithDone() throws {
        let expected = try referenceGreedy(Self.model, helloTurns, maxTokens: 24)
        try withServer(makeService()) { port in
            let r = try RawHTTP.post(port: port, chatBody(hello, ["temperature": 0, "max_tokens": 24, "stream": true, "stream_options": ["include_usage": true]]))
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.headers["content-type"], "text/event-stream")
            XCTAssertTrue(r.text.hasSuffix("data: [DONE]\n\n"), r.text)
            let events = RawHTTP.events(r.text)
            XCTAssertEqual(events.last, "[DONE]")
            let chunks = events.dropLast().map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
            XCTAssertGreaterThanOrEqual(chunks.count, 3)
            let ids = Set(chunks.compactMap { $0["id"] as? String })
            XCTAssertEqual(ids.count, 1, "one id for the whole stream")
            for c in chunks { XCTAssertEqual(c["object"] as? String, "chat.completion.chunk") }
            // First chunk: the role. Then content deltas, then the finish reason, then usage (no choices).
            let first = (chunks[0]["choices"] as! [[String: Any]])[0]["delta"] as! [String: Any]
            XCTAssertEqual(first["role"] as? String, "assistant")
            let usageChunk = chunks.last!
            XCTAssertEqual((usageChunk["choices"] as! [Any]).count, 0)
            XCTAssertEqual((usageChunk["usage"] as? [String: Any])?["completion_tokens"] as? Int, expected.tokens.count)
            let choiceChunks = chunks.dropLast()
            let finish = (choiceChunks.last!["choices"] as! [[String: Any]])[0]
            XCTAssertEqual(finish["finish_reason"] as? String, expected.finishReason == .stop ? "stop" : "length")
            for c in choiceChunks.dropLast() {
                XCTAssertTrue((c["choices"] as! [[String: Any]])[0]["finish_reason"] is NSNull)
                XCTAssertTrue(c["usage"] is NSNull, "usage is null on choice chunks when include_usage is set")
            }
            let text = choiceChunks.map { (($0["choices"] as! [[String: Any]])[0]["delta"] as! [String: Any])["content"] as? String ?? "" }.joined()
            XCTAssertEqual(text, expected.text)
        }
    }

    func testStopStringsCutTheAnswer() throws {
        let full = try referenceGreedy(Self.model, helloTurns, maxTokens: 24).text ?? ""
        let scalars = Array(full)
        guard scalars.count >= 6 else { throw XCTSkip("the fixture's answer is too short to cut") }
        let stop = String(scalars[3..<5])
        let cut = String(full[..<full.range(of: stop)!.lowerBound])
        try withServer(makeService()) { port in
            let r = try RawHTTP.post(port: port, chatBody(hello, ["temperature": 0, "max_tokens": 24, "stop": [stop]]))
            let choice = (r.json["choices"] as! [[String: Any]])[0]
            XCTAssertEqual((choice["message"] as! [String: Any])["content"] as? String, cut)
            XCTAssertEqual(choice["finish_reason"] as? String, "stop")
        }
    }

    func testSeededSamplingIsRepeatable() throws {
        try withServer(makeService()) { port in
            let body = chatBody(hello, ["temperature": 1.2, "seed": 11, "max_tokens": 16])
            let a = try RawHTTP.post(port: port, body), b = try RawHTTP.post(port: port, body)
            XCTAssertEqual(a.status, 200, a.text)
            XCTAssertEqual(((a.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String,
                           ((b.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String)
        }
    }

    func testModelsAndHealth() throws {
        try withServer(makeService()) { port in
            let models = try RawHTTP.request(port: port, method: "GET", path: "/v1/models")
            XCTAssertEqual(models.status, 200)
            XCTAssertEqual(models.json["object"] as? String, "list")
            XCTAssertEqual(((models.json["data"] as? [[String: Any]])?.first)?["id"] as? String, "tiny-chat")
            let health = try RawHTTP.request(port: port, method: "GET", path: "/health")
            XCTAssertEqual(health.status, 200)
            XCTAssertEqual(health.json["status"] as? String, "ok")
        }
    }

    func testBearerKey() throws {
        try withServer(makeService(), apiKey: "sekrit-key") { port in
            for key in [nil, "wrong", "sekrit-ke", "sekrit-key2"] as [String?] {
                let r = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 2]), key: key)
                XCTAssertEqual(r.status, 401, "key \(key ?? "none")")
                XCTAssertEqual(r.error["type"] as? String, "invalid_request_error")
                XCTAssertEqual(r.error["code"] as? String, "invalid_api_key")
                XCTAssertNotNil(r.error["message"] as? String)
                XCTAssertTrue(r.error.keys.contains("param"))
            }
            XCTAssertEqual(try RawHTTP.request(port: port, method: "GET", path: "/v1/models").status, 401)
            XCTAssertEqual(try RawHTTP.request(port: port, method: "GET", path: "/v1/models", headers: ["Authorization": "Bearer sekrit-key"]).status, 200)
            XCTAssertEqual(try RawHTTP.request(port: port, method: "GET", path: "/health").status, 200, "health needs no key")
            XCTAssertEqual(try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 2]), key: "sekrit-key").status, 200)
        }
    }

    func testFullQueueIs503WithRetryAfter() throws {
        let engine = TestEngine(Self.model.engine)
        let service = makeService(engine: engine, concurrency: 1, queue: 0)
        try withServer(service) { port in
            engine.closeGate()
            let first = DispatchSemaphore(value: 0)
            let box = ResponseBox()
            DispatchQueue.global().async {
                box.response = try? RawHTTP.post(port: port, chatBody(self.hello, ["temperature": 0, "max_tokens": 4]))
                first.signal()
            }
            // The first request is inside a decode step, holding the only slot.
            XCTAssertEqual(engine.stepStarted.wait(timeout: .now() + 20), .success)
            let busy = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 4]))
            XCTAssertEqual(busy.status, 503, busy.text)
            XCTAssertEqual(busy.headers["retry-after"], "1")
            XCTAssertEqual(busy.error["type"] as? String, "server_error")
            XCTAssertTrue((busy.error["message"] as? String ?? "").contains("busy"))
            engine.openGate()
            XCTAssertEqual(first.wait(timeout: .now() + 20), .success)
            XCTAssertEqual(box.response?.status, 200)
            XCTAssertEqual(try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 4])).status, 200, "serving again once the slot is free")
        }
        XCTAssertEqual(service.counts.rejected, 1)
    }

    func testBadInputIsA4xxAndTheServerKeepsServing() throws {
        try withServer(makeService(), maxRequestBytes: 64 << 10) { port in
            let image = try ServingFixtures.dataURL(ServingFixtures.photo)
            let long = String(repeating: "many words here ", count: 1100)  // > 8192 tokens
            let cases: [(String, Int, String?, String?)] = [
                ("{\"messages\": [", 400, nil, "invalid_json"),
                (#"{"messages": "hi"}"#, 400, "messages", nil),
                (#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "warm"}"#, 400, "temperature", nil),
                (#"{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}"#, 400, "stream", nil),
                (#"{"messages": []}"#, 400, "messages", nil),
                (chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": image]]]]]), 400, "messages[0].content[0]", "too_many_images"),
                (chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": "data:image/png;base64,%%%"]]]]]), 400,
                 "messages[0].content[0].image_url.url", "invalid_base64"),
                (chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": "data:image/png;base64,aGVsbG8="]]]]]), 400,
                 "messages[0].content[0].image_url.url", "invalid_image"),
                (chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": "http://127.0.0.1/x.png"]]]]]), 400,
                 "messages[0].content[0].image_url.url", "invalid_image_url"),
                (chatBody([["role": "user", "content": long]]), 400, "messages", "context_length_exceeded"),
                (chatBody([["role": "user", "content": "hi"]], ["max_tokens": 65]), 400, "max_tokens", nil),
                (chatBody([["role": "user", "content": "hi"]], ["n": 3]), 400, "n", nil),
                (chatBody([["role": "user", "content": "hi"], ["role": "system", "content": "late"]]), 400, "messages", nil),
                (chatBody([["role": "user", "content": String(repeating: "x", count: 70_000)]]), 413, nil, "request_too_large"),
            ]
            for (body, status, param, code) in cases {
                let r = try RawHTTP.post(port: port, body)
                XCTAssertEqual(r.status, status, "\(body.prefix(80)): \(r.text)")
                XCTAssertEqual(r.headers["content-type"], "application/json")
                let error = r.error
                XCTAssertNotNil(error["message"] as? String, r.text)
                XCTAssertNotNil(error["type"] as? String, r.text)
                XCTAssertEqual(error["param"] as? String, param, "\(body.prefix(80)): \(r.text)")
                if let code { XCTAssertEqual(error["code"] as? String, code, r.text) }
                // Still serving.
                let ok = try RawHTTP.post(port: port, chatBody([["role": "user", "content": "hi"]], ["max_tokens": 2]))
                XCTAssertEqual(ok.status, 200, "after \(body.prefix(60)): \(ok.text)")
            }
            // Declared larger than the limit: refused before the body is read.
            let fd = try RawHTTP.connect(port: port)
            defer { close(fd) }
            RawHTTP.send(fd, Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n{".utf8))
            let declared = try RawHTTP.parse(RawHTTP.readAll(fd))
            XCTAssertEqual(declared.status, 413)
        }
    }

    /// Sends a request that would decode to max_tokens, lets `leave` close the socket, then checks
    /// that its sequence was cancelled early (batch slot freed) and that the server goes on serving.
    private func checkClientLeaving(stream: Bool, leave: (Int32, TestEngine) -> Void) throws {
        let engine = TestEngine(Self.model.engine)
        engine.delay = 0.02
        engine.suppressed = Self.model.stopTokenIDs  // so it would run to max_tokens
        let service = makeService(engine: engine)
        try withServer(service) { port in
            let fd = try RawHTTP.connect(port: port)
            var parameters: [String: Any] = ["temperature": 0, "max_tokens": 64]
            if stream { parameters["stream"] = true }
            RawHTTP.send(fd, RawHTTP.requestBytes(method: "POST", path: "/v1/chat/completions", headers: ["Content-Type": "application/json"],
                                                  body: Array(chatBody(hello, parameters).utf8)))
            leave(fd, engine)
            XCTAssertTrue(eventually(timeout: 10) { service.counts.cancelled == 1 }, "counts: \(service.counts)")
            XCTAssertEqual(service.activeCount, 0)
            XCTAssertLessThan(engine.steps, 60, "generation stopped early")
            // A client that stays gets its whole answer.
            let answer = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 2]))
            XCTAssertEqual(answer.status, 200)
            XCTAssertEqual((answer.json["choices"] as? [[String: Any]])?.count, 1)
            XCTAssertEqual(service.counts.cancelled, 1)
        }
    }

    func testAClientThatLeavesMidStreamCancelsItsSequence() throws {
        try checkClientLeaving(stream: true) { fd, _ in
            var buffer = [UInt8](repeating: 0, count: 4096)
            var received: [UInt8] = []
            while !String(decoding: received, as: UTF8.self).contains("\"content\":\"") || received.count < 400 {
                let n = read(fd, &buffer, buffer.count)
                if n <= 0 { break }
                received += buffer[0..<n]
            }
            XCTAssertTrue(String(decoding: received, as: UTF8.self).contains("chat.completion.chunk"))
            close(fd)
        }
    }

    /// A JSON answer that runs out of max_tokens is closed early: complete JSON of the schema,
    /// finish_reason "length" (the budget ended it), and our extra choice field
    /// `closed_at_token_budget` — on the answer and on the streamed finish chunk. Text answers
    /// have no such field.
    func testAJSONAnswerOutOfTokensIsClosedAndFlagged() throws {
        let schema: [String: Any] = ["type": "object", "properties": ["ok": ["type": "boolean"], "n": ["type": "integer"]],
                                     "required": ["ok", "n"], "additionalProperties": false]
        let format: [String: Any] = ["type": "json_schema", "json_schema": ["name": "check", "strict": true, "schema": schema]]
        func checkJSON(_ content: String, _ context: String) throws {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any], context)
            XCTAssertEqual(Set(object.keys), ["ok", "n"], context)
        }
        try withServer(makeService()) { port in
            for maxTokens in [24, 30] {
                let r = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": maxTokens, "temperature": 0, "response_format": format]))
                XCTAssertEqual(r.status, 200, r.text)
                let choice = try XCTUnwrap((r.json["choices"] as? [[String: Any]])?.first, r.text)
                XCTAssertEqual(choice["finish_reason"] as? String, "length", r.text)
                XCTAssertEqual(choice["closed_at_token_budget"] as? Bool, true, r.text)
                try checkJSON(try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String, r.text), r.text)
                let used = try XCTUnwrap((r.json["usage"] as? [String: Any])?["completion_tokens"] as? Int)
                XCTAssertLessThan(used, maxTokens, r.text)
            }
            let s = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 24, "temperature": 0, "response_format": format, "stream": true]))
            let chunks = RawHTTP.events(s.text).dropLast().compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let choices = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first }
            let streamed = choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined()
            try checkJSON(streamed, s.text)
            let finish = try XCTUnwrap(choices.last, s.text)
            XCTAssertEqual(finish["finish_reason"] as? String, "length", s.text)
            XCTAssertEqual(finish["closed_at_token_budget"] as? Bool, true, s.text)
            XCTAssertTrue(choices.dropLast().allSatisfy { $0["closed_at_token_budget"] == nil }, "only the finish chunk carries it")
            let plain = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 4]))
            let plainChoice = try XCTUnwrap((plain.json["choices"] as? [[String: Any]])?.first, plain.text)
            XCTAssertEqual(plainChoice["finish_reason"] as? String, "length")
            XCTAssertNil(plainChoice["closed_at_token_budget"], "text answers carry no flag")
        }
    }

    /// A non-streaming client that closes its connection before the answer: its sequence is
    /// cancelled (batch slot freed) instead of decoding to max_tokens.
    func testAClientThatLeavesBeforeANonStreamingAnswerCancelsItsSequence() throws {
        try checkClientLeaving(stream: false) { fd, engine in
            XCTAssertTrue(eventually(timeout: 30) { engine.steps >= 3 }, "generation started")
            close(fd)
        }
    }

    /// A JSON schema is enforced by constrained sampling: even the tiny random model answers
    /// with JSON that has the schema's shape; an unsupported keyword is a 400 naming the field.
    func testResponseFormatJSONSchemaIsEnforced() throws {
        let schema: [String: Any] = ["type": "object", "properties": ["ok": ["type": "boolean"], "n": ["type": "integer"]],
                                     "required": ["ok", "n"], "additionalProperties": false]
        try withServer(makeService()) { port in
            let r = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 48, "temperature": 0,
                "response_format": ["type": "json_schema", "json_schema": ["name": "check", "strict": true, "schema": schema]]]))
            XCTAssertEqual(r.status, 200, r.text)
            let choice = try XCTUnwrap((r.json["choices"] as? [[String: Any]])?.first, r.text)
            let content = try XCTUnwrap((choice["message"] as? [String: Any])?["content"] as? String, r.text)
            // Finished on its own, or closed early as max_tokens ran out (a random model spends much
            // of its budget on the bounded whitespace the grammar allows): complete JSON either way.
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(content.utf8)) as? [String: Any], content)
            XCTAssertEqual(Set(object.keys), ["ok", "n"], content)
            XCTAssertTrue(object["ok"] is Bool, content)
            XCTAssertEqual(choice["closed_at_token_budget"] as? Bool, choice["finish_reason"] as? String == "length", r.text)
            let bad = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 8,
                "response_format": ["type": "json_schema", "json_schema": ["name": "x", "schema": ["type": "string", "pattern": "^a+$"]]]]))
            XCTAssertEqual(bad.status, 400, bad.text)
            XCTAssertEqual(bad.error["param"] as? String, "response_format", bad.text)
            XCTAssertTrue((bad.error["message"] as? String ?? "").contains("pattern"), bad.text)
            let after = try RawHTTP.post(port: port, chatBody(hello, ["max_tokens": 4]))
            XCTAssertEqual(after.status, 200, "still serving: \(after.text)")
        }
    }
}

private final class ResponseBox: @unchecked Sendable {
    var response: RawHTTP.Response?
}
