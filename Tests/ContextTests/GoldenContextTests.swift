import Contexts
import ForgeCore
import Foundation
import Ingest
import Store
import XCTest

/// Contexts must be byte-identical to the Python reference (tools/reference/context_reference.py)
/// on real-shaped COCO files with planted edge cases; see Fixtures/README.md.
final class GoldenContextTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/" + name, ofType: nil), "missing fixture \(name)")
    }

    func testContextsEqualPythonReference() throws {
        let dir = NSTemporaryDirectory() + "ctx-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try ForgeDatabase(path: dir + "/x.db")
        _ = try COCOIngestor(database: db).ingest(IngestOptions(
            captionsPath: try fixture("captions_small.json"), instancesPath: try fixture("instances_small.json")))
        let expectedData = try Data(contentsOf: URL(fileURLWithPath: try fixture("expected_contexts.json")))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: expectedData) as? [String: [String: Any]])
        XCTAssertGreaterThan(expected.count, 10)
        let source = AnnotationSource(database: db)
        var streamed: [Int64: ImageAnnotations] = [:]
        try source.forEachImage { streamed[$0.imageID] = $0 }
        XCTAssertEqual(streamed.count, expected.count, "every fixture image is stored")
        var checked = 0
        for (idText, want) in expected {
            let id = try XCTUnwrap(Int64(idText))
            let ann = try XCTUnwrap(try source.annotations(imageID: id), "image \(id)")
            XCTAssertEqual(streamed[id], ann, "streamed and single-image reads agree for \(id)")
            for type in ["conversation", "detail", "reasoning"] {
                let kind = ContextKind.builtin(forType: type)!
                let got = SymbolicContextFormatter.format(ann, kind: kind)
                XCTAssertEqual(got.text, want[type] as? String, "image \(id) type \(type)")
                if type == "detail" { XCTAssertEqual(got.droppedBoxes, want["dropped_boxes"] as? Int, "dropped boxes for \(id)") }
                checked += 1
            }
        }
        XCTAssertEqual(checked, expected.count * 3)
    }
}
