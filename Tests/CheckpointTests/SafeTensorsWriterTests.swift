@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// SafeTensorsWriter against the reference writer's bytes, and round trips through the reader.
final class SafeTensorsWriterTests: XCTestCase {
    /// The values make_checkpoint_fixtures.py's `writer_values` gives tensor `index`, computed the
    /// same way in Float32 (one rounding per operation).
    static func values(index: Int, count: Int) -> [Float] {
        (0..<count).map { i in
            let v = (Float(i) * 0.1 - 1.3) + Float(index)
            return index == 3 ? v * 30000 : v
        }
    }

    static var referenceTensors: [(name: String, shape: [Int], data: [Float])] {
        Fixtures.manifest.writer.tensors.enumerated().map { index, tensor in
            (tensor.name, tensor.shape, values(index: index, count: tensor.shape.reduce(1, *)))
        }
    }

    func testOutputIsByteIdenticalToTheReferenceWriter() throws {
        let scratch = ScratchFolder()
        let writer = Fixtures.manifest.writer
        for (dtypeName, file) in writer.files {
            let dtype: TensorDType = dtypeName == "F32" ? .f32 : dtypeName == "F16" ? .f16 : .bf16
            let out = scratch.path + "/" + file
            try SafeTensorsWriter.write(Self.referenceTensors, dtype: dtype, metadata: writer.metadata, to: out)
            let ours = [UInt8](FileManager.default.contents(atPath: out)!)
            let reference = Fixtures.bytes(file)
            if ours != reference {
                let firstDifference = (0..<min(ours.count, reference.count)).first { ours[$0] != reference[$0] } ?? min(ours.count, reference.count)
                XCTFail("\(dtypeName): \(ours.count) bytes vs reference \(reference.count); first difference at byte \(firstDifference)")
            }
        }
    }

    func testHeaderFollowsTheSpec() throws {
        let scratch = ScratchFolder()
        let out = scratch.path + "/spec.safetensors"
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n ünï"]
        try SafeTensorsWriter.write([("z", [3], [1, 2, 3]), ("a", [1, 2], [4, 5])], metadata: metadata, to: out)
        let bytes = [UInt8](FileManager.default.contents(atPath: out)!)
        let length = bytes[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        XCTAssertEqual(length % 8, 0, "header padded to 8 bytes")
        XCTAssertEqual(bytes.count, 8 + length + 5 * 4)
        let header = Array(bytes[8..<(8 + length)])
        let text = String(decoding: header, as: UTF8.self)
        XCTAssertTrue(text.hasPrefix(#"{"__metadata__":{"format":"pt","note":"#), text)
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        XCTAssertTrue(trimmed.hasSuffix("}"))
        XCTAssertTrue(header[trimmed.utf8.count...].allSatisfy { $0 == 0x20 }, "padding is spaces")
        // Foundation's parser agrees it is JSON with the right fields.
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
        XCTAssertEqual(object["__metadata__"] as? [String: String], metadata)
        let a = try XCTUnwrap(object["a"] as? [String: Any])
        XCTAssertEqual(a["dtype"] as? String, "F32")
        XCTAssertEqual(a["shape"] as? [Int], [1, 2])
        XCTAssertEqual(a["data_offsets"] as? [Int], [0, 8], "sorted by name: a first")
        XCTAssertEqual((object["z"] as? [String: Any])?["data_offsets"] as? [Int], [8, 20])
        // And our reader reads it back.
        let file = try SafeTensorsFile(path: out)
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(try file.floats("z"), [1, 2, 3])
        XCTAssertEqual(try file.floats("a"), [4, 5])
    }

    func testRoundTripInEveryDtype() throws {
        let scratch = ScratchFolder()
        var random = SeededRandom(seed: 7)
        let values = (0..<1000).map { _ in Float.random(in: -4...4, using: &random) }
        for dtype in [TensorDType.f32, .f16, .bf16] {
            let out = scratch.path + "/\(dtype).safetensors"
            try SafeTensorsWriter.write([("w", [10, 100], values)], dtype: dtype, to: out)
            let back = try SafeTensorsFile(path: out).floats("w")
            let expected: [Float]
            switch dtype {
            case .f32: expected = values
            case .f16: expected = values.map { Float(Float16($0)) }
            default: expected = values.map { Float(bitPattern: UInt32(HalfFloat.bf16Bits($0)) << 16) }
            }
            assertBitExact(back, expected, "\(dtype)")
            let worst = zip(back, values).map { abs($0 - $1) / max(abs($1), 1e-3) }.max()!
            XCTAssertLessThan(worst, dtype == .f32 ? 1e-7 : dtype == .f16 ? 1e-3 : 8e-3, "\(dtype) relative error")
        }
    }

    func testPointerOverloadWritesTheSameBytes() throws {
        let scratch = ScratchFolder()
        let tensors = Self.referenceTensors
        let arrays = scratch.path + "/arrays.safetensors", pointers = scratch.path + "/pointers.safetensors"
        try SafeTensorsWriter.write(tensors, dtype: .bf16, metadata: ["format": "pt"], to: arrays)
        let storage = tensors.map { $0.data }
        let buffers = storage.map { values -> UnsafeMutableBufferPointer<Float> in
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = buffer.initialize(from: values)
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        let views = zip(tensors, buffers).map { SafeTensorsWriter.Tensor(name: $0.0.name, shape: $0.0.shape, values: UnsafeBufferPointer($0.1)) }
        try SafeTensorsWriter.write(tensors: views, dtype: .bf16, metadata: ["format": "pt"], to: pointers)
        XCTAssertEqual(FileManager.default.contents(atPath: arrays), FileManager.default.contents(atPath: pointers))
    }

    func testLargeTensorsSpanSeveralChunks() throws {
        let scratch = ScratchFolder()
        let count = 700_000  // > the writer's 1 MiB chunk in every dtype
        let values = (0..<count).map { Float($0 % 1000) * 0.25 }
        for dtype in [TensorDType.f32, .f16] {
            let out = scratch.path + "/big-\(dtype).safetensors"
            try SafeTensorsWriter.write([("big", [count], values), ("small", [2], [1, 2])], dtype: dtype, to: out)
            let file = try SafeTensorsFile(path: out)
            XCTAssertEqual(try file.floats("big"), values, "\(dtype)")
            XCTAssertEqual(try file.floats("small"), [1, 2])
        }
    }

    func testInvalidRequestsAndAtomicReplace() throws {
        let scratch = ScratchFolder()
        let out = scratch.path + "/x.safetensors"
        assertForgeError(["duplicate tensor name", "'a'"]) { try SafeTensorsWriter.write([("a", [1], [1]), ("a", [1], [2])], to: out) }
        assertForgeError(["shape [2, 2] does not match 3 values"]) { try SafeTensorsWriter.write([("a", [2, 2], [1, 2, 3])], to: out) }
        assertForgeError(["reserved"]) { try SafeTensorsWriter.write([("__metadata__", [1], [1])], to: out) }
        assertForgeError(["stores F32, F16 or BF16"]) { try SafeTensorsWriter.write([("a", [1], [1])], dtype: .i32, to: out) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing written on a rejected request")
        assertForgeError(["cannot create"]) { try SafeTensorsWriter.write([("a", [1], [1])], to: scratch.path + "/no/such/dir/x.safetensors") }
        try SafeTensorsWriter.write([("a", [1], [1])], to: out)
        try SafeTensorsWriter.write([("b", [1], [2])], to: out)
        XCTAssertEqual(try SafeTensorsFile(path: out).tensorNames, ["b"], "replaced in place")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [], "no temporary files left behind")
    }
}
