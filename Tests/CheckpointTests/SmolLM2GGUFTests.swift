@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch_model.sh), checked against gguf-py's
/// reading of the same file (Fixtures/smollm2_expected.json). Skipped when the model is absent.
final class SmolLM2GGUFTests: XCTestCase {
    struct Expected: Decodable {
        struct Tensor: Decodable {
            struct Rows: Decodable { var start: Int; var end: Int; var sha256: String }
            var name: String
            var type: String
            var shape: [Int]
            var first: [Float]
            var sha256: String?
            var sum: Double
            var rows: [Rows]?
        }
        var file: String
        var size: Int
        var version: Int
        var tensor_count: Int
        var metadata: [String: AnyJSON]
        var tensors: [Tensor]
    }

    static func modelPath() -> String? {
        if let path = ProcessInfo.processInfo.environment["LLAVA_FORGE_SMOLLM2_GGUF"], !path.isEmpty { return path }
        // Tests/CheckpointTests/SmolLM2GGUFTests.swift → repo root.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    private func openModel() throws -> (GGUFFile, Expected) {
        guard let path = Self.modelPath(), FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not found (run scripts/fetch_model.sh or set LLAVA_FORGE_SMOLLM2_GGUF)")
        }
        let expected = try JSONDecoder().decode(Expected.self, from: FileManager.default.contents(atPath: Fixtures.path("smollm2_expected.json"))!)
        return (try GGUFFile(path: path), expected)
    }

    static func sha256(_ values: [Float]) -> String {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { out in
            for (i, v) in values.enumerated() { out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return SHA256.hex(bytes)  // hashes, then hex-encodes
    }

    func testMetadataMatchesGGUFPy() throws {
        let (file, expected) = try openModel()
        XCTAssertEqual(file.version, expected.version)
        XCTAssertEqual(file.tensorNames.count, expected.tensor_count)
        XCTAssertEqual(file.architecture, "llama")
        XCTAssertEqual(file.metadata["llama.block_count"]?.int, 30)
        XCTAssertEqual(file.metadata["llama.embedding_length"]?.int, 576)
        XCTAssertEqual(file.metadata["llama.attention.head_count"]?.int, 9)
        XCTAssertEqual(file.metadata["llama.attention.head_count_kv"]?.int, 3)
        XCTAssertEqual(file.metadata["llama.vocab_size"]?.int, 49152)
        for key in ["llama.feed_forward_length", "llama.context_length"] {
            guard case .int(let want)? = expected.metadata[key] else { XCTFail(key); continue }
            XCTAssertEqual(file.metadata[key]?.int, Int(want), key)
        }
        // 100000.0 is integral, so the JSON decoder may hand it over as an integer.
        switch expected.metadata["llama.rope.freq_base"] {
        case .double(let theta)?: XCTAssertEqual(file.metadata["llama.rope.freq_base"]?.double, theta)
        case .int(let theta)?: XCTAssertEqual(file.metadata["llama.rope.freq_base"]?.double, Double(theta))
        default: XCTFail("rope theta missing from the fixture")
        }
        XCTAssertEqual(file.metadata["tokenizer.ggml.model"]?.string, "gpt2")
        let tokens = try XCTUnwrap(file.metadata["tokenizer.ggml.tokens"]?.strings)
        XCTAssertEqual(tokens.count, 49152)
        guard case .array(let first)? = expected.metadata["tokenizer.ggml.tokens.first"] else { return XCTFail("tokens.first") }
        XCTAssertEqual(Array(tokens.prefix(first.count)).map(AnyJSON.string), first)
        guard case .int(let merges)? = expected.metadata["tokenizer.ggml.merges.count"] else { return XCTFail("merges") }
        XCTAssertEqual(file.metadata["tokenizer.ggml.merges"]?.strings?.count, Int(merges))
        XCTAssertEqual(file.dataOffset % file.alignment, 0)
    }

    func testDequantizedTensorsMatchGGUFPy() throws {
        let (file, expected) = try openModel()
        for tensor in expected.tensors {
            let info = try XCTUnwrap(file.info(tensor.name), tensor.name)
            XCTAssertEqual(info.dtype.description, tensor.type, tensor.name)
            XCTAssertEqual(info.shape, tensor.shape, tensor.name)
            let values = try file.floats(tensor.name)
            XCTAssertEqual(Array(values.prefix(tensor.first.count)), tensor.first, tensor.name)
            let sum = values.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, tensor.sum, accuracy: 1e-9 * max(1, abs(tensor.sum)) + 1e-6, tensor.name)
            if let digest = tensor.sha256 {
                XCTAssertEqual(Self.sha256(values), digest, "\(tensor.name): dequantized bytes identical to gguf-py's")
            }
            let columns = tensor.shape.dropFirst().reduce(1, *)
            for rows in tensor.rows ?? [] {
                var slice = [Float](repeating: 0, count: (rows.end - rows.start) * columns)
                try slice.withUnsafeMutableBufferPointer { try file.floats(tensor.name, rows: rows.start..<rows.end, into: $0) }
                XCTAssertEqual(Self.sha256(slice), rows.sha256, "\(tensor.name) rows \(rows.start)..<\(rows.end)")
                XCTAssertEqual(slice, Array(values[(rows.start * columns)..<(rows.end * columns)]))
            }
        }
    }
}
