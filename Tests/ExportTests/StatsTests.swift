@testable import Export
import ForgeCore
import Foundation
import XCTest

final class StatsTests: XCTestCase {
    typealias S = DatasetStats

    func testExactNumbersOnTheStandardDataSet() throws {
        let f = try Fixture.standard()
        let stats = try DatasetStats.compute(database: f.db)
        let expected = DatasetStats(
            images: 3, captions: 2, boxes: 3, categories: 1,
            samples: 9, samplesByStatus: ["ok": 5, "parse_failed": 3, "truncated": 1],
            requests: 10, requestsByStatus: ["done": 9, "failed": 1],
            tokens: .init(prompt: 860, completion: 570),
            types: [
                .init(type: "conversation", samples: 6, byStatus: ["ok": 3, "parse_failed": 2, "truncated": 1],
                      failuresByReason: ["no_question": 2, "finish_reason=length": 1],
                      turns: .init(count: 3, min: 1, median: 2, mean: 7.0 / 3.0, max: 4),
                      // gpt turns: 5, 10, 1, 3, 2, 1, 4 words
                      answerWords: .init(count: 7, min: 1, p50: 3, p90: 10, max: 10),
                      // human turns: 5, 3, 3, 2, 2, 2, 2 words (<image> not counted)
                      questionWords: .init(count: 7, min: 2, p50: 2, p90: 5, max: 5),
                      requestsByStatus: ["done": 6, "failed": 1], tokens: .init(prompt: 600, completion: 450)),
                .init(type: "detail", samples: 2, byStatus: ["ok": 1, "parse_failed": 1],
                      failuresByReason: ["empty_response": 1],
                      turns: .init(count: 1, min: 1, median: 1, mean: 1, max: 1),
                      answerWords: .init(count: 1, min: 6, p50: 6, p90: 6, max: 6),
                      questionWords: .init(count: 1, min: 3, p50: 3, p90: 3, max: 3),
                      requestsByStatus: ["done": 2], tokens: .init(prompt: 140, completion: 50)),
                .init(type: "reasoning", samples: 1, byStatus: ["ok": 1], failuresByReason: [:],
                      turns: .init(count: 1, min: 1, median: 1, mean: 1, max: 1),
                      answerWords: .init(count: 1, min: 6, p50: 6, p90: 6, max: 6),
                      questionWords: .init(count: 1, min: 8, p50: 8, p90: 8, max: 8),
                      requestsByStatus: ["done": 1], tokens: .init(prompt: 120, completion: 70)),
            ])
        XCTAssertEqual(stats, expected)
        XCTAssertEqual(stats.tokens.total, 1430)
    }

    func testTypesWithOnlyRequestsOrNothingOk() throws {
        let f = try Fixture()
        try f.insertImage(1, "a.jpg")
        try f.insert(id: 1, type: "pending_only", image: 1, requestStatus: "pending", status: nil, response: nil, prompt: nil, completion: nil, finish: nil)
        try f.insert(id: 2, type: "bad", image: 1, status: "duplicate", reason: "same as sample 12", prompt: 5, completion: 6)
        try f.insert(id: 3, type: "bad", image: 1, status: "filtered", reason: nil, prompt: 1, completion: 2)
        let stats = try DatasetStats.compute(database: f.db)
        XCTAssertEqual(stats.types.map(\.type), ["bad", "pending_only"])
        XCTAssertEqual(stats.types[0].byStatus, ["duplicate": 1, "filtered": 1])
        XCTAssertEqual(stats.types[0].failuresByReason, ["same as sample 12": 1, "(no reason)": 1])
        XCTAssertNil(stats.types[0].turns)
        XCTAssertNil(stats.types[0].answerWords)
        XCTAssertEqual(stats.types[1].samples, 0)
        XCTAssertEqual(stats.types[1].requestsByStatus, ["pending": 1])
        XCTAssertEqual(stats.tokens, .init(prompt: 6, completion: 8))
        let text = stats.renderText()
        XCTAssertTrue(text.contains("duplicate"))
        XCTAssertTrue(text.contains("same as sample 12"))

        let emptyFixture = try Fixture()
        let empty = try DatasetStats.compute(database: emptyFixture.db)
        XCTAssertEqual(empty.types, [])
        XCTAssertTrue(empty.renderText().contains("no requests or samples yet"))
    }

