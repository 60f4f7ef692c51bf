import ForgeCore
import Foundation
import GRDB
@testable import Store
import XCTest

/// The packed per-image captions and boxes: exact round trips, the old tables' upsert-by-id
/// semantics, damaged packs, and the migration from the per-annotation tables.
final class AnnotationStoreTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "packs-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    static let oddTexts: [String] = [
        "A man riding a horse.", "Café \"quoted\" and back\\slash", "", "   ", "\u{3000}padded\u{3000}",
        "tab\there\nnewline\r\u{1}\u{1F}", "emoji 😀 and 日本語 and ü", "\u{0}nul inside\u{0}",
        String(repeating: "very long caption ", count: 40_000) + "end", "'single' \"double\" `back`",
    ]

    func testOddCaptionsRoundTripExactly() throws {
        let db = try ForgeDatabase(path: dir + "/x.db")
        // Stored out of order, across two images; read back in (seq, id) order.
        var captions: [StoredCaption] = []
        for (k, text) in Self.oddTexts.enumerated().reversed() {
            captions.append(StoredCaption(id: Int64(1000 - k), imageID: Int64(k % 2), seq: Int64(k), text: text))
        }
        captions.append(StoredCaption(id: .max, imageID: .min, seq: .max, text: "extreme ids"))
        try db.write { try AnnotationStore.upsert(captions: captions, db: $0) }
        let want = captions.sorted { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
        try db.read { d in
            XCTAssertEqual(try AnnotationStore.allCaptions(d), want)
            XCTAssertEqual(try AnnotationStore.captions(imageID: 1, db: d), want.filter { $0.imageID == 1 })
            XCTAssertEqual(try AnnotationStore.captions(imageID: 42, db: d), [])
            XCTAssertEqual(try AnnotationStore.counts(d).captions, captions.count)
            // Bytes, not just String equality (which compares canonical equivalence).
            for (got, w) in zip(try AnnotationStore.allCaptions(d), want) { XCTAssertEqual(Array(got.text.utf8), Array(w.text.utf8)) }
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count FROM image_captions WHERE image_id = 0"), 5)
        }
    }

    func testBoxesWithExtremeValuesRoundTripBitForBit() throws {
        let db = try ForgeDatabase(path: dir + "/x.db")
        let values: [Double] = [0, -0.0, 473.07, -5, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
                                -.greatestFiniteMagnitude, 1e-300, 0.1 + 0.2, .infinity, -.infinity, .nan]
        var boxes: [StoredBox] = []
        for (k, v) in values.enumerated() {
            boxes.append(StoredBox(id: Int64(k) - 5, imageID: 7, categoryID: Int64(k) * 1_000_000_007, seq: Int64(values.count - k),
                                   x: v, y: -v, w: k % 3 == 0 ? 0 : v, h: values[(k + 1) % values.count],
                                   isCrowd: Int64(k % 3) - 1, area: v * 2))
        }
        boxes.append(StoredBox(id: .min, imageID: .max, categoryID: .min, seq: .min, x: 1, y: 2, w: 3, h: 4, isCrowd: .max, area: 5))
        try db.write { try AnnotationStore.upsert(boxes: boxes, db: $0) }
        let want = boxes.sorted { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
        let got = try db.read { try AnnotationStore.allBoxes($0) }
        XCTAssertEqual(got.count, want.count)
        for (g, w) in zip(got, want) {
            XCTAssertEqual([g.id, g.imageID, g.categoryID, g.seq, g.isCrowd], [w.id, w.imageID, w.categoryID, w.seq, w.isCrowd])
            XCTAssertEqual([g.x, g.y, g.w, g.h, g.area].map(\.bitPattern), [w.x, w.y, w.w, w.h, w.area].map(\.bitPattern), "box \(w.id)")
        }
        try db.read { d in
            let row = try XCTUnwrap(try Row.fetchOne(d, sql: "SELECT count, drawable FROM image_boxes WHERE image_id = 7"))
            XCTAssertEqual(row[0] as Int, values.count)
            XCTAssertEqual(row[1] as Int, boxes.filter { $0.imageID == 7 && $0.w > 0 && $0.h > 0 }.count)
            XCTAssertEqual(try AnnotationStore.counts(d).boxes, boxes.count)
        }
    }

    /// What `INSERT … ON CONFLICT(id) DO UPDATE` gave on the old tables: a stored id is replaced
    /// (and moves with its image_id), the later of two equal ids in a batch wins, an image left
    /// with nothing loses its row, and images not touched keep theirs.
    func testUpsertByIDKeepsTheOldTablesSemantics() throws {
        let db = try ForgeDatabase(path: dir + "/x.db")
        func c(_ id: Int64, _ image: Int64, _ seq: Int64, _ text: String) -> StoredCaption { StoredCaption(id: id, imageID: image, seq: seq, text: text) }
        try db.write { d in
            try AnnotationStore.upsert(captions: [c(1, 10, 0, "a"), c(2, 10, 1, "b"), c(3, 20, 2, "c"), c(4, 30, 3, "d"), c(2, 10, 5, "b later wins")], db: d)
        }
        XCTAssertEqual(try db.read { try AnnotationStore.allCaptions($0) }, [c(1, 10, 0, "a"), c(2, 10, 5, "b later wins"), c(3, 20, 2, "c"), c(4, 30, 3, "d")])
        try db.write { d in
            // id 3 moves from image 20 (now empty) to image 10; id 1 is rewritten; image 30 untouched.
            try AnnotationStore.upsert(captions: [c(3, 10, 1, "c moved"), c(1, 10, 0, "a again"), c(9, 40, 0, "new image")], db: d)
        }
        try db.read { d in
            XCTAssertEqual(try AnnotationStore.allCaptions(d), [c(1, 10, 0, "a again"), c(3, 10, 1, "c moved"), c(2, 10, 5, "b later wins"),
                                                                c(4, 30, 3, "d"), c(9, 40, 0, "new image")])
            XCTAssertEqual(try Int64.fetchAll(d, sql: "SELECT image_id FROM image_captions ORDER BY image_id"), [10, 30, 40])
        }
        // Boxes: the same rules.
        func b(_ id: Int64, _ image: Int64, _ seq: Int64, w: Double = 5) -> StoredBox { StoredBox(id: id, imageID: image, categoryID: 1, seq: seq, x: 0, y: 0, w: w, h: 5) }
        try db.write { try AnnotationStore.upsert(boxes: [b(1, 10, 0), b(2, 20, 1), b(2, 20, 2, w: 0)], db: $0) }
        try db.write { try AnnotationStore.upsert(boxes: [b(1, 20, 3)], db: $0) }
        try db.read { d in
            XCTAssertEqual(try AnnotationStore.allBoxes(d), [b(2, 20, 2, w: 0), b(1, 20, 3)])
            XCTAssertEqual(try Int64.fetchAll(d, sql: "SELECT image_id FROM image_boxes"), [20])
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT drawable FROM image_boxes WHERE image_id = 20"), 1)
        }
    }

    /// The radix + insertion sort of `merge` orders like a comparison sort by (imageID, seq, id),
    /// for negative and huge ids, one image, big groups out of order, and file order.
    func testKeySortEqualsComparisonSort() {
        var rng = SeededRandom(seed: 5, key: "keys")
        func check(_ keys: [PackSortKey], _ name: String) {
            var got = keys
            AnnotationStore.sortByImageSeqID(&got)
            let want = keys.sorted { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
            XCTAssertEqual(got.map(\.index), want.map(\.index), name)
        }
        let ids: [Int64] = [.min, -1, 0, 1, 255, 256, 65_536, 581_929, .max]
        check((0..<5000).map { i in PackSortKey(imageID: ids[Int(rng.next() % 9)], seq: Int64(rng.next() % 50) - 25, id: Int64(rng.next() % 1000), index: i) }, "random")
        check((0..<300).map { i in PackSortKey(imageID: 7, seq: Int64(300 - i), id: Int64(i), index: i) }, "one image, reversed (big group)")
        check((0..<2000).map { i in PackSortKey(imageID: Int64(rng.next() % 600_000), seq: Int64(i), id: Int64(bitPattern: rng.next()), index: i) }, "file order")
        check([], "empty")
        check([PackSortKey(imageID: 3, seq: 1, id: 2, index: 0), PackSortKey(imageID: 3, seq: 1, id: 1, index: 1)], "equal seq: by id")
    }

    /// A damaged pack is an error naming the table and the image, never a read outside the blob.
    func testDamagedPacksAreClearErrors() throws {
        let db = try ForgeDatabase(path: dir + "/x.db")
        try db.write { d in
            try AnnotationStore.upsert(captions: [StoredCaption(id: 1, imageID: 5, seq: 0, text: "hello world")], db: d)
            try AnnotationStore.upsert(boxes: [StoredBox(id: 1, imageID: 5, categoryID: 1, seq: 0, x: 1, y: 2, w: 3, h: 4)], db: d)
        }
        let goodCaptions = try XCTUnwrap(try db.read { try Data.fetchOne($0, sql: "SELECT packed FROM image_captions") })
        let goodBoxes = try XCTUnwrap(try db.read { try Data.fetchOne($0, sql: "SELECT packed FROM image_boxes") })
        var damaged: [(String, Data)] = [
            ("image_captions", Data()), ("image_captions", goodCaptions.prefix(3)), ("image_captions", goodCaptions.dropLast()),
            ("image_captions", goodCaptions + Data([0])), ("image_boxes", goodBoxes.dropLast()), ("image_boxes", goodBoxes + Data(count: 72)),
        ]
        var wrongVersion = goodCaptions; wrongVersion[0] = 9
        damaged.append(("image_captions", wrongVersion))
        var hugeLength = goodCaptions; hugeLength[21] = 0xFF; hugeLength[22] = 0xFF; hugeLength[23] = 0xFF; hugeLength[24] = 0x7F
        damaged.append(("image_captions", hugeLength))
        var hugeCount = goodBoxes; hugeCount[4] = 0x7F
        damaged.append(("image_boxes", hugeCount))
        for (table, blob) in damaged {
            let decode = { () throws -> Void in
                if table == "image_captions" { _ = try AnnotationStore.decodeCaptions(blob, imageID: 5) } else { _ = try AnnotationStore.decodeBoxes(blob, imageID: 5) }
            }
            XCTAssertThrowsError(try decode(), "\(table), \(blob.count) bytes") { e in
                XCTAssertTrue("\(e)".contains("\(table), image_id 5") && "\(e)".contains("damaged"), "\(e)")
            }
        }
    }

    /// A v1-layout database (one row per caption and box) upgrades in place: every field of every
    /// record kept (numbers bit for bit), per-image order (seq, id), and the old tables dropped.
    func testMigrationFromPerAnnotationTablesKeepsEverything() throws {
        let path = dir + "/old.db"
        let (captions, boxes) = try Self.writeOldLayoutDatabase(path: path)
        let db = try ForgeDatabase(path: path)
        try db.read { d in
            let gotCaptions = try AnnotationStore.allCaptions(d)
            let wantCaptions = captions.sorted { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
            XCTAssertEqual(gotCaptions.count, wantCaptions.count)
            for (g, w) in zip(gotCaptions, wantCaptions) { XCTAssertTrue(g == w, "\(g.id): \(g.text.prefix(60)) vs \(w.text.prefix(60))") }
            let want = boxes.sorted { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
            let got = try AnnotationStore.allBoxes(d)
            XCTAssertEqual(got.map(\.id), want.map(\.id))
            for (g, w) in zip(got, want) {
                XCTAssertEqual([g.imageID, g.categoryID, g.seq, g.isCrowd], [w.imageID, w.categoryID, w.seq, w.isCrowd])
                XCTAssertEqual([g.x, g.y, g.w, g.h, g.area].map(\.bitPattern), [w.x, w.y, w.w, w.h, w.area].map(\.bitPattern))
            }
            let tables = try String.fetchAll(d, sql: "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
            XCTAssertFalse(tables.contains("captions") || tables.contains("boxes") || tables.contains("captions_by_image"), "\(tables)")
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM images"), 3, "other tables untouched")
            XCTAssertEqual(try ForgeSchema.migrator.appliedMigrations(d), ForgeSchema.migrator.migrations)
        }
        XCTAssertEqual(try db.integrityCheck(), "ok")
    }

    /// An old-layout database at `path` (migrations up to the one before `v_annotation_packs`)
    /// with odd captions and boxes inserted in random order; returns what was inserted.
    static func writeOldLayoutDatabase(path: String) throws -> ([StoredCaption], [StoredBox]) {
        let all = ForgeSchema.migrator.migrations
        let packs = try XCTUnwrap(all.firstIndex(of: "v_annotation_packs"))
        let queue = try DatabaseQueue(path: path)
        try ForgeSchema.migrator.migrate(queue, upTo: all[packs - 1])
        var rng = SeededRandom(seed: 3, key: "old-layout")
        var captions: [StoredCaption] = []
        // (Not the NUL one: GRDB binds a String as a C string, so no v1 row could hold it.)
        for (k, text) in oddTexts.filter({ !$0.contains("\u{0}") }).enumerated() {
            captions.append(StoredCaption(id: Int64(k * 7 % 11), imageID: [1, 2, 3][k % 3], seq: Int64(k / 2), text: text))
        }
        var boxes: [StoredBox] = []
        for k in 0..<40 {
            let v = Double(rng.next() % 100_000) / 7 - 3000
            boxes.append(StoredBox(id: Int64(k) * 13 % 97, imageID: [1, 2, 3, 99][k % 4], categoryID: Int64(k % 3), seq: Int64(k / 3),
                                   x: v, y: v / 3, w: k % 5 == 0 ? 0 : v * 0.01, h: 0.1 + Double(k), isCrowd: Int64(k % 2), area: v * v))
        }
        captions.shuffle(using: &rng)
        boxes.shuffle(using: &rng)
        try queue.write { d in
            for id in [1, 2, 3] { try d.execute(sql: "INSERT INTO images(id, file_name, width, height) VALUES (?, ?, 640, 480)", arguments: [id, "\(id).jpg"]) }
            for c in captions {
                try d.execute(sql: "INSERT INTO captions(id, image_id, seq, caption) VALUES (?, ?, ?, ?)", arguments: [c.id, c.imageID, c.seq, c.text])
            }
            for b in boxes {
                try d.execute(sql: "INSERT INTO boxes(id, image_id, category_id, seq, x, y, w, h, iscrowd, area) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              arguments: [b.id, b.imageID, b.categoryID, b.seq, b.x, b.y, b.w, b.h, b.isCrowd, b.area])
            }
        }
        try queue.close()
        return (captions, boxes)
    }
}
