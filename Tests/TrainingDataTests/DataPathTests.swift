import ForgeCore
import Foundation
import GRDB
import Store
import TrainingData
import XCTest

/// Loaders (LLaVA JSON / JSONL, the store) with their errors, length grouping, the data cursor.
final class DataPathTests: XCTestCase {
    let turns = #"[{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]"#

    func testLLaVAJSONArrayAndJSONLinesLoadWithImagesResolved() throws {
        let dir = TestPaths.temporaryFolder("json")
        TestPaths.write("x", to: dir + "/a.jpg")
        TestPaths.write("x", to: dir + "/b.jpg")
        TestPaths.write("[\n  {\"id\": \"a\", \"image\": \"a.jpg\", \"conversations\": \(turns)},\n  {\"id\": 7, \"image\": \"b.jpg\", \"conversations\": \(turns)},\n  {\"id\": \"t\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"}, {\"from\": \"gpt\", \"value\": \"Hello, with ] and } in a string\"}]}\n]\n", to: dir + "/data.json")
        let examples = try LLaVAJSONLoader.load(path: dir + "/data.json", imagesFolder: dir)
        XCTAssertEqual(examples.map(\.id), ["a", "7", "t"])
        XCTAssertEqual(examples[0].imagePath, dir + "/a.jpg")
        XCTAssertNil(examples[2].imagePath)
        XCTAssertEqual(examples[2].turns[1].value, "Hello, with ] and } in a string")

        TestPaths.write("{\"id\": \"a\", \"image\": \"a.jpg\", \"conversations\": \(turns)}\n\n{\"id\": \"b\", \"image\": \"b.jpg\", \"conversations\": \(turns)}\n", to: dir + "/data.jsonl")
        XCTAssertEqual(try LLaVAJSONLoader.load(path: dir + "/data.jsonl", imagesFolder: dir).map(\.id), ["a", "b"])
    }

    func testBadJSONDataNamesTheRecordLineAndField() throws {
        let dir = TestPaths.temporaryFolder("badjson")
        TestPaths.write("x", to: dir + "/a.jpg")
        let good = "{\"id\": \"a\", \"image\": \"a.jpg\", \"conversations\": \(turns)}"
        // Malformed JSON on line 3 of a JSONL file.
        TestPaths.write(good + "\n" + good + "\n{\"id\": \"c\", \"conversations\": [}\n", to: dir + "/bad.jsonl")
        var e = forgeError { _ = try LLaVAJSONLoader.load(path: dir + "/bad.jsonl", imagesFolder: dir) }
        XCTAssertEqual(e?.location, "record 2 (line 3)")
        XCTAssertEqual(e?.file, dir + "/bad.jsonl")
        XCTAssertTrue(e?.message.hasPrefix("malformed JSON") ?? false, "\(String(describing: e))")
        // A missing image file names the record and the path.
        TestPaths.write("[\n" + good + ",\n{\"id\": \"b\", \"image\": \"missing.jpg\", \"conversations\": \(turns)}\n]", to: dir + "/missing.json")
        e = forgeError { _ = try LLaVAJSONLoader.load(path: dir + "/missing.json", imagesFolder: dir) }
        XCTAssertEqual(e?.location, "record 1 (line 3).image")
        XCTAssertTrue(e?.message.contains(dir + "/missing.jpg") ?? false, "\(String(describing: e))")
        // Missing conversations, wrong roles, an unclosed array.
        TestPaths.write("[{\"id\": \"a\", \"image\": \"a.jpg\"}]", to: dir + "/noconv.json")
        e = forgeError { _ = try LLaVAJSONLoader.load(path: dir + "/noconv.json", imagesFolder: dir) }
        XCTAssertEqual(e?.location, "record 0 (line 1).conversations")
        TestPaths.write("[{\"conversations\": [{\"from\": \"gpt\", \"value\": \"x\"}, {\"from\": \"human\", \"value\": \"y\"}]}]", to: dir + "/roles.json")
        e = forgeError { _ = try LLaVAJSONLoader.load(path: dir + "/roles.json", imagesFolder: dir) }
        XCTAssertEqual(e?.location, "record 0 (line 1).conversations[0].from")
        TestPaths.write("[" + good + ",\n" + good, to: dir + "/open.json")
        e = forgeError { _ = try LLaVAJSONLoader.load(path: dir + "/open.json", imagesFolder: dir) }
        XCTAssertTrue(e?.message.contains("not closed") ?? false, "\(String(describing: e))")
    }

    /// A store with ok, filtered and duplicate samples of two types.
    func makeStore(_ dir: String) throws -> String {
        let path = dir + "/forge.db"
        let db = try ForgeDatabase(path: path)
        try db.write { db in
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('image_root', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [dir])
            for image in 1...4 {
                try db.execute(sql: "INSERT INTO images(id, file_name, width, height) VALUES (?, ?, 10, 10)", arguments: [image, "img\(image).jpg"])
            }
            let rows: [(Int, String, String)] = [(1, "conversation", "ok"), (2, "conversation", "filtered"), (3, "detail", "ok"),
                                                 (4, "conversation", "ok"), (1, "detail", "duplicate"), (2, "detail", "ok")]
            for (i, row) in rows.enumerated() {
                try db.execute(sql: "INSERT INTO requests(id, cache_key, image_id, type, model, context, body_json, status) VALUES (?, ?, ?, ?, 'm', 'c', '{}', 'done')",
                               arguments: [i + 1, "k\(i)", row.0, row.1])
                try db.execute(sql: "INSERT INTO samples(request_id, image_id, type, status, conversations_json, turns) VALUES (?, ?, ?, ?, ?, 1)",
                               arguments: [i + 1, row.0, row.1, row.2, turns])
            }
        }
        for image in 1...4 { TestPaths.write("x", to: dir + "/img\(image).jpg") }
        return path
    }

