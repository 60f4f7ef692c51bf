import Foundation
import XCTest
@testable import Models

/// Reads the golden cases written by tools/reference/make_model_fixtures.py.
enum Fixtures {
    static var root: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures") }

    static func path(_ components: String...) -> String {
        components.reduce(root) { $0.appendingPathComponent($1) }.path
    }

    struct ArrayRef: Decodable {
        var file: String
        var shape: [Int]
    }

    static func caseJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent(name).appendingPathComponent("case.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func ints(_ json: [String: Any], _ key: String) -> [Int] {
        (json[key] as! [Any]).map { ($0 as! NSNumber).intValue }
    }

    /// The float32 array a case field points to, and its shape.
    static func floats(_ caseName: String, _ json: [String: Any], _ key: String) throws -> (values: [Float], shape: [Int]) {
        let ref = json[key] as! [String: Any]
        let file = ref["file"] as! String
        let shape = (ref["shape"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let data = try Data(contentsOf: root.appendingPathComponent(caseName).appendingPathComponent(file))
        let values = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        XCTAssertEqual(values.count, shape.reduce(1, *), "\(caseName)/\(file) size")
        return (values, shape)
    }

    static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
        return worst
    }

    /// A fresh temporary folder, removed at the end of the test.
    static func temporaryFolder(_ test: XCTestCase) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("model-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
