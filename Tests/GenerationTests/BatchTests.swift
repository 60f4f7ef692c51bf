import ForgeCore
import Foundation
import GRDB
@testable import Generation
import LLMClient
import MockOpenAI
import Prompts
import Store
import XCTest

/// Batch API mode: export (format, splitting, journal, no double export, recovery of a missing
/// file) and import (out of order, errors, unknown ids, idempotent re-import, bad lines).
final class BatchTests: XCTestCase {
    var dir: String!
    var db: ForgeDatabase!
    let library = PromptLibrary(promptsDir: GeneratorResilienceTests.repoRoot + "/prompts", seedsDir: GeneratorResilienceTests.repoRoot + "/seeds")

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "batch-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/x.db")
        try GeneratorResilienceTests.ingest(images: 12, into: db, dir: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func exporter(_ type: String = "conversation", limit: Int) throws -> BatchExporter {
        BatchExporter(database: db, spec: try library.load(type: type), options: GenerateOptions(limit: limit, model: "gpt-4o-mini", baseURL: "batch"))
    }

    func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func count(_ sql: String) throws -> Int { try db.read { try Int.fetchOne($0, sql: sql) ?? -1 } }

    func testExportWritesBatchLinesSplitsAndNeverExportsTwice() throws {
        let e = try exporter(limit: 10)
        e.maxLines = 4
        let s = try e.export(outDir: dir + "/out")
        XCTAssertEqual(s.requests, 10)
        XCTAssertEqual(s.files.count, 3)
        let all = try s.files.flatMap { try lines($0) }
        XCTAssertEqual(try s.files.map { try lines($0).count }, [4, 4, 2])
        XCTAssertEqual(Set(all.compactMap { $0["custom_id"] as? String }).count, 10)
        let bodies = try db.read { d in try Dictionary(uniqueKeysWithValues: Row.fetchAll(d, sql: "SELECT r.custom_id, \(StoredRequestBody.columns) FROM requests r \(StoredRequestBody.join)").map {
            ($0[0] as String, String(decoding: StoredRequestBody.bytes(row: $0, at: 1), as: UTF8.self)) }) }
        for line in all {
            XCTAssertEqual(line["method"] as? String, "POST")
            XCTAssertEqual(line["url"] as? String, "/v1/chat/completions")
            let id = try XCTUnwrap(line["custom_id"] as? String)
            XCTAssertLessThanOrEqual(id.count, 64)
            let body = try XCTUnwrap(line["body"] as? [String: Any])
            XCTAssertEqual(body["model"] as? String, "gpt-4o-mini")
            let stored = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(bodies[id]).utf8)) as? NSDictionary)
            XCTAssertEqual(body as NSDictionary, stored, "the body is exactly what a live call sends")
        }
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE status = 'exported'"), 10)
        // Stored once per run: each row keeps its context and a template id, and the rebuilt body
        // hashes to its cache key (the key is the SHA-256 of exactly what is sent).
        XCTAssertEqual(try count("SELECT count(*) FROM request_templates"), 1)
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE template_id IS NOT NULL AND body_json = ''"), 10)
        try db.read { d in
            for row in try Row.fetchAll(d, sql: "SELECT r.cache_key, \(StoredRequestBody.columns) FROM requests r \(StoredRequestBody.join)") {
                XCTAssertEqual(SHA256.hex(StoredRequestBody.bytes(row: row, at: 1)), row[0] as String)
            }
        }
        // Again: nothing new. More: only the new ones.
        let again = try exporter(limit: 10).export(outDir: dir + "/out")
        XCTAssertEqual(again.requests, 0)
        XCTAssertEqual(again.alreadyExported, 10)
        let more = try exporter(limit: 12).export(outDir: dir + "/out")
        XCTAssertEqual(more.requests, 2)
        // Live generate does not send exported requests.
        let server = try MockOpenAIServer()
        try server.start()
        defer { server.stop() }
        let live = try Generator(database: db, spec: try library.load(type: "conversation"), client: try OpenAIClient(config: ClientConfig(baseURL: server.baseURL)),
                                 options: GenerateOptions(limit: 12, model: "gpt-4o-mini", baseURL: server.baseURL)).run()
        XCTAssertEqual(live.exported, 12)
        XCTAssertEqual(live.sent, 0)
        XCTAssertEqual(server.requestCount, 0)
    }

    func testExportSplitsBySizeAndRewritesAMissingFile() throws {
        let e = try exporter(limit: 3)
        e.maxBytes = 1024  // every line (≈ 4 KB with the seed examples) is over: an error naming the request
        XCTAssertThrowsError(try e.export(outDir: dir + "/out")) { XCTAssertTrue("\($0)".contains("over the batch file limit"), "\($0)") }
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE status = 'exported'"), 0, "nothing marked when nothing was written")
        let lineSize = try db.read { d in
            try Row.fetchAll(d, sql: "SELECT \(StoredRequestBody.columns) FROM requests r \(StoredRequestBody.join)").map { StoredRequestBody.bytes(row: $0, at: 0).count }.max() ?? 0 } + 200
        e.maxBytes = lineSize + lineSize / 2
        let s = try e.export(outDir: dir + "/out")
        XCTAssertEqual(s.files.count, 3, "one line per file when two do not fit")
        let original = try String(contentsOfFile: s.files[1], encoding: .utf8)
        try FileManager.default.removeItem(atPath: s.files[1])
        let again = try exporter(limit: 3).export(outDir: dir + "/out")
        XCTAssertEqual(again.rewritten, 1)
        XCTAssertEqual(again.requests, 0)
        XCTAssertEqual(try String(contentsOfFile: s.files[1], encoding: .utf8), original)
    }

    /// Structured requests stored as templates: the importer still sees that the body asked for
    /// JSON (the `response_format` key sits in the template's suffix) and parses JSON answers.
    func testStructuredBatchImportParsesJSONAnswersOfTemplatedRequests() throws {
        var options = GenerateOptions(limit: 2, model: "gpt-4o-mini", baseURL: "batch")
        options.structuredOutput = true
        let s = try BatchExporter(database: db, spec: try library.load(type: "detail"), options: options).export(outDir: dir + "/out")
        let ids = try s.files.flatMap { try lines($0) }.compactMap { $0["custom_id"] as? String }
        XCTAssertEqual(ids.count, 2)
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE template_id IS NOT NULL AND body_json = ''"), 2)
        let answers = [#"{"description": "A brown dog lies on a wooden bench in a sunny park."}"#, "not json at all"]
        let result = zip(ids, answers).map { id, content -> String in
            let body: [String: Any] = ["id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                                       "choices": [["index": 0, "message": ["role": "assistant", "content": content], "finish_reason": "stop"]],
                                       "usage": ["prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20]]
            let line: [String: Any] = ["id": "b_\(id)", "custom_id": id, "response": ["status_code": 200, "request_id": "r", "body": body], "error": NSNull()]
            return String(decoding: try! JSONSerialization.data(withJSONObject: line), as: UTF8.self)
        }.joined(separator: "\n")
        try result.write(toFile: dir + "/structured.jsonl", atomically: true, encoding: .utf8)
        let r = try BatchImporter(database: db, library: library).importFiles([dir + "/structured.jsonl"])
        XCTAssertEqual(r.samplesOK, 1)
        try db.read { d in
            let statuses = try Row.fetchAll(d, sql: "SELECT r.custom_id, s.status, s.reason FROM samples s JOIN requests r ON r.id = s.request_id ORDER BY r.id")
            XCTAssertEqual(statuses.map { $0[1] as String }, ["ok", "parse_failed"])
            XCTAssertTrue((statuses[1][2] as String? ?? "").hasPrefix("invalid_json"), "\(statuses[1])")
        }
    }

    func testImportMatchesOutOfOrderWithErrorsAndIsIdempotent() throws {
        let s = try exporter(limit: 6).export(outDir: dir + "/out")
        let ids = try s.files.flatMap { try lines($0) }.compactMap { $0["custom_id"] as? String }
        XCTAssertEqual(ids.count, 6)
        func ok(_ id: String, _ content: String, finish: String = "stop") -> String {
            let body: [String: Any] = ["id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
                                       "choices": [["index": 0, "message": ["role": "assistant", "content": content], "finish_reason": finish]],
                                       "usage": ["prompt_tokens": 900, "completion_tokens": 80, "total_tokens": 980]]
            let line: [String: Any] = ["id": "batch_req_\(id)", "custom_id": id,
                                       "response": ["status_code": 200, "request_id": "req-\(id)", "body": body], "error": NSNull()]
            return String(decoding: try! JSONSerialization.data(withJSONObject: line), as: UTF8.self)
        }
        let errorLine = #"{"id":"batch_req_e","custom_id":"\#(ids[4])","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}"#
        let serverError = #"{"id":"batch_req_s","custom_id":"\#(ids[5])","response":{"status_code":500,"request_id":"req-500","body":{"error":{"message":"The server had an error","type":"server_error"}}},"error":null}"#
        let unknown = ok("lf-999999-0000000000000000", MockOpenAIServer.sampleAnswer)
        // Out of order, split across two files, one unknown id, one truncated.
        let out1 = dir + "/result1.jsonl", out2 = dir + "/result2.jsonl"
        try [ok(ids[3], MockOpenAIServer.sampleAnswer), errorLine, ok(ids[0], MockOpenAIServer.sampleAnswer)].joined(separator: "\n").write(toFile: out1, atomically: true, encoding: .utf8)
        try [serverError, unknown, ok(ids[2], "Question:\nWhat?\n===\nAnswer:\nThe dog is", finish: "length"), ok(ids[1], MockOpenAIServer.sampleAnswer), ""]
            .joined(separator: "\n").write(toFile: out2, atomically: true, encoding: .utf8)
        let importer = BatchImporter(database: db, library: library)
        let r = try importer.importFiles([out2, out1])
        XCTAssertEqual(r.lines, 7)
        XCTAssertEqual(r.samplesOK, 3)
        XCTAssertEqual(r.truncated, 1)
        XCTAssertEqual(r.failed, 2)
        XCTAssertEqual(r.unknown, 1)
        XCTAssertEqual(r.promptTokens, 4 * 900)
        try db.read { d in
            let expired = try XCTUnwrap(Row.fetchOne(d, sql: "SELECT status, error FROM requests WHERE custom_id = ?", arguments: [ids[4]]))
            XCTAssertEqual(expired[0] as String, "failed")
            XCTAssertTrue((expired[1] as String).contains("batch_expired"))
            let five = try XCTUnwrap(Row.fetchOne(d, sql: "SELECT status, error, http_status, server_request_id FROM requests WHERE custom_id = ?", arguments: [ids[5]]))
            XCTAssertEqual(five[0] as String, "failed")
            XCTAssertTrue((five[1] as String).contains("The server had an error"))
            XCTAssertEqual(five[2] as Int, 500)
            XCTAssertEqual(five[3] as String, "req-500")
            let sample = try XCTUnwrap(Row.fetchOne(d, sql: "SELECT s.status, s.turns FROM samples s JOIN requests r ON r.id = s.request_id WHERE r.custom_id = ?", arguments: [ids[0]]))
            XCTAssertEqual(sample[0] as String, "ok")
            XCTAssertEqual(sample[1] as Int, 2)
        }
        // Importing the same files again changes nothing.
        let again = try importer.importFiles([out1, out2])
        XCTAssertEqual(again.alreadyDone, 4)
        XCTAssertEqual(again.samplesOK, 0)
        XCTAssertEqual(try count("SELECT count(*) FROM samples"), 4)
        // The failed two are exported again by the next export.
        let retry = try exporter(limit: 6).export(outDir: dir + "/out")
        XCTAssertEqual(retry.requests, 2)
    }

    func testBadLineRollsBackItsFileAndNamesIt() throws {
        let s = try exporter(limit: 2).export(outDir: dir + "/out")
        let ids = try s.files.flatMap { try lines($0) }.compactMap { $0["custom_id"] as? String }
        let good = #"{"custom_id":"\#(ids[0])","response":{"status_code":200,"body":{"choices":[{"message":{"role":"assistant","content":"Question:\nA?\n===\nAnswer:\nB.\n"},"finish_reason":"stop"}]}},"error":null}"#
        let path = dir + "/bad.jsonl"
        try (good + "\n{oops\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try BatchImporter(database: db, library: library).importFiles([path])) { e in
            XCTAssertTrue("\(e)".contains("bad.jsonl") && "\(e)".contains("line 2"), "\(e)")
        }
        XCTAssertEqual(try count("SELECT count(*) FROM samples"), 0, "the file's good line is rolled back too")
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE status = 'exported'"), 2)
    }
}