    func testStoreLoaderTakesOkSamplesByTypeOrMix() throws {
        let dir = TestPaths.temporaryFolder("store")
        let path = try makeStore(dir)
        let all = try StoreExampleLoader.load(databasePath: path, selection: .types(nil), imagesFolder: nil, seed: 0)
        XCTAssertEqual(all.map(\.id), ["1", "3", "4", "6"])
        XCTAssertEqual(all[0].imagePath, dir + "/img1.jpg")
        let conversations = try StoreExampleLoader.load(databasePath: path, selection: .types(["conversation"]), imagesFolder: nil, seed: 0)
        XCTAssertEqual(conversations.map(\.id), ["1", "4"])
        XCTAssertTrue(conversations.allSatisfy { $0.type == "conversation" })
        // 2 conversation + 2 detail available; 0.5/0.5 takes all, 3:1 takes 2 conversation + the share of detail.
        let mixed = try StoreExampleLoader.load(databasePath: path, selection: SampleSelection.parseMix("conversation=0.75,detail=0.25"), imagesFolder: nil, seed: 0)
        XCTAssertEqual(mixed.filter { $0.type == "conversation" }.count, 2)
        XCTAssertEqual(mixed.filter { $0.type == "detail" }.count, 1)
        let e = forgeError { _ = try StoreExampleLoader.load(databasePath: path, selection: .types(["reasoning"]), imagesFolder: nil, seed: 0) }
        XCTAssertTrue(e?.message.contains("no ok samples of type \"reasoning\"") ?? false, "\(String(describing: e))")
        try FileManager.default.removeItem(atPath: dir + "/img4.jpg")
        let missing = forgeError { _ = try StoreExampleLoader.load(databasePath: path, selection: .types(nil), imagesFolder: nil, seed: 0) }
        XCTAssertEqual(missing?.location, "samples.id = 4.image")
        XCTAssertThrowsError(try SampleSelection.parseMix("conversation=abc"))
    }

    func testLengthGroupingIsDeterministicCompleteAndWithinBudget() {
        var random = SeededRandom(seed: 42)
        let lengths = (0..<200).map { _ in Int.random(in: 20...300, using: &random) }
        let images = (0..<200).map { $0 % 3 != 0 }
        let a = LengthGroupedBatcher(lengths: lengths, hasImage: images, batchTokens: 512, seed: 7)
        let b = LengthGroupedBatcher(lengths: lengths, hasImage: images, batchTokens: 512, seed: 7)
        let c = LengthGroupedBatcher(lengths: lengths, hasImage: images, batchTokens: 512, seed: 8)
        XCTAssertEqual(a.batches(epoch: 0), b.batches(epoch: 0))
        XCTAssertEqual(a.batches(epoch: 3), b.batches(epoch: 3))
        XCTAssertNotEqual(a.batches(epoch: 0), c.batches(epoch: 0))
        XCTAssertNotEqual(a.batches(epoch: 0), a.batches(epoch: 1))
        for epoch in 0..<2 {
            let batches = a.batches(epoch: epoch)
            XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<200), "every sequence once per epoch")
            for batch in batches {
                XCTAssertTrue(batch.count == 1 || batch.reduce(0) { $0 + lengths[$1] } <= 512)
                XCTAssertEqual(Set(batch.map { images[$0] }).count, 1, "one modality per batch")
            }
        }
        // Grouping: lengths inside a batch are closer than in a random pairing.
        let spread = a.batches(epoch: 0).filter { $0.count > 1 }.map { batch in batch.map { lengths[$0] }.max()! - batch.map { lengths[$0] }.min()! }
        XCTAssertLessThan(Double(spread.reduce(0, +)) / Double(spread.count), 140)
    }

    func testCursorResumedAtASavedPositionContinuesTheSameOrder() {
        let lengths = (0..<30).map { 10 + ($0 * 37) % 90 }
        let batcher = LengthGroupedBatcher(lengths: lengths, hasImage: lengths.map { $0 % 2 == 0 }, batchTokens: 150, seed: 1)
        let straight = DataCursor(batcher: batcher, gradientAccumulation: 2)
        var expected: [[[Int]]] = []
        for _ in 0..<(straight.stepsPerEpoch * 2 + 3) { expected.append(straight.nextStep().microBatches) }
        let first = DataCursor(batcher: batcher, gradientAccumulation: 2)
        for _ in 0..<5 { _ = first.nextStep() }
        let resumed = DataCursor(batcher: batcher, gradientAccumulation: 2, epoch: first.epoch, position: first.position)
        var rest: [[[Int]]] = []
        for _ in 5..<expected.count { rest.append(resumed.nextStep().microBatches) }
        XCTAssertEqual(rest, Array(expected[5...]))
    }
}
