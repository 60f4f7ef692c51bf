import ForgeCore
import GRDB
@testable import Ingest
import Store
import XCTest

/// JSON written with single quotes, for readable inline fixtures.
func j(_ s: String) -> String { s.replacingOccurrences(of: "'", with: "\"") }

final class IngestTests: XCTestCase {
    func counts(_ db: ForgeDatabase) throws -> [Int] {
        try db.read { d in
            let (captions, boxes) = try AnnotationStore.counts(d)
            return [try Int.fetchOne(d, sql: "SELECT count(*) FROM images")!, captions, boxes,
                    try Int.fetchOne(d, sql: "SELECT count(*) FROM categories")!]
        }
    }

    func testIngestKeepsFieldsInFileOrder() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        let reports = try COCOIngestor(database: db).ingest(IngestOptions(
            captionsPath: t.file("c.json", COCOSamples.captions), instancesPath: t.file("i.json", COCOSamples.instances)))
        XCTAssertEqual(reports.map(\.captions), [3, 0])
        XCTAssertEqual(reports.map(\.boxes), [0, 3])
        XCTAssertEqual(reports[1].notices["box_outside_image"], 1)
        XCTAssertEqual(try counts(db), [2, 3, 3, 2])
        try db.read { d in
            XCTAssertEqual(try AnnotationStore.captions(imageID: 1, db: d),
                           [StoredCaption(id: 10, imageID: 1, seq: 0, text: "A man riding a horse."), StoredCaption(id: 12, imageID: 1, seq: 2, text: "Second.")])
            XCTAssertEqual(try AnnotationStore.captions(imageID: 2, db: d).map(\.text), ["Café \"x\""])
            XCTAssertEqual(try AnnotationStore.boxes(imageID: 1, db: d), [
                StoredBox(id: 100, imageID: 1, categoryID: 1, seq: 0, x: 10.5, y: 20.25, w: 300, h: 200, isCrowd: 0, area: 100.5),
                StoredBox(id: 102, imageID: 1, categoryID: 18, seq: 2, x: 600, y: 400, w: 80, h: 100, isCrowd: 0, area: 5),
            ])
            XCTAssertEqual(try AnnotationStore.boxes(imageID: 2, db: d).map(\.isCrowd), [1])
            let img = try Row.fetchOne(d, sql: "SELECT file_name, width, height FROM images WHERE id = 1")!
            XCTAssertEqual(img[0] as String, "000000000001.jpg"); XCTAssertEqual(img[1] as Int, 640); XCTAssertEqual(img[2] as Int, 480)
        }
    }

    func testReingestIsIdempotent() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        let opts = IngestOptions(captionsPath: t.file("c.json", COCOSamples.captions), instancesPath: t.file("i.json", COCOSamples.instances))
        _ = try COCOIngestor(database: db).ingest(opts)
        let dump = { try db.read { d in
            "\(try AnnotationStore.allCaptions(d))\(try AnnotationStore.allBoxes(d))" + (try Row.fetchAll(d, sql: "SELECT * FROM image_captions ORDER BY image_id").description)
                + (try Row.fetchAll(d, sql: "SELECT * FROM image_boxes ORDER BY image_id").description)
        } }
        let dump1 = try dump()
        _ = try COCOIngestor(database: db).ingest(opts)
        XCTAssertEqual(dump1, try dump(), "the same content, packed byte for byte the same")
        XCTAssertEqual(try counts(db), [2, 3, 3, 2])
    }

    func testCaptionsForUnknownImagesAreSkippedAndCounted() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        let json = COCOSamples.captions.replacingOccurrences(of: "{\"image_id\": 1, \"id\": 12", with: "{\"image_id\": 77, \"id\": 12")
        let path = t.file("c.json", json)
        let r = try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: path))
        XCTAssertEqual(r[0].skipped["unknown_image_id"], 1)
        XCTAssertEqual(r[0].captions, 2)
        XCTAssertTrue(r[0].examples["unknown_image_id"]![0].contains("annotations[2]"))
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: path, strict: true))) { e in
            XCTAssertTrue("\(e)".contains("image ids the file does not list"), "\(e)")
        }
    }

    func testAnnotationsBeforeImagesStillValidated() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        let json = """
        {"annotations": [{"image_id": 1, "id": 10, "caption": "a"}, {"image_id": 5, "id": 11, "caption": "b"}],
         "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}]}
        """
        let r = try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: t.file("c.json", json)))
        XCTAssertEqual(r[0].captions, 1)
        XCTAssertEqual(r[0].skipped["unknown_image_id"], 1)
        XCTAssertEqual(try counts(db)[1], 1)
    }

    /// Each bad-input class: a clear error naming the file and record, and the database unchanged.
    func testBadInputIsRejectedAndLosesNothing() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        _ = try COCOIngestor(database: db).ingest(IngestOptions(
            captionsPath: t.file("c.json", COCOSamples.captions), instancesPath: t.file("i.json", COCOSamples.instances)))
        let before = try counts(db)

        let validImage = j("{'id': 9, 'file_name': 'n.jpg', 'width': 10, 'height': 10}")
        let cases: [(String, String, COCOFileKind, [String])] = [
            ("malformed", j("{'images': [" + validImage + ","), .captions, ["malformed.json", "end of file"]),
            ("trailing-comma", j("{'images': [" + validImage + ",]}"), .captions, ["images[1]", "expected '{'"]),
            ("missing-key", j("{'images': [{'id': 9, 'width': 10, 'height': 10}]}"), .captions, ["images[0]", "file_name"]),
            ("wrong-type", j("{'images': [{'id': 9, 'file_name': 'n.jpg', 'width': '10', 'height': 10}]}"), .captions, ["images[0].width", "expected a number"]),
            ("fraction-id", j("{'images': [{'id': 9.5, 'file_name': 'n.jpg', 'width': 10, 'height': 10}]}"), .captions, ["images[0].id", "integer"]),
            ("zero-size", j("{'images': [{'id': 9, 'file_name': 'n.jpg', 'width': 0, 'height': 10}]}"), .captions, ["images[0]", "non-positive size"]),
            ("caption-null", j("{'images': [" + validImage + "], 'annotations': [{'image_id': 9, 'id': 1, 'caption': null}]}"), .captions, ["annotations[0].caption", "expected a string"]),
            ("bbox-short", j("{'images': [" + validImage + "], 'annotations': [{'image_id': 9, 'id': 1, 'category_id': 1, 'bbox': [1, 2, 3]}], 'categories': [{'id': 1, 'name': 'person'}]}"), .instances, ["annotations[0].bbox", "4 numbers"]),
            ("unknown-category", j("{'images': [" + validImage + "], 'annotations': [{'image_id': 9, 'id': 1, 'category_id': 99, 'bbox': [1, 2, 3, 4]}], 'categories': []}"), .instances, ["category_id 99"]),
            ("instances-as-captions", COCOSamples.instances, .captions, ["annotations[0]", "--instances"]),
            ("captions-as-instances", COCOSamples.captions, .instances, ["annotations[0]", "--captions"]),
            ("top-level-array", "[1, 2]", .captions, ["top level"]),
            ("not-coco", j("{'foo': 1}"), .captions, ["not a COCO"]),
            ("trailing-garbage", j("{'images': []} x"), .captions, ["after the top-level object"]),
            ("empty", "", .captions, ["empty"]),
            ("bad-escape", j("{'images': [{'id': 9, 'file_name': 'a\\q', 'width': 10, 'height': 10}]}"), .captions, ["images[0].file_name", "escape"]),
        ]
        for (name, body, kind, needles) in cases {
            let path = t.file(name + ".json", body)
            let opts = kind == .captions ? IngestOptions(captionsPath: path) : IngestOptions(instancesPath: path)
            XCTAssertThrowsError(try COCOIngestor(database: db).ingest(opts), name) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(name + ".json"), "\(name): error should name the file: \(text)")
                for n in needles { XCTAssertTrue(text.contains(n), "\(name): '\(n)' missing in: \(text)") }
            }
            XCTAssertEqual(try counts(db), before, "\(name) changed the database")
        }
        // Non-UTF-8 bytes inside a string.
        let bad = t.file("latin1.json", bytes: Array(#"{"images": [{"id": 9, "file_name": "caf"#.utf8) + [0xE9] + Array(#"", "width": 1, "height": 1}]}"#.utf8))
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: bad))) { e in
            XCTAssertTrue("\(e)".contains("UTF-8") && "\(e)".contains("images[0].file_name"), "\(e)")
        }
        // A missing file.
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: t.path + "/nope.json"))) { e in
            XCTAssertTrue("\(e)".contains("nope.json"), "\(e)")
        }
        // The second file failing rolls back the first one too.
        let good2 = t.file("good2.json", #"{"images": [\#(validImage)], "annotations": [{"image_id": 9, "id": 500, "caption": "new"}]}"#)
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: good2, instancesPath: t.file("e.json", ""))))
        XCTAssertEqual(try counts(db), before)
        XCTAssertEqual(try db.integrityCheck(), "ok")
    }

    func testErrorsGiveLineNumbers() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        let path = t.file("lines.json", "{\n\"images\": [\n{\"id\": 1, \"file_name\": \"a\", \"width\": 1, \"height\": 1},\n{\"id\": 2, \"file_name\": \"b\", \"width\": true, \"height\": 1}\n]}")
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: path))) { e in
            XCTAssertTrue("\(e)".contains("images[1].width (line 4"), "\(e)")
        }
    }

    func testScannerDecodesEscapesAndSurrogates() throws {
        let json = #""a\"b\\c\/d\n\t\u00e9\ud83d\ude00""#
        let bytes = Array(json.utf8)
        try bytes.withUnsafeBufferPointer { p in
            var s = JSONScanner(base: p.baseAddress!, count: p.count, file: "x")
            XCTAssertEqual(try s.readString(), "a\"b\\c/d\n\té😀")
        }
        let numbers = Array("[473.07, -1e2, 0, 12345678901234, 2.5E-3]".utf8)
        try numbers.withUnsafeBufferPointer { p in
            var s = JSONScanner(base: p.baseAddress!, count: p.count, file: "x")
            var got: [Double] = []
            try s.forEachElement { sc, _ in got.append(try sc.readNumber()) }
            XCTAssertEqual(got, [473.07, -100, 0, 12345678901234, 0.0025])
        }
    }

    func testImagesFolderChecked() throws {
        let t = TempDir()
        let db = try ForgeDatabase(path: t.path + "/x.db")
        try FileManager.default.createDirectory(atPath: t.path + "/imgs", withIntermediateDirectories: true)
        _ = t.file("imgs/000000000001.jpg", "x")
        let r = try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: t.file("c.json", COCOSamples.captions), imagesDir: t.path + "/imgs"))
        XCTAssertEqual(r[0].notices["image_file_missing"], 1)
        XCTAssertEqual(r[0].examples["image_file_missing"], ["000000000002.jpg"])
        XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: t.path + "/c.json", imagesDir: t.path + "/none")))
    }
}
