import Contexts
import ForgeCore
import Foundation
import GRDB
import Ingest
import Store
import XCTest

/// A database written before `v_annotation_packs` (one `captions` / `boxes` row per annotation)
/// gives, once opened and migrated, exactly the contexts the Python reference writes, and
/// `context --all` lines byte-identical to a database built directly in the packed layout.
final class AnnotationMigrationTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ctxmig-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/" + name, ofType: nil), "missing fixture \(name)")
    }

    /// An empty database in the layout before the packs.
    func oldLayoutQueue(_ path: String) throws -> DatabaseQueue {
        let all = ForgeSchema.migrator.migrations
        let packs = try XCTUnwrap(all.firstIndex(of: "v_annotation_packs"))
        let queue = try DatabaseQueue(path: path)
        try ForgeSchema.migrator.migrate(queue, upTo: all[packs - 1])
        return queue
    }

    func allLines(_ db: ForgeDatabase, type: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        _ = try ContextLines.writeAll(database: db, type: type, kind: ContextKind.builtin(forType: type)!) { bytes += $0 }
        return bytes
    }

    /// The golden fixtures, written as the old ingest stored them (rows in shuffled order), then
    /// migrated: contexts equal the Python reference, `context --all` equals a fresh ingest.
    func testMigratedFixtureEqualsPythonReferenceAndFreshIngest() throws {
        let fresh = try ForgeDatabase(path: dir + "/fresh.db")
        _ = try COCOIngestor(database: fresh).ingest(IngestOptions(
            captionsPath: try fixture("captions_small.json"), instancesPath: try fixture("instances_small.json")))

        // The old layout, filled with the same records (from the fixture files through the ingest).
        let (images, categories, captions, boxes) = try fresh.read { d in
            (try Row.fetchAll(d, sql: "SELECT id, file_name, width, height, source FROM images"),
             try Row.fetchAll(d, sql: "SELECT id, name, supercategory FROM categories"),
             try AnnotationStore.allCaptions(d), try AnnotationStore.allBoxes(d))
        }
        XCTAssertGreaterThan(captions.count, 50)
        XCTAssertGreaterThan(boxes.count, 50)
        let oldPath = dir + "/old.db"
        let queue = try oldLayoutQueue(oldPath)
        var rng = SeededRandom(seed: 11, key: "rows")
        try queue.write { d in
            for r in images { try d.execute(sql: "INSERT INTO images(id, file_name, width, height, source) VALUES (?, ?, ?, ?, ?)", arguments: StatementArguments(Array(r.databaseValues))) }
            for r in categories { try d.execute(sql: "INSERT INTO categories(id, name, supercategory) VALUES (?, ?, ?)", arguments: StatementArguments(Array(r.databaseValues))) }
            for c in captions.shuffled(using: &rng) {
                try d.execute(sql: "INSERT INTO captions(id, image_id, seq, caption) VALUES (?, ?, ?, ?)", arguments: [c.id, c.imageID, c.seq, c.text])
            }
            for b in boxes.shuffled(using: &rng) {
                try d.execute(sql: "INSERT INTO boxes(id, image_id, category_id, seq, x, y, w, h, iscrowd, area) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              arguments: [b.id, b.imageID, b.categoryID, b.seq, b.x, b.y, b.w, b.h, b.isCrowd, b.area])
            }
        }
        try queue.close()

        let migrated = try ForgeDatabase(path: oldPath)
        try migrated.read { d in
            XCTAssertEqual(try AnnotationStore.allCaptions(d), captions)
            XCTAssertEqual(try AnnotationStore.allBoxes(d), boxes)
        }
        let expectedData = try Data(contentsOf: URL(fileURLWithPath: try fixture("expected_contexts.json")))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: expectedData) as? [String: [String: Any]])
        let source = AnnotationSource(database: migrated)
        for (idText, want) in expected {
            let ann = try XCTUnwrap(try source.annotations(imageID: try XCTUnwrap(Int64(idText))), "image \(idText)")
            for type in ["conversation", "detail", "reasoning"] {
                XCTAssertEqual(SymbolicContextFormatter.format(ann, kind: ContextKind.builtin(forType: type)!).text, want[type] as? String, "image \(idText) \(type)")
            }
        }
        for type in ["conversation", "detail"] {
            let got = try allLines(migrated, type: type)
            XCTAssertEqual(got.count, try allLines(fresh, type: type).count)
            XCTAssertEqual(got, try allLines(fresh, type: type), "context --all, \(type)")
        }
    }

    /// Odd rows (orphans, unknown categories, escapes, Python-only whitespace, equal seqs, U+0085)
    /// written straight into the old tables: after the migration, the same bytes as the same
    /// records stored through `AnnotationStore`, and one line checked by hand.
    func testMigratedOddRowsGiveTheSameBytes() throws {
        let caps: [(Int64, Int64, Int64, String)] = [
            (1, 10, 2, "second by seq"), (2, 10, 1, "  first by seq, padded \u{3000}"), (3, 10, 3, "tab\there \"q\" \\ \u{1}\u{1F}"),
            (4, 3, 0, "é unicode ✓"), (5, 3, 1, "\u{1C}py-space ends\u{1F}"), (6, 3, 2, "   "), (7, 3, 3, ""), (8, 5, 0, "orphan"),
            (12, 10, 3, "same seq, higher id"), (11, 10, 3, "same seq, lower id"), (13, 20, 0, "\u{85}next-line ends\u{85}"),
        ]
        let boxes: [StoredBox] = [
            StoredBox(id: 1, imageID: 10, categoryID: 1, seq: 1, x: 10.5, y: 20.25, w: 100, h: 50),
            StoredBox(id: 3, imageID: 10, categoryID: 2, seq: 9, x: -5, y: -5, w: 1000, h: 1000, isCrowd: 1),
            StoredBox(id: 4, imageID: 10, categoryID: 3, seq: 1, x: 1, y: 1, w: 0, h: 10),
            StoredBox(id: 6, imageID: 3, categoryID: 2, seq: 0, x: 50, y: 25, w: 25, h: 12.5),
            StoredBox(id: 7, imageID: 3, categoryID: 1, seq: 1, x: 1, y: 1, w: 1, h: -1),
            StoredBox(id: 11, imageID: 20, categoryID: 1, seq: 0, x: 0.0005, y: 0.9995, w: 0.5, h: 0.0005, area: 1e-7),
        ]
        func addImages(_ d: Database) throws {
            try d.execute(sql: "INSERT INTO categories (id, name) VALUES (1, 'person'), (2, 'odd \"cat\"\\\\ é')")
            for (id, w, h) in [(10, 640, 480), (3, 100, 50), (20, 1, 1)] {
                try d.execute(sql: "INSERT INTO images (id, file_name, width, height) VALUES (?, ?, ?, ?)", arguments: [id, "f\(id).jpg", w, h])
            }
        }
        let queue = try oldLayoutQueue(dir + "/old.db")
        try queue.write { d in
            try addImages(d)
            for (id, image, seq, text) in caps {
                try d.execute(sql: "INSERT INTO captions (id, image_id, seq, caption) VALUES (?, ?, ?, ?)", arguments: [id, image, seq, text])
            }
            for b in boxes {
                try d.execute(sql: "INSERT INTO boxes (id, image_id, category_id, seq, x, y, w, h, iscrowd, area) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              arguments: [b.id, b.imageID, b.categoryID, b.seq, b.x, b.y, b.w, b.h, b.isCrowd, b.area])
            }
        }
        try queue.close()
        let migrated = try ForgeDatabase(path: dir + "/old.db")
        let direct = try ForgeDatabase(path: dir + "/direct.db")
        try direct.write { d in
            try addImages(d)
            try AnnotationStore.upsert(captions: caps.map { StoredCaption(id: $0.0, imageID: $0.1, seq: $0.2, text: $0.3) }, db: d)
            try AnnotationStore.upsert(boxes: boxes, db: d)
        }
        for type in ["conversation", "detail"] {
            XCTAssertEqual(try allLines(migrated, type: type), try allLines(direct, type: type), type)
        }
        let lines = String(decoding: try allLines(migrated, type: "detail"), as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines.first.map(String.init),
                       #"{"image_id":3,"type":"detail","context":"é unicode ✓\npy-space ends\n\n\n\nodd \"cat\"\\\\ é: [0.5, 0.5, 0.75, 0.75]","dropped_boxes":1}"#)
        XCTAssertEqual(lines.last.map(String.init), #"{"image_id":20,"type":"detail","context":"next-line ends\n\nperson: [0.001, 1.0, 0.5, 1.0]","dropped_boxes":0}"#)
    }
}
