@testable import Export
import ForgeCore
import Foundation
import XCTest

final class InspectorTests: XCTestCase {
    func testTextShowsHeaderContextTurnsAndFailures() throws {
        let f = try Fixture.standard()
        let text = try Inspector.render(database: f.db, type: "conversation", limit: 10, status: nil, json: false)
        XCTAssertTrue(text.hasPrefix("6 conversation samples; showing 6\n"), text)
        // Header of an ok sample.
        XCTAssertTrue(text.contains("=== sample 1 · conversation · image 215677 (000000215677.jpg) ===\nstatus:  ok\nmodel:   m1  (request 1)\ntokens:  prompt 100 + completion 50 = 150  (finish_reason: stop)\n"), text)
        // The context the LLM saw, verbatim.
        XCTAssertTrue(text.contains("--- context ---\n" + Fixture.contextS1 + "\n--- conversation (2 turns) ---\n"), text)
        // Turns, continuation lines aligned under the value.
        XCTAssertTrue(text.contains("human: <image>\n       What is the man riding?\ngpt: He is riding a bike.\nhuman: Is it \"sunny\"?\ngpt: Yes — café weather, 東京 style.\n     Tab\there \\ back\n"), text)
        // An ok sample does not repeat the raw response.
        let first = text.components(separatedBy: "=== sample 2 ")[0]
        XCTAssertFalse(first.contains("--- raw response ---"))
        // The parse failure: status, reason, context and the raw response.
        let second = text.components(separatedBy: "=== sample 2 ")[1].components(separatedBy: "=== sample 5 ")[0]
        XCTAssertTrue(second.contains("status:  parse_failed\nreason:  no_question: no \"Question:\" label in the response\n"), second)
        XCTAssertTrue(second.contains("--- context ---\nTwo dogs on a couch.\n"), second)
        XCTAssertTrue(second.contains("--- raw response ---\ngarbage text without labels\n"), second)
        XCTAssertFalse(second.contains("--- conversation"))
        // The truncated one.
        XCTAssertTrue(text.contains("status:  truncated\nreason:  finish_reason=length (the response hit max_tokens)\n"))
        XCTAssertTrue(text.contains("(finish_reason: length)"))
        // Ordered by sample id, other types excluded.
        let order = ["=== sample 1 ", "=== sample 2 ", "=== sample 5 ", "=== sample 6 ", "=== sample 8 ", "=== sample 10 "].map { text.range(of: $0)!.lowerBound }
        XCTAssertEqual(order, order.sorted())
        XCTAssertFalse(text.contains("· detail ·"))
    }

    func testLimitAndStatusFilter() throws {
        let f = try Fixture.standard()
        let two = try Inspector.render(database: f.db, type: "conversation", limit: 2, status: nil, json: false)
        XCTAssertTrue(two.hasPrefix("6 conversation samples; showing 2\n"), two)
        XCTAssertEqual(two.components(separatedBy: "=== sample ").count - 1, 2)
        XCTAssertTrue(two.contains("=== sample 1 ") && two.contains("=== sample 2 "))

        let failed = try Inspector.render(database: f.db, type: "conversation", limit: 5, status: "parse_failed", json: false)
        XCTAssertTrue(failed.hasPrefix("2 conversation samples with status parse_failed; showing 2\n"), failed)
        XCTAssertTrue(failed.contains("=== sample 2 ") && failed.contains("=== sample 8 "))
        XCTAssertFalse(failed.contains("status:  ok"))
        XCTAssertTrue(failed.contains("reason:  no_question: nothing usable"))

        let none = try Inspector.render(database: f.db, type: "nope", limit: 5, status: nil, json: false)
        XCTAssertEqual(none, "no nope samples (types with samples: conversation, detail, reasoning)")
        XCTAssertEqual(try Inspector.render(database: f.db, type: "detail", limit: 5, status: "truncated", json: false),
                       "no detail samples with status truncated")
        XCTAssertThrowsError(try Inspector.render(database: f.db, type: "detail", limit: -1, status: nil, json: false))
    }

    func testJSONParsesWithTheSameFields() throws {
        let f = try Fixture.standard()
        let text = try Inspector.render(database: f.db, type: "conversation", limit: 3, status: nil, json: true)
        let items = try parseJSON(text) as! [NSDictionary]
        XCTAssertEqual(items.count, 3)
        XCTAssertEqual(items.map { $0["sample_id"] as? Int }, [1, 2, 5])
        let ok = items[0]
        XCTAssertEqual(ok["type"] as? String, "conversation")
        XCTAssertEqual(ok["image_id"] as? Int, 215677)
        XCTAssertEqual(ok["file_name"] as? String, "000000215677.jpg")
        XCTAssertEqual(ok["status"] as? String, "ok")
        XCTAssertTrue(ok["reason"] is NSNull)
        XCTAssertEqual(ok["model"] as? String, "m1")
        XCTAssertEqual(ok["prompt_tokens"] as? Int, 100)
        XCTAssertEqual(ok["completion_tokens"] as? Int, 50)
        XCTAssertEqual(ok["finish_reason"] as? String, "stop")
        XCTAssertEqual(ok["turns"] as? Int, 2)
        XCTAssertEqual(ok["context"] as? String, Fixture.contextS1)
        XCTAssertEqual(ok["conversations"] as? NSArray, Fixture.s1 as NSArray)
        let failed = items[1]
        XCTAssertEqual(failed["status"] as? String, "parse_failed")
        XCTAssertEqual(failed["reason"] as? String, "no_question: no \"Question:\" label in the response")
        XCTAssertEqual(failed["response"] as? String, "garbage text without labels")
        XCTAssertTrue(failed["conversations"] is NSNull)
        // Keys in a fixed order.
        let keys = ["sample_id", "type", "image_id", "file_name", "status", "reason", "request_id", "model",
                    "prompt_tokens", "completion_tokens", "finish_reason", "turns", "context", "conversations", "response"]
        let positions = keys.map { text.range(of: "\"\($0)\": ")!.lowerBound }
        XCTAssertEqual(positions, positions.sorted())

        XCTAssertEqual(try Inspector.render(database: f.db, type: "nope", limit: 5, status: nil, json: true), "[]")
    }
}
