import ForgeCore
import ForgeTestSupport
import Foundation
import GRDB
@testable import Generation
import Ingest
import LLMClient
import MockOpenAI
import Parsing
import Prompts
import Store
import XCTest

/// The generate stage in structured mode against the loopback mock: the body carries the type's
/// schema as `response_format` (so it is part of the cache key), the few-shot answers are JSON,
/// JSON answers become the same turns as the text layout, and malformed JSON is stored as a
/// parse failure with a reason.
final class StructuredGenerateTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    var dir: String!
    var db: ForgeDatabase!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "structured-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/x.db")
        try TinyCOCO.ingest(images: 4, into: db, dir: dir, fileName: { "\($0).jpg" }, caption: { "A dog number \($0) on grass." })
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func spec(_ type: String) throws -> SampleTypeSpec {
        try PromptLibrary(promptsDir: Self.repoRoot + "/prompts", seedsDir: Self.repoRoot + "/seeds").load(type: type)
    }

    func run(_ server: MockOpenAIServer, type: String, limit: Int, structured: Bool, concurrency: Int = 2) throws -> GenerateSummary {
        var cfg = ClientConfig(baseURL: server.baseURL, apiKey: nil)
        cfg.maxRetries = 0
        var options = GenerateOptions(limit: limit, model: "mock-model", baseURL: server.baseURL)
        options.concurrency = concurrency
        options.structuredOutput = structured
        return try Generator(database: db, spec: try spec(type), client: try OpenAIClient(config: cfg), options: options).run()
    }

    func samples(_ type: String) throws -> [(status: String, reason: String?, turns: [[String: String]])] {
        try db.read { d in
            try Row.fetchAll(d, sql: "SELECT status, reason, conversations_json FROM samples WHERE type = ? ORDER BY image_id", arguments: [type]).map { row in
                let json: String? = row[2]
                let turns = json.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [[String: String]] } ?? []
                return (row[0], row[1], turns)
            }
        }
    }

    func testConversationRequestCarriesTheSchemaAndJSONAnswersBecomeTurns() throws {
        let answer = #"{"conversation": [{"question": "What animal is it?", "answer": "A dog."}, {"question": "Where is it?", "answer": "On the grass."}]}"#
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: answer) }
        try server.start()
        defer { server.stop() }
        let s = try run(server, type: "conversation", limit: 3, structured: true)
        XCTAssertEqual(s.samplesOK, 3)
        let request = try XCTUnwrap(server.receivedRequests.first)
        let body = try XCTUnwrap(request.json)
        let format = try XCTUnwrap(body["response_format"] as? [String: Any])
        XCTAssertEqual(format["type"] as? String, "json_schema")
        let jsonSchema = try XCTUnwrap(format["json_schema"] as? [String: Any])
        XCTAssertEqual(jsonSchema["strict"] as? Bool, true)
        XCTAssertEqual(jsonSchema["name"] as? String, "llava_forge_conversation")
        let schemaFile = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.repoRoot + "/prompts/conversation/schema.json"))) as! NSDictionary
        XCTAssertEqual(jsonSchema["schema"] as? NSDictionary, schemaFile, "the schema is prompts/conversation/schema.json")
        let raw = String(decoding: request.body, as: UTF8.self)
        XCTAssertTrue(raw.contains(#","response_format":{"type":"json_schema","json_schema":{"name":"llava_forge_conversation","strict":true,"schema":{"type":"object","properties":{"conversation""#), "compact, in schema order: \(raw.suffix(300))")
        XCTAssertTrue(raw.hasSuffix(#"}}},"stream":false}"#))
        // Few-shot answers are the seeds re-laid out as JSON; the system message gets the note.
        let messages = try XCTUnwrap(body["messages"] as? [[String: String]])
        let spec = try spec("conversation")
        XCTAssertEqual(messages[0]["content"], spec.systemMessage + "\n\n" + spec.structuredNote!)
        let seedAnswer = try XCTUnwrap(messages[2]["content"])
        let seedJSON = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(seedAnswer.utf8)) as? [String: Any])
        let seedPairs = try XCTUnwrap(seedJSON["conversation"] as? [[String: String]])
        guard case .success(let expectedPairs) = ResponseParser.parseQAPairs(spec.fewShot[0].response) else { return XCTFail("seed does not parse") }
        XCTAssertEqual(seedPairs.map { $0["question"]! }, expectedPairs.map(\.question))
        XCTAssertEqual(seedPairs.map { $0["answer"]! }, expectedPairs.map(\.answer))

        let rows = try samples("conversation")
        XCTAssertEqual(rows.count, 3)
        for row in rows {
            XCTAssertEqual(row.status, "ok")
            XCTAssertEqual(row.turns.count, 4)
            XCTAssertEqual(row.turns.map { $0["from"]! }, ["human", "gpt", "human", "gpt"])
            XCTAssertTrue(row.turns[0]["value"]!.contains("<image>"))
            XCTAssertEqual(row.turns[0]["value"]!.replacingOccurrences(of: "<image>", with: "").trimmingCharacters(in: .whitespacesAndNewlines), "What animal is it?")
            XCTAssertEqual(row.turns[3]["value"], "On the grass.")
        }
    }

    func testTheResponseFormatIsPartOfTheCacheKey() throws {
        let server = try MockOpenAIServer { request in
            let json = request.json?["response_format"] != nil
            return MockOpenAIServer.completion(content: json ? #"{"question": "Why?", "answer": "Because."}"# : "Question:\nWhy?\n===\nAnswer:\nBecause.\n===")
        }
        try server.start()
        defer { server.stop() }
        let free = try run(server, type: "reasoning", limit: 2, structured: false)
        XCTAssertEqual(free.sent, 2)
        XCTAssertNil(server.receivedRequests.first?.json?["response_format"], "free text by default")
        let structured = try run(server, type: "reasoning", limit: 2, structured: true)
        XCTAssertEqual(structured.sent, 2, "a structured request is a different request")
        XCTAssertEqual(structured.samplesOK, 2)
        let again = try run(server, type: "reasoning", limit: 2, structured: true)
        XCTAssertEqual(again.sent, 0)
        XCTAssertEqual(again.cached, 2)
        let keys = try db.read { try Int.fetchOne($0, sql: "SELECT count(DISTINCT cache_key) FROM requests WHERE type = 'reasoning'") }
        XCTAssertEqual(keys, 4)
    }

    func testMalformedJSONIsStoredAsAParseFailureWithAReason() throws {
        let answers = [#"{"description": "A dog lies on green grass in the sun."}"#, #"{"description": "A dog on"#, #"{"text": "x"}"#, "A dog on grass."]
        let counter = Counter()
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: answers[(counter.next() - 1) % answers.count]) }
        try server.start()
        defer { server.stop() }
        let s = try run(server, type: "detail", limit: 4, structured: true, concurrency: 1)
        XCTAssertEqual(s.samplesOK, 1)
        XCTAssertEqual(s.parseFailed, 3)
        let rows = try samples("detail")
        XCTAssertEqual(rows.count, 4, "failures are kept, never dropped")
        let reasons = rows.compactMap(\.reason).sorted()
        XCTAssertEqual(reasons.filter { $0.hasPrefix("invalid_json") }.count, 2, "\(reasons)")
        XCTAssertEqual(reasons.filter { $0.hasPrefix("wrong_json_shape") }.count, 1, "\(reasons)")
        let ok = try XCTUnwrap(rows.first { $0.status == "ok" })
        XCTAssertEqual(ok.turns.last?["value"], "A dog lies on green grass in the sun.")
        XCTAssertTrue(ok.turns.first?["value"]?.contains("<image>") ?? false)
    }

    /// A structured answer that ended at max_tokens: complete JSON (the server closed it early) is
    /// stored ok — it parsed — with a reason saying its last field was cut; JSON that does not
    /// parse stays "truncated"; free text that ended at max_tokens stays "truncated" too.
    func testStructuredResponsesEndedAtMaxTokensAreOkWhenTheyParse() throws {
        let answers = [#"{"description": "A dog lies on green grass in the"}"#, #"{"description": "A dog on"#]
        let counter = Counter()
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: answers[(counter.next() - 1) % answers.count], finishReason: "length") }
        try server.start()
        defer { server.stop() }
        let s = try run(server, type: "detail", limit: 2, structured: true, concurrency: 1)
        XCTAssertEqual(s.samplesOK, 1)
        XCTAssertEqual(s.truncated, 1)
        let rows = try samples("detail")
        let ok = try XCTUnwrap(rows.first { $0.status == "ok" })
        XCTAssertEqual(ok.reason, SampleWriter.closedAtBudgetReason)
        XCTAssertTrue(ok.reason?.contains("closed at max_tokens (last field cut)") ?? false)
        XCTAssertEqual(ok.turns.last?["value"], "A dog lies on green grass in the")
        let cut = try XCTUnwrap(rows.first { $0.status == "truncated" })
        XCTAssertTrue(cut.reason?.hasPrefix("finish_reason=length") ?? false, cut.reason ?? "")
        XCTAssertTrue(cut.reason?.contains("invalid_json") ?? false, cut.reason ?? "")
        let finish = try db.read { try String.fetchAll($0, sql: "SELECT finish_reason FROM requests WHERE type = 'detail'") }
        XCTAssertEqual(finish, ["length", "length"], "the request keeps finish_reason for the cut_at_max_tokens filter")
    }

    func testStructuredParsingOfEachType() {
        var rng = SeededRandom(seed: 1, key: "t")
        let conv = ConversationBuilder.buildFromJSON(format: .conversation, response: "```json\n{\"conversation\": [{\"question\": \" Q1 \", \"answer\": \"A1\"}]}\n```", instruction: nil, rng: &rng)
        XCTAssertEqual(try conv.get().map(\.value).map { $0.replacingOccurrences(of: "<image>", with: "").trimmingCharacters(in: .whitespacesAndNewlines) }, ["Q1", "A1"])
        let qa = ConversationBuilder.buildFromJSON(format: .singleQA, response: #"{"question": "Why?", "answer": "So."}"#, instruction: nil, rng: &rng)
        XCTAssertEqual(try qa.get().count, 2)
        func reason(_ format: Parsing.ResponseFormat, _ text: String, instruction: String? = "Describe.") -> String? {
            var r = SeededRandom(seed: 1, key: "t")
            if case .failure(let f) = ConversationBuilder.buildFromJSON(format: format, response: text, instruction: instruction, rng: &r) { return f.reason }
            return nil
        }
        XCTAssertEqual(reason(.conversation, #"{"conversation": []}"#), "no_question")
        XCTAssertEqual(reason(.conversation, #"{"conversation": [{"question": "q"}]}"#), "wrong_json_shape")
        XCTAssertEqual(reason(.conversation, #"{"conversation": [{"question": "", "answer": "a"}]}"#), "empty_question")
        XCTAssertEqual(reason(.singleQA, #"{"question": "q", "answer": "  "}"#), "empty_answer")
        XCTAssertEqual(reason(.singleQA, #"{"question": "q", "answer": 3}"#), "wrong_json_shape")
        XCTAssertEqual(reason(.description, #"{"description": "x"}"#, instruction: nil), "missing_instruction")
        XCTAssertEqual(reason(.description, "   "), "empty_response")
        XCTAssertEqual(reason(.description, #"{"description": "x""#), "invalid_json")
        XCTAssertNil(reason(.description, #"{"description": "A \"quoted\" dog."}"#))
    }

    func testSeedsOfEveryTypeRenderAsJSONTheirSchemaAccepts() throws {
        for type in ["conversation", "detail", "reasoning"] {
            let spec = try spec(type)
            let request = try StructuredRequest(spec: spec)
            XCTAssertEqual(request.messages.count, 1 + 2 * spec.fewShot.count)
            for m in request.messages where m.role == "assistant" {
                XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(m.content.utf8)) as? [String: Any], m.content)
            }
        }
    }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
