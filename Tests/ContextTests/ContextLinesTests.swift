import Contexts
import ForgeCore
import Foundation
import Ingest
import Store
import XCTest

/// `ContextLines.writeAll` (the byte path of `context --all`) must give exactly the lines of the
/// per-image path: `AnnotationSource.forEachImage` → `SymbolicContextFormatter` → `JSONText`.
final class ContextLinesTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/" + name, ofType: nil), "missing fixture \(name)")
    }

    /// The lines as `context --all` wrote them before the byte path.
    func referenceLines(_ db: ForgeDatabase, type: String, kind: ContextKind) throws -> (String, Int) {
        var all = "", dropped = 0
        try AnnotationSource(database: db).forEachImage(includeBoxes: kind == .captionsAndBoxes) { ann in
            let ctx = SymbolicContextFormatter.format(ann, kind: kind)
            dropped += ctx.droppedBoxes
            var line = "{\"image_id\":\(ann.imageID),\"type\":"
            JSONText.appendString(type, to: &line)
            line += ",\"context\":"
            JSONText.appendString(ctx.text, to: &line)
            line += ",\"dropped_boxes\":\(ctx.droppedBoxes)}\n"
            all += line
        }
        return (all, dropped)
    }

    func assertSameAsReference(_ db: ForgeDatabase, file: StaticString = #filePath, line: UInt = #line) throws {
        for type in ["conversation", "detail", "reasoning"] {
            let kind = ContextKind.builtin(forType: type)!
            let (want, wantDropped) = try referenceLines(db, type: type, kind: kind)
            for chunk in [1 << 20, 97] {
                var bytes: [UInt8] = [], chunks = 0
                let summary = try ContextLines.writeAll(database: db, type: type, kind: kind, chunkBytes: chunk) { piece in
                    XCTAssertEqual(piece.last, UInt8(ascii: "\n"), "chunks end on a line", file: file, line: line)
                    bytes += piece
                    chunks += 1
                }
                let got = String(decoding: bytes, as: UTF8.self)
                XCTAssertEqual(got, want, "type \(type), chunk \(chunk)", file: file, line: line)
                XCTAssertEqual(Array(got.utf8), Array(want.utf8), "bytes, type \(type)", file: file, line: line)
                XCTAssertEqual(summary.images, want.split(separator: "\n").count, file: file, line: line)
                XCTAssertEqual(summary.droppedBoxes, wantDropped, file: file, line: line)
                if chunk == 97 { XCTAssertGreaterThan(chunks, 1, file: file, line: line) }
            }
        }
    }

    func makeDatabase() throws -> (ForgeDatabase, String) {
        let dir = NSTemporaryDirectory() + "ctxlines-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (try ForgeDatabase(path: dir + "/x.db"), dir)
    }

    func testFixtureLinesEqualPerImagePath() throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try COCOIngestor(database: db).ingest(IngestOptions(
            captionsPath: try fixture("captions_small.json"), instancesPath: try fixture("instances_small.json")))
        try assertSameAsReference(db)
    }

    /// Records the ingestor would not write in this shape (orphans, unknown categories, escapes,
    /// Python-only whitespace, out-of-order ids), stored directly through `AnnotationStore`.
    func testOddRowsEqualPerImagePath() throws {
        let (db, dir) = try makeDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try db.write { d in
            try d.execute(sql: "INSERT INTO categories (id, name) VALUES (1, 'person'), (2, 'odd \"cat\"\\\\ \u{7}é')")
            for (id, w, h) in [(10, 640, 480), (3, 100, 50), (7, 33, 77), (20, 1, 1)] {
                try d.execute(sql: "INSERT INTO images (id, file_name, width, height) VALUES (?, ?, ?, ?)", arguments: [id, "f\(id).jpg", w, h])
            }
            let caps: [(Int, Int, Int, String)] = [
                (1, 10, 2, "second by seq"), (2, 10, 1, "  first by seq, padded \u{3000}"),
                (3, 10, 3, "tab\there \"quoted\" back\\slash \u{1}\u{1F} ctl"), (4, 3, 0, "é unicode ünïcode ✓"),
                (5, 3, 1, "\u{1C}py-space ends\u{1F}"), (6, 3, 2, "   "), (7, 3, 3, ""),
                (8, 5, 0, "orphan below"), (9, 999, 0, "orphan above"), (10, 7, 0, "x"),
                (12, 10, 3, "same seq, higher id"), (11, 10, 3, "same seq, lower id"),
                (13, 20, 0, "caption\nwith newline\r\u{8}\u{C}"),
            ]
            try AnnotationStore.upsert(captions: caps.map { StoredCaption(id: Int64($0.0), imageID: Int64($0.1), seq: Int64($0.2), text: $0.3) }, db: d)
            let boxes: [(Int, Int, Int, Int, Double, Double, Double, Double)] = [
                (1, 10, 1, 1, 10.5, 20.25, 100, 50), (2, 10, 2, 0, 0, 0, 640, 480), (3, 10, 9, 2, -5, -5, 1000, 1000),
                (4, 10, 1, 3, 1, 1, 0, 10), (5, 10, 1, 4, 0.32, 0.24, 0.5, 0.5), (6, 3, 2, 0, 50, 25, 25, 12.5),
                (7, 3, 1, 1, 1, 1, 1, -1), (8, 5, 1, 0, 1, 1, 1, 1), (9, 999, 1, 0, 1, 1, 1, 1),
                (10, 7, 1, 0, 0.0165, 0.0385, 3.3, 7.7), (11, 20, 1, 0, 0.0005, 0.9995, 0.5, 0.0005),
            ]
            try AnnotationStore.upsert(boxes: boxes.map { (id, image, cat, seq, x, y, w, h) in
                StoredBox(id: Int64(id), imageID: Int64(image), categoryID: Int64(cat), seq: Int64(seq), x: x, y: y, w: w, h: h)
            }, db: d)
        }
        try assertSameAsReference(db)
        // And one line checked by hand, so the two paths cannot agree on a wrong answer.
        var bytes: [UInt8] = []
        _ = try ContextLines.writeAll(database: db, type: "detail", kind: .captionsAndBoxes) { bytes += $0 }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(lines.first.map(String.init),
                       #"{"image_id":3,"type":"detail","context":"é unicode ünïcode ✓\npy-space ends\n\n\n\nodd \"cat\"\\\\ \u0007é: [0.5, 0.5, 0.75, 0.75]","dropped_boxes":1}"#)
    }
}
