@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// GGUF reading against files written by gguf-py, with expected values from gguf-py's dequantize.
final class GGUFReaderTests: XCTestCase {
    func testEveryMetadataValueTypeMatchesGGUFPy() throws {
        let expected = Fixtures.manifest.gguf["quants_v3.gguf"]!
        let file = try GGUFFile(path: Fixtures.path("quants_v3.gguf"))
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.architecture, "testarch")
        XCTAssertEqual(file.metadataKeys, expected.metadata_keys, "keys in file order")
        XCTAssertGreaterThanOrEqual(expected.metadata.count, 20)
        for (key, want) in expected.metadata {
            guard let value = file.metadata[key] else { XCTFail("missing \(key)"); continue }
            XCTAssertTrue(Self.matches(value, type: want.type, element: want.element, expected: want.value),
                          "\(key): got \(value), expected \(want.type) \(want.value)")
        }
        // Accessors over the typed values.
        XCTAssertEqual(file.metadata["test.u64"]?.int, nil, "18e18 does not fit in Int")
        XCTAssertEqual(file.metadata["test.u64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(file.metadata["test.i64"]?.int, -9_000_000_000_000_000_000)
        XCTAssertEqual(file.metadata["test.array_string"]?.strings, ["a", "ü", "", "<0x0A>"])
        XCTAssertEqual(file.metadata["test.array_i32"]?.ints, [1, -2, 3])
        XCTAssertEqual(file.metadata["test.array_f32"]?.floats, [0.5, -1.25])
        XCTAssertEqual(file.metadata["test.nested_i32"]?.array?.map { $0.ints ?? [] }, [[1, 2], [3, 4, 5]])
        XCTAssertEqual(file.metadata["test.nested_str"]?.typeName, "array[array[string]]")
        XCTAssertEqual(file.metadata["test.f32"]?.double, Double(Float(3.14159)))
    }

    func testTensorInfosOffsetsAndRawBytesMatchGGUFPy() throws {
        for name in ["quants_v3.gguf", "aligned_v2.gguf"] {
            let expected = Fixtures.manifest.gguf[name]!
            let file = try GGUFFile(path: Fixtures.path(name))
            let bytes = Fixtures.bytes(name)
            XCTAssertEqual(file.version, expected.version, name)
            XCTAssertEqual(file.alignment, expected.alignment, name)
            XCTAssertEqual(file.dataOffset, expected.data_offset, name)
            XCTAssertEqual(file.tensorNamesInFileOrder, expected.tensors.map(\.name), name)
            XCTAssertEqual(file.tensorNames, expected.tensors.map(\.name).sorted(), name)
            for tensor in expected.tensors {
                let info = try XCTUnwrap(file.info(tensor.name), tensor.name)
                XCTAssertEqual(info.shape, tensor.shape, tensor.name)
                XCTAssertEqual(info.shape, tensor.ne.reversed(), "shape is ne reversed")
                XCTAssertEqual(info.dtype.description, tensor.type, tensor.name)
                XCTAssertEqual(file.ggmlType(tensor.name)?.name, tensor.type, tensor.name)
                XCTAssertEqual(info.byteCount, tensor.byte_count, tensor.name)
                XCTAssertEqual(tensor.absolute_offset % expected.alignment, 0, "gguf-py aligned \(tensor.name)")
                let raw = try file.rawBytes(tensor.name)
                XCTAssertEqual(Array(raw), Array(bytes[tensor.absolute_offset..<(tensor.absolute_offset + tensor.byte_count)]),
                               "\(name) \(tensor.name) raw bytes at gguf-py's offset")
            }
        }
    }

    func testDequantizationIsBitExactWithGGUFPy() throws {
        var covered = Set<String>()
        for name in ["quants_v3.gguf", "aligned_v2.gguf"] {
            let file = try GGUFFile(path: Fixtures.path(name))
            for tensor in Fixtures.manifest.gguf[name]!.tensors {
                guard let offset = tensor.expected_offset, let count = tensor.count else { continue }
                let values = try file.floats(tensor.name)
                assertBitExact(values, Fixtures.expected(offset: offset, count: count), "\(name) \(tensor.name) (\(tensor.type))")
                covered.insert(tensor.type)
            }
        }
        let required: Set = ["F32", "F16", "BF16", "F64", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"]
        XCTAssertEqual(covered.intersection(required), required, "every dequantizable type has a golden tensor")
    }

    func testRowSlicesDequantizeLikeTheWholeTensor() throws {
        let file = try GGUFFile(path: Fixtures.path("quants_v3.gguf"))
        for type in ["q4_0", "q5_1", "q4_k", "q6_k"] {
            let name = "quant." + type
            let whole = try file.floats(name)
            var row = [Float](repeating: .nan, count: 256)
            try row.withUnsafeMutableBufferPointer { try file.floats(name, rows: 1..<2, into: $0) }
            assertBitExact(row, Array(whole[256..<512]), "\(name) row 1")
        }
        var tooMany = [Float](repeating: 0, count: 256)
        assertForgeError(["quant.q8_0", "rows"]) {
            try tooMany.withUnsafeMutableBufferPointer { try file.floats("quant.q8_0", rows: 1..<3, into: $0) }
        }
    }

    func testDequantizerOnRawBlocks() throws {
        let file = try GGUFFile(path: Fixtures.path("quants_v3.gguf"))
        let raw = try file.rawBytes("quant.q5_0")
        var out = [Float](repeating: 0, count: 512)
        try out.withUnsafeMutableBufferPointer { try GGMLDequantizer.dequantize(.q5_0, from: raw, into: $0) }
        assertBitExact(out, try file.floats("quant.q5_0"), "GGMLDequantizer q5_0")
        var short = [Float](repeating: 0, count: 100)
        assertForgeError(["Q5_0", "room for 100"]) {
            try short.withUnsafeMutableBufferPointer { try GGMLDequantizer.dequantize(.q5_0, from: raw, into: $0) }
        }
        assertForgeError(["IQ4_NL", "not supported"]) {
            try short.withUnsafeMutableBufferPointer { try GGMLDequantizer.dequantize(.iq4_nl, from: raw, into: $0) }
        }
    }

    func testUnsupportedAndIntegerTypesFailNamingTensorAndType() throws {
        let file = try GGUFFile(path: Fixtures.path("quants_v3.gguf"))
        XCTAssertEqual(file.info("unsupported.iq4_nl")?.dtype, .gguf(.iq4_nl))
        XCTAssertEqual(try file.rawBytes("unsupported.iq4_nl").count, 36, "raw bytes still readable")
        assertForgeError(["unsupported.iq4_nl", "IQ4_NL", "not supported", "quants_v3.gguf"]) { try file.floats("unsupported.iq4_nl") }
        assertForgeError(["integer.i8", "integer type"]) { try file.floats("integer.i8") }
        XCTAssertEqual(file.info("integer.i32")?.dtype, .i32)
        let i32 = try file.rawBytes("integer.i32")
        XCTAssertEqual((0..<3).map { Int32(littleEndian: i32.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }, [7, -8, 1 << 30])
        assertForgeError(["no tensor named 'missing'"]) { try file.floats("missing") }
    }

    // MARK: - Malformed headers (hand-built)

    private func open(_ bytes: [UInt8]) throws -> GGUFFile {
        let scratch = ScratchFolder()
        return try GGUFFile(path: scratch.write("bad.gguf", bytes))
    }

    private func oneTensor(ne: [UInt64] = [32], type: UInt32 = 0, offset: UInt64 = 0, dataBytes: Int = 128) -> GGUFBuilder {
        var b = GGUFBuilder()
        b.addString("general.architecture", "llama")
        b.tensors = [("t", ne, type, offset)]
        b.data = [UInt8](repeating: 0, count: dataBytes)
        return b
    }

    func testHandBuiltFileLoads() throws {
        let file = try open(oneTensor().build())
        XCTAssertEqual(file.info("t")?.shape, [32])
        XCTAssertEqual(try file.floats("t"), [Float](repeating: 0, count: 32))
    }

    func testHeaderErrors() throws {
        assertForgeError(["too short"]) { try open(Array("GGU".utf8)) }
        assertForgeError(["not a GGUF file"]) { try open(Array("GGML\u{3}\0\0\0".utf8) + [UInt8](repeating: 0, count: 16)) }
        var v1 = oneTensor(); v1.version = 1
        assertForgeError(["version 1"]) { try open(v1.build()) }
        var v9 = oneTensor(); v9.version = 9
        assertForgeError(["unsupported GGUF version 9"]) { try open(v9.build()) }
        var big = oneTensor(); big.version = 0x0300_0000
        assertForgeError(["big-endian"]) { try open(big.build()) }

        // Counts that cannot fit in the file.
        var w = ByteWriter()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(1 << 40); w.u64(0)
        assertForgeError(["tensor count"]) { try open(w.bytes) }
        w = ByteWriter()
        w.bytes = Array("GGUF".utf8); w.u32(3); w.u64(0); w.u64(UInt64.max)
        assertForgeError(["metadata count"]) { try open(w.bytes) }

        // Metadata errors.
        var badType = GGUFBuilder()
        badType.metadata = [("k", { w in w.u32(13); w.u32(0) })]
        assertForgeError(["metadata 'k'", "unknown metadata value type 13"]) { try open(badType.build()) }
        var badBool = GGUFBuilder()
        badBool.metadata = [("flag", { w in w.u32(7); w.u8(2) })]
        assertForgeError(["metadata 'flag'", "bool"]) { try open(badBool.build()) }
        var longString = GGUFBuilder()
        longString.metadata = [("s", { w in w.u32(8); w.u64(1 << 50) })]
        assertForgeError(["metadata 's'", "string length"]) { try open(longString.build()) }
        var longArray = GGUFBuilder()
        longArray.metadata = [("a", { w in w.u32(9); w.u32(4); w.u64(1 << 40) })]
        assertForgeError(["metadata 'a'", "array length"]) { try open(longArray.build()) }
        var hugeArray = GGUFBuilder()
        hugeArray.metadata = [("a", { w in w.u32(9); w.u32(0); w.u64(1 << 25); w.bytes += [UInt8](repeating: 0, count: 1 << 25) })]
        assertForgeError(["metadata 'a'", "exceeds the limit"]) { try open(hugeArray.build()) }
        var badElement = GGUFBuilder()
        badElement.metadata = [("a", { w in w.u32(9); w.u32(99); w.u64(1) })]
        assertForgeError(["unknown array element type 99"]) { try open(badElement.build()) }
        var deep = GGUFBuilder()
        deep.metadata = [("deep", { w in w.u32(9); for _ in 0..<20 { w.u32(9); w.u64(1) } })]
        assertForgeError(["nested deeper"]) { try open(deep.build()) }
        var duplicate = GGUFBuilder()
        duplicate.addU32("k", 1)
        duplicate.addU32("k", 2)
        assertForgeError(["duplicate metadata key", "'k'"]) { try open(duplicate.build()) }
        var alignment = oneTensor()
        alignment.addU32("general.alignment", 48)
        assertForgeError(["general.alignment", "power of two"]) { try open(alignment.build()) }
        var zeroAlignment = oneTensor()
        zeroAlignment.addU32("general.alignment", 0)
        assertForgeError(["general.alignment"]) { try open(zeroAlignment.build()) }
    }

    func testTensorInfoErrors() throws {
        assertForgeError(["tensor 't'", "unknown ggml type id 4"]) { try open(oneTensor(type: 4).build()) }
        assertForgeError(["tensor 't'", "unknown ggml type id 1000"]) { try open(oneTensor(type: 1000).build()) }
        assertForgeError(["tensor 't'", "5 dimensions"]) { try open(oneTensor(ne: [1, 1, 1, 1, 1]).build()) }
        assertForgeError(["tensor 't'", "absurd"]) { try open(oneTensor(ne: [1 << 40]).build()) }
        assertForgeError(["tensor 't'", "absurd"]) { try open(oneTensor(ne: [UInt64.max]).build()) }
        // A zero dimension must not hide an overflowing product of the others.
        assertForgeError(["tensor 't'", "absurd"]) { try open(oneTensor(ne: [0, 1 << 62, 1 << 62]).build()) }
        assertForgeError(["tensor 't'", "block size"]) { try open(oneTensor(ne: [33], type: 2).build()) }
        assertForgeError(["tensor 't'", "not a multiple of the alignment"]) { try open(oneTensor(offset: 4).build()) }
        assertForgeError(["tensor 't'", "past the end"]) { try open(oneTensor(offset: 1 << 40).build()) }
        assertForgeError(["tensor 't'", "runs past the end"]) { try open(oneTensor(ne: [32, 2], dataBytes: 200).build()) }
        var twice = oneTensor()
        twice.tensors.append(("t", [32], 0, 128))
        twice.data += [UInt8](repeating: 0, count: 128)
        assertForgeError(["tensor 't'", "duplicate tensor name"]) { try open(twice.build()) }
        var overlap = oneTensor(dataBytes: 256)
        overlap.tensors.append(("u", [32], 0, 64))
        assertForgeError(["overlaps tensor"]) { try open(overlap.build()) }
        var truncatedName = ByteWriter()
        truncatedName.bytes = Array("GGUF".utf8); truncatedName.u32(3); truncatedName.u64(1); truncatedName.u64(0); truncatedName.u64(5)
        truncatedName.bytes += Array("ab".utf8)
        XCTAssertThrowsError(try open(truncatedName.bytes)) { XCTAssertTrue($0 is ForgeError) }
    }

    func testMissingFileIsAnIOError() {
        assertForgeError(["/no/such/file.gguf", "cannot open"]) { try GGUFFile(path: "/no/such/file.gguf") }
    }

    // MARK: - Helpers

    static func matches(_ value: GGUFValue, type: String, element: String?, expected: AnyJSON) -> Bool {
        switch (type, value, expected) {
        case ("uint8", .uint8(let v), .int(let e)): return Int64(v) == e
        case ("int8", .int8(let v), .int(let e)): return Int64(v) == e
        case ("uint16", .uint16(let v), .int(let e)): return Int64(v) == e
        case ("int16", .int16(let v), .int(let e)): return Int64(v) == e
        case ("uint32", .uint32(let v), .int(let e)): return Int64(v) == e
        case ("int32", .int32(let v), .int(let e)): return Int64(v) == e
        case ("uint64", .uint64(let v), .int(let e)): return e >= 0 && UInt64(e) == v
        case ("uint64", .uint64(let v), .uint(let e)): return v == e
        case ("int64", .int64(let v), .int(let e)): return v == e
        case ("float32", .float32(let v), .double(let e)): return v == Float(e)
        case ("float32", .float32(let v), .int(let e)): return v == Float(e)
        case ("float64", .float64(let v), .double(let e)): return v == e
        case ("bool", .bool(let v), .bool(let e)): return v == e
        case ("string", .string(let v), .string(let e)): return v == e
        case ("array", .array(let values), .array(let items)):
            guard values.count == items.count, let element else { return false }
            return zip(values, items).allSatisfy { value, item in
                if element == "array", case .array(let inner) = item {
                    let innerType = inner.first.map { first -> String in
                        if case .string = first { return "string" }
                        if case .double = first { return "float32" }
                        if case .bool = first { return "bool" }
                        return "int32"
                    } ?? "int32"
                    return matches(value, type: "array", element: innerType, expected: item)
                }
                return matches(value, type: element, element: nil, expected: item)
            }
        default: return false
        }
    }
}