    func testDistributionsAndReasonCodes() {
        XCTAssertEqual(S.summary([10, 1, 3, 2]), .init(count: 4, min: 1, median: 2.5, mean: 4, max: 10))
        XCTAssertEqual(S.summary([3, 1, 2]), .init(count: 3, min: 1, median: 2, mean: 2, max: 3))
        XCTAssertNil(S.summary([]))
        XCTAssertEqual(S.percentiles(Array(1...10)), .init(count: 10, min: 1, p50: 5, p90: 9, max: 10))
        XCTAssertEqual(S.percentiles(Array(1...100)), .init(count: 100, min: 1, p50: 50, p90: 90, max: 100))
        XCTAssertEqual(S.percentiles([7]), .init(count: 1, min: 7, p50: 7, p90: 7, max: 7))

        XCTAssertEqual(S.wordCount("  a  b\tc\nd  "), 4)
        XCTAssertEqual(S.wordCount(""), 0)
        XCTAssertEqual(S.wordCount("a\u{00A0}b\u{3000}c"), 3)
        XCTAssertEqual(S.wordCount("<image>\nWhat is it?", ignoring: "<image>"), 3)
        XCTAssertEqual(S.wordCount("What<image>is", ignoring: "<image>"), 2)

        XCTAssertEqual(S.reasonCode("no_question: no Question: label"), "no_question")
        XCTAssertEqual(S.reasonCode("finish_reason=length (the response hit max_tokens); empty_answer: x"), "finish_reason=length")
        XCTAssertEqual(S.reasonCode("empty_response"), "empty_response")
        XCTAssertEqual(S.reasonCode("same as sample 12"), "same as sample 12")
        XCTAssertEqual(S.reasonCode(nil), "(no reason)")
        XCTAssertEqual(S.reasonCode("  "), "(no reason)")
    }

    func testTextTableIsAlignedAndJSONEncodes() throws {
        let f = try Fixture.standard()
        try f.db.write { try $0.execute(sql: "UPDATE requests SET prompt_tokens = 1234567 WHERE id = 1") }
        let stats = try DatasetStats.compute(database: f.db)
        let text = stats.renderText()
        for heading in ["Dataset", "Samples by type and status", "Turns (Q/A pairs) per ok sample", "Answer length", "Question length",
                        "Requests and tokens by type", "Failures (non-ok samples) by reason"] {
            XCTAssertTrue(text.contains("\n" + heading) || text.hasPrefix(heading), heading)
        }
        XCTAssertTrue(text.contains("1,235,067"), text)  // conversation prompt tokens, grouped
        // Each right-aligned table: every line the same length.
        let sections = text.components(separatedBy: "\n\n")
        let byType = sections.first { $0.hasPrefix("Samples by type") }!.split(separator: "\n").dropFirst()
        XCTAssertEqual(byType.count, 5)  // header, 3 types, all
        XCTAssertEqual(Set(byType.map(\.count)).count, 1, byType.joined(separator: "\n"))
        XCTAssertTrue(byType.first!.hasPrefix("  type          samples  ok  parse_failed  truncated"), String(byType.first!))
        XCTAssertTrue(byType.contains { $0.hasPrefix("  conversation        6   3             2          1") }, byType.joined(separator: "\n"))
        let turns = sections.first { $0.hasPrefix("Turns") }!
        XCTAssertTrue(turns.contains("conversation        3    1     2.0  2.33    4"), turns)
        let failures = sections.first { $0.hasPrefix("Failures") }!
        XCTAssertTrue(failures.contains("conversation  no_question                 2"), failures)
        XCTAssertTrue(failures.contains("detail        empty_response              1"), failures)

        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(stats)
        let obj = try JSONSerialization.jsonObject(with: data) as! NSDictionary
        XCTAssertEqual((obj["tokens"] as! NSDictionary)["total"] as? Int, 1_235_327 + 570)
        let conv = (obj["types"] as! [NSDictionary])[0]
        XCTAssertEqual(conv["failures_by_reason"] as? NSDictionary, ["no_question": 2, "finish_reason=length": 1] as NSDictionary)
        XCTAssertEqual(try JSONDecoder().decode(DatasetStats.self, from: data), stats)
    }
}
