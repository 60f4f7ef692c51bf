@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// safetensors reading against files written by the `safetensors` package.
final class SafeTensorsReaderTests: XCTestCase {
    func testFixturesMatchTheReferenceValues() throws {
        for (name, expected) in Fixtures.manifest.safetensors {
            let checkpoint = try SafeTensorsCheckpoint(path: Fixtures.path(name))
            XCTAssertEqual(checkpoint.tensorNames, expected.tensors.map(\.name).sorted(), name)
            XCTAssertEqual(checkpoint.metadata, expected.metadata, name)
            for tensor in expected.tensors {
                let info = try XCTUnwrap(checkpoint.info(tensor.name), "\(name) \(tensor.name)")
                XCTAssertEqual(info.dtype.description, tensor.dtype, "\(name) \(tensor.name)")
                XCTAssertEqual(info.shape, tensor.shape, "\(name) \(tensor.name)")
                if let offset = tensor.expected_offset, let count = tensor.count {
                    XCTAssertEqual(info.elementCount, count)
                    assertBitExact(try checkpoint.floats(tensor.name), Fixtures.expected(offset: offset, count: count), "\(name) \(tensor.name)")
                } else if let ints = tensor.ints {
                    let raw = try checkpoint.rawBytes(tensor.name)
                    let decoded: [Int]
                    switch info.dtype {
                    case .i64: decoded = (0..<ints.count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
                    case .i32: decoded = (0..<ints.count).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
                    case .u8: decoded = raw.map { Int($0) }
                    default: XCTFail("unexpected dtype \(info.dtype)"); continue
                    }
                    XCTAssertEqual(decoded, ints, "\(name) \(tensor.name)")
                    assertForgeError([tensor.name, "integer type"]) { try checkpoint.floats(tensor.name) }
                }
            }
        }
    }

    func testShardedCheckpointOpensFromFolderIndexOrShard() throws {
        let folder = Fixtures.path("sharded")
        let byFolder = try SafeTensorsCheckpoint(path: folder)
        XCTAssertEqual(byFolder.files.count, 2)
        XCTAssertNotNil(byFolder.indexPath)
        let byIndex = try SafeTensorsCheckpoint(path: folder + "/model.safetensors.index.json")
        XCTAssertEqual(byIndex.tensorNames, byFolder.tensorNames)
        XCTAssertEqual(byFolder.tensorNames, ["lm_head.weight", "model.embed.weight", "model.layers.0.weight", "model.layers.1.weight"])
        XCTAssertEqual(byFolder.totalParameters, 12 + 12 + 6 + 6)
        let shard = try SafeTensorsCheckpoint(path: folder + "/model-00002-of-00002.safetensors")
        XCTAssertEqual(shard.tensorNames, ["lm_head.weight", "model.layers.1.weight"])
        XCTAssertEqual(try shard.floats("lm_head.weight"), try byFolder.floats("lm_head.weight"))
    }

    func testRowSlices() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("f32.safetensors"))
        let whole = try file.floats("model.embed_tokens.weight")  // [4, 6]
        var rows = [Float](repeating: 0, count: 12)
        try rows.withUnsafeMutableBufferPointer { try file.floats("model.embed_tokens.weight", rows: 2..<4, into: $0) }
        XCTAssertEqual(rows, Array(whole[12..<24]))
        let bf16 = try SafeTensorsFile(path: Fixtures.path("bf16.safetensors"))
        var one = [Float](repeating: 0, count: 3)
        try one.withUnsafeMutableBufferPointer { try bf16.floats("w", rows: 4..<5, into: $0) }
        XCTAssertEqual(one, Array(try bf16.floats("w")[12..<15]))
    }

    func testScalarAndEmptyTensors() throws {
        let file = try SafeTensorsFile(path: Fixtures.path("f32.safetensors"))
        XCTAssertEqual(file.info("scalar")?.shape, [])
        XCTAssertEqual(try file.floats("scalar"), [1.5])
        XCTAssertEqual(file.info("empty")?.shape, [0, 3])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertEqual(try file.rawBytes("empty").count, 0)
    }

    // MARK: - Malformed headers (hand-built)

    private func open(_ bytes: [UInt8]) throws -> SafeTensorsFile {
        let scratch = ScratchFolder()
        return try SafeTensorsFile(path: scratch.write("bad.safetensors", bytes))
    }

    private func open(header: String, data: Int = 16) throws -> SafeTensorsFile {
        try open(safetensorsBytes(header: header, data: [UInt8](repeating: 0, count: data)))
    }

    func testHandBuiltFileLoads() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        let file = try open(header: header)
        XCTAssertEqual(try file.floats("a"), [0, 0, 0, 0])
        XCTAssertEqual(file.headerLength, header.utf8.count)
    }

    func testHeaderLengthErrors() {
        assertForgeError(["too short"]) { try open([1, 2, 3]) }
        assertForgeError(["runs past the end"]) { try open(safetensorsBytes(header: "{}", data: [], declaredLength: 100)) }
        assertForgeError(["absurd"]) { try open(safetensorsBytes(header: "{}", data: [], declaredLength: UInt64.max)) }
        assertForgeError(["not valid JSON"]) { try open(safetensorsBytes(header: "", data: [])) }
    }

    func testHeaderContentErrors() {
        assertForgeError(["not valid JSON"]) { try open(header: #"{"a":"#) }
        assertForgeError(["not valid JSON"]) { try open(header: "\u{0}\u{0}\u{0}\u{0}") }
        assertForgeError(["not an object"]) { try open(header: "[1,2]") }
        var body = Array(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#.utf8)
        body.insert(0xFF, at: 3)  // a lone 0xFF inside the tensor name is never valid UTF-8
        var invalid = ByteWriter()
        invalid.u64(UInt64(body.count))
        assertForgeError(["not valid UTF-8", "header byte 3"]) { try open(invalid.bytes + body) }
        assertForgeError(["duplicate key \"a\""]) {
            try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#)
        }
        assertForgeError(["tensor 'a'", "unknown dtype 'Q4'"]) { try open(header: #"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "F64 is not supported"]) { try open(header: #"{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#) }
        assertForgeError(["tensor 'a'", "dtype"]) { try open(header: #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "shape"]) { try open(header: #"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "not a non-negative integer"]) { try open(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "not a non-negative integer"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "absurd"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4]}}"#) }
        assertForgeError(["tensor 'a'", "absurd"]) {
            try open(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}"#)
        }
        // A zero dimension must not hide an overflowing product of the others.
        assertForgeError(["tensor 'a'", "absurd"]) {
            try open(header: #"{"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}"#)
        }
        assertForgeError(["tensor 'a'", "data_offsets"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#) }
        assertForgeError(["tensor 'a'", "increasing"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#) }
        assertForgeError(["tensor 'a'", "increasing"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#) }
        assertForgeError(["tensor 'a'", "past the end"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}"#) }
        assertForgeError(["tensor 'a'", "span 8 bytes", "needs 4"]) { try open(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#) }
        assertForgeError(["tensor 'a'", "span 4 bytes"]) { try open(header: #"{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,4]}}"#) }
        assertForgeError(["overlaps tensor 'a'", "tensor 'b'"]) {
            try open(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#)
        }
        assertForgeError(["__metadata__"]) { try open(header: #"{"__metadata__":{"k":1}}"#) }
        assertForgeError(["__metadata__ is not an object"]) { try open(header: #"{"__metadata__":"x"}"#) }
    }

    func testAdjacentAndEmptyTensorsDoNotCountAsOverlap() throws {
        let file = try open(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#)
        XCTAssertEqual(file.tensorNames, ["a", "b", "e"])
    }

    func testShardIndexErrors() throws {
        let scratch = ScratchFolder()
        let shard = safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 128, 63])
        scratch.write("s1.safetensors", shard)
        scratch.write("s2.safetensors", shard)
        func index(_ text: String) -> String { scratch.write("model.safetensors.index.json", text: text) }

        assertForgeError(["not valid JSON"]) { try SafeTensorsCheckpoint(path: index("{")) }
        assertForgeError(["weight_map"]) { try SafeTensorsCheckpoint(path: index(#"{"metadata":{}}"#)) }
        assertForgeError(["weight_map['b']", "does not contain it"]) { try SafeTensorsCheckpoint(path: index(#"{"weight_map":{"b":"s1.safetensors"}}"#)) }
        assertForgeError(["missing.safetensors", "cannot open"]) { try SafeTensorsCheckpoint(path: index(#"{"weight_map":{"a":"missing.safetensors"}}"#)) }
        assertForgeError(["leaves the checkpoint folder"]) { try SafeTensorsCheckpoint(path: index(#"{"weight_map":{"a":"../s1.safetensors"}}"#)) }
        assertForgeError(["leaves the checkpoint folder"]) { try SafeTensorsCheckpoint(path: index(#"{"weight_map":{"a":"/etc/passwd"}}"#)) }
        assertForgeError(["shard must be a file name"]) { try SafeTensorsCheckpoint(path: index(#"{"weight_map":{"a":3}}"#)) }
        // Two shards both holding 'a': ambiguous, even though the index names one of them.
        let two = scratch.path + "/two"
        try FileManager.default.createDirectory(atPath: two, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: two + "/s1.safetensors", contents: Data(shard))
        let other = safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                     data: [UInt8](repeating: 0, count: 8))
        _ = FileManager.default.createFile(atPath: two + "/s2.safetensors", contents: Data(other))
        _ = FileManager.default.createFile(atPath: two + "/model.safetensors.index.json", contents: Data(#"{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}"#.utf8))
        assertForgeError(["'a'", "both s1.safetensors and s2.safetensors"]) { try SafeTensorsCheckpoint(path: two) }
    }

    func testShardTensorsMissingFromTheIndexAreStillListed() throws {
        let scratch = ScratchFolder()
        scratch.write("s1.safetensors", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"extra":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                                                         data: [UInt8](repeating: 0, count: 8)))
        scratch.write("model.safetensors.index.json", text: #"{"weight_map":{"a":"s1.safetensors"}}"#)
        let checkpoint = try SafeTensorsCheckpoint(path: scratch.path)
        XCTAssertEqual(checkpoint.tensorNames, ["a", "extra"])
    }

    func testFolderResolution() throws {
        let scratch = ScratchFolder()
        assertForgeError(["not exactly one .safetensors", "none"]) { try SafeTensorsCheckpoint(path: scratch.path) }
        let shard = safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 128, 63])
        scratch.write("weights.safetensors", shard)
        XCTAssertEqual(try SafeTensorsCheckpoint(path: scratch.path).floats("a"), [1])
        scratch.write("more.safetensors", shard)
        assertForgeError(["more.safetensors, weights.safetensors"]) { try SafeTensorsCheckpoint(path: scratch.path) }
        scratch.write("model.safetensors", shard)
        XCTAssertEqual(try SafeTensorsCheckpoint(path: scratch.path).files.count, 1)
        assertForgeError(["no such file"]) { try SafeTensorsCheckpoint(path: scratch.path + "/nope") }
    }
}
