import ForgeCore
import Foundation
import GRDB
import Quality
import Store
import XCTest

/// Filters and dedup over a real store: statuses and reasons in `samples`, rejections and
/// decisions in their tables, incremental dedup across runs through the persisted band hashes.
final class StoreRunnerTests: XCTestCase {
    var dir: String!
    var db: ForgeDatabase!
    var nextRequest = 0

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "quality-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/q.db")
        try db.write { d in
            try d.execute(sql: "INSERT INTO categories(id, name) VALUES (18, 'dog')")
            try AnnotationStore.upsert(boxes: (1...3).map { StoredBox(id: $0, imageID: 7, categoryID: 18, seq: $0, x: 1, y: 1, w: 10, h: 10) }, db: d)
        }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func addSample(type: String = "conversation", image: Int64 = 1, question: String, answer: String) throws -> Int64 {
        nextRequest += 1
        let turns = [["from": "human", "value": "<image>\n" + question], ["from": "gpt", "value": answer]]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: turns), as: UTF8.self)
        return try db.write { d in
            try d.execute(sql: "INSERT INTO requests(cache_key, image_id, type, model, context, body_json, status) VALUES (?, ?, ?, 'm', 'ctx', '{}', 'done')",
                          arguments: ["k\(nextRequest)", image, type])
            let rid = d.lastInsertedRowID
            try d.execute(sql: "INSERT INTO samples(request_id, image_id, type, status, conversations_json, turns) VALUES (?, ?, ?, 'ok', ?, 1)",
                          arguments: [rid, image, type, json])
            return d.lastInsertedRowID
        }
    }

    func status(_ id: Int64) throws -> (String, String?) {
        try db.read { d in
            let r = try Row.fetchOne(d, sql: "SELECT status, reason FROM samples WHERE id = ?", arguments: [id])!
            return (r[0], r[1])
        }
    }

    let longAnswer = "The dog is lying on a soft gray couch in a bright living room, with its head resting on a red pillow and a ball on the floor beside it, while sunlight comes in through the window behind the couch."

    func testFilterStoresReasonsAndRestoresOnRerun() throws {
        let good = try addSample(question: "What is the dog doing?", answer: longAnswer)
        let leak = try addSample(question: "What is there?", answer: "According to the captions, a dog lies on a couch in a living room.")
        let count = try addSample(image: 7, question: "How many dogs?", answer: "There are two dogs lying on the couch together in the room.")
        let r = try QualityFilterRunner.run(database: db, stage: "filter", types: nil, config: FilterConfig())
        XCTAssertEqual(r.checked, 3)
        XCTAssertEqual(r.rejected, 2)
        XCTAssertEqual(try status(good).0, "ok")
        XCTAssertEqual(try status(leak).0, "filtered")
        XCTAssertTrue(try status(leak).1!.hasPrefix("filter source_leak: turn 2 mentions \"caption\""))
        XCTAssertEqual(try status(count).1, "filter count_mismatch: turn 2 says \"two dogs\" but the boxes list 3 dog")
        let rows = try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM quality_rejections WHERE stage = 'filter'") }
        XCTAssertEqual(rows, 2)
        // Rerun with the leak rule off: the leak sample is restored, the count one stays rejected.
        var cfg = FilterConfig()
        cfg.rules = ["count_mismatch"]
        let r2 = try QualityFilterRunner.run(database: db, stage: "filter", types: nil, config: cfg)
        XCTAssertEqual(r2.restored, 2)
        XCTAssertEqual(r2.rejected, 1)
        XCTAssertEqual(try status(leak).0, "ok")
        XCTAssertEqual(try status(count).0, "filtered")
    }

    /// The loader brings each sample's request finish_reason: an ok sample whose request ended at
    /// max_tokens (structured JSON closed early) is filtered with the stored reason.
    func testCutAtMaxTokensUsesTheRequestsFinishReason() throws {
        let cut = try addSample(question: "What is the dog doing?", answer: longAnswer)
        let whole = try addSample(question: "What is the dog doing now?", answer: longAnswer + " It is asleep.")
        try db.write { d in
            try d.execute(sql: "UPDATE requests SET finish_reason = 'length' WHERE id = (SELECT request_id FROM samples WHERE id = ?)", arguments: [cut])
            try d.execute(sql: "UPDATE requests SET finish_reason = 'stop' WHERE id = (SELECT request_id FROM samples WHERE id = ?)", arguments: [whole])
        }
        let loaded = try db.read { try SampleLoader.load($0, types: nil) }
        XCTAssertEqual(loaded.map(\.finishReason), ["length", "stop"])
        var cfg = FilterConfig()
        cfg.rules = ["cut_at_max_tokens", "repetition"]
        let r = try QualityFilterRunner.run(database: db, stage: "filter", types: nil, config: cfg)
        XCTAssertEqual(r.rejected, 1)
        XCTAssertEqual(r.byFilter, ["cut_at_max_tokens": 1])
        XCTAssertEqual(try status(whole).0, "ok")
        XCTAssertEqual(try status(cut).0, "filtered")
        XCTAssertEqual(try status(cut).1?.hasPrefix("filter cut_at_max_tokens: the response ended at max_tokens"), true)
    }

    func testDedupExactNearAndIncremental() throws {
        let a = try addSample(question: "What is the dog doing?", answer: longAnswer)
        let exact = try addSample(question: "what is the dog doing", answer: longAnswer.uppercased().replacingOccurrences(of: ",", with: ""))
        let near = try addSample(question: "What is the dog doing?", answer: longAnswer.replacingOccurrences(of: "bright", with: "sunny"))
        let other = try addSample(question: "What color is the bus?", answer: "The bus parked at the corner is bright yellow with a long black stripe along its side and a route sign above the windshield.")
        let otherType = try addSample(type: "reasoning", question: "What is the dog doing?", answer: longAnswer)
        var cfg = DedupConfig()
        let r = try DedupRunner.run(database: db, stage: "dedup", types: nil, config: cfg)
        XCTAssertEqual(r.considered, 5)
        XCTAssertEqual(r.exactDuplicates, 1)
        XCTAssertEqual(r.nearDuplicates, 1)
        XCTAssertEqual(try status(a).0, "ok")
        XCTAssertEqual(try status(exact).1, "exact duplicate of sample \(a) (same normalized text; the earlier sample is kept) [dedup]")
        XCTAssertEqual(try status(near).0, "duplicate")
        let nearReason = try status(near).1!
        XCTAssertTrue(nearReason.hasPrefix("duplicate of sample \(a) (jaccard 0."), nearReason)
        XCTAssertEqual(try status(other).0, "ok")
        XCTAssertEqual(try status(otherType).0, "ok", "per-type scope: another type is not compared")

        // Incremental: nothing new → nothing considered; a new near-duplicate of an old sample is
        // found through the stored band hashes.
        let r2 = try DedupRunner.run(database: db, stage: "dedup", types: nil, config: cfg)
        XCTAssertEqual(r2.considered, 0)
        let late = try addSample(question: "What is the dog doing?", answer: longAnswer.replacingOccurrences(of: "window", with: "big window"))
        let r3 = try DedupRunner.run(database: db, stage: "dedup", types: nil, config: cfg)
        XCTAssertEqual(r3.considered, 1)
        XCTAssertEqual(r3.previouslyKept, 2)
        XCTAssertEqual(r3.nearDuplicates, 1)
        XCTAssertTrue(try status(late).1!.hasPrefix("duplicate of sample \(a) "))
        let bands = try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM dedup_bands") }
        XCTAssertEqual(bands, 3, "band hashes of the kept samples only (one row of 16 per sample)")

        // The kept sample goes away (e.g. superseded): its duplicates are reopened and re-decided.
        try db.write { try $0.execute(sql: "UPDATE samples SET status = 'superseded' WHERE id = ?", arguments: [a]) }
        let r4 = try DedupRunner.run(database: db, stage: "dedup", types: nil, config: cfg)
        XCTAssertEqual(r4.reopened, 3)
        XCTAssertEqual(try status(exact).0, "ok", "the earliest of the reopened ones is kept now")
        XCTAssertEqual(try status(near).0, "duplicate")
        XCTAssertTrue(try status(near).1!.contains("of sample \(exact) "))

        // Global scope compares across types.
        cfg.scope = .global
        let r5 = try DedupRunner.run(database: db, stage: "dedup", types: nil, config: cfg)
        XCTAssertGreaterThan(r5.reopened, 0)
        XCTAssertEqual(try status(otherType).0, "duplicate")
    }
}
