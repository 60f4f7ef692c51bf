import XCTest
import Foundation
import Checkpoints
import ForgeCore

/// The .npy writer `predict --dump-logits` uses: NumPy 1.0 format, byte-exact header.
final class NumpyArrayFileTests: XCTestCase {
    func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npy-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func testHeaderIsNumPyVersion1PaddedTo64Bytes() throws {
        let preamble = NumpyArrayFile.preamble(shape: [13, 300])
        XCTAssertEqual(preamble.count % 64, 0)
        XCTAssertEqual(Array(preamble[0..<8]), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
        let headerLength = Int(preamble[8]) | Int(preamble[9]) << 8
        XCTAssertEqual(headerLength, preamble.count - 10)
        let header = String(decoding: preamble[10...], as: UTF8.self)
        XCTAssertTrue(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (13, 300), }"), header)
        XCTAssertTrue(header.hasSuffix("\n"))
        XCTAssertEqual(header.dropLast().trimmingCharacters(in: .whitespaces).count, "{'descr': '<f4', 'fortran_order': False, 'shape': (13, 300), }".count)
        // NumPy's repr of one-dimensional and empty shapes.
        XCTAssertTrue(String(decoding: NumpyArrayFile.preamble(shape: [7])[10...], as: UTF8.self).contains("'shape': (7,), }"))
        XCTAssertTrue(String(decoding: NumpyArrayFile.preamble(shape: [])[10...], as: UTF8.self).contains("'shape': (), }"))
    }

    func testRoundTripKeepsShapeAndEveryBit() throws {
        let values: [Float] = [0, -0.0, 1.5, -3.25e-7, .greatestFiniteMagnitude, .infinity, 42, 7]
        let path = temporaryPath("round.npy")
        try NumpyArrayFile.write(values, shape: [2, 4], to: path)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes.count, 128 + values.count * 4)
        // Little-endian float32 payload right after the 128-byte preamble: 1.5 = 0x3FC00000.
        XCTAssertEqual(Array(bytes[(128 + 8)..<(128 + 12)]), [0x00, 0x00, 0xC0, 0x3F])
        let (shape, back) = try NumpyArrayFile.read(path: path)
        XCTAssertEqual(shape, [2, 4])
        XCTAssertEqual(back.map(\.bitPattern), values.map(\.bitPattern))
    }

    func testWrongCountAndBadFilesAreErrors() throws {
        XCTAssertThrowsError(try NumpyArrayFile.write([1, 2, 3], shape: [2, 2], to: temporaryPath("bad.npy")))
        let truncated = temporaryPath("truncated.npy")
        try NumpyArrayFile.write([Float](repeating: 1, count: 6), shape: [2, 3], to: truncated)
        let data = try Data(contentsOf: URL(fileURLWithPath: truncated))
        try data.prefix(data.count - 4).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try NumpyArrayFile.read(path: truncated)) { error in
            XCTAssertTrue("\(error)".contains("truncated.npy"), "\(error)")
        }
        let text = temporaryPath("text.npy")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: text))
        XCTAssertThrowsError(try NumpyArrayFile.read(path: text))
    }
}
