import XCTest
import Checkpoints
import Models
import TensorMath
@testable import Inference

/// The quantized engine against the Float32 `LlamaModel` on the same (dequantized) weights.
final class QuantizedModelTests: XCTestCase {
    /// Both sides compute in Float32 from identical weight values; they differ only in summation
    /// order (block FMA chains vs OpenBLAS), ~1e-6 relative per product on logits of size ~1.
    static let tolerance: Float = 1e-4
    /// The int kernels also round x to int16 per 32-block (1/65534 of the block max, ~1e-5
    /// relative per product); through the tiny models' layers that measured ≤ 3.2e-3 on logits of
    /// size ~1 — a wrong nibble order, scale or offset is off by O(1).
    static let integerTolerance: Float = 5e-3

    static func tolerance(_ kernel: DecodeKernel) -> Float { kernel == .float ? tolerance : integerTolerance }

    /// `body` once per decode kernel this CPU runs (the default one restored after).
    func forEachKernel(_ body: (DecodeKernel) throws -> Void) rethrows {
        let saved = QuantizedLinear.kernel
        defer { setDecodeKernel(saved) }
        for kernel in DecodeKernel.supported {
            setDecodeKernel(kernel)
            try body(kernel)
        }
    }

    func floatLogits(_ model: LlamaModel, _ ids: [Int]) throws -> [Float] {
        let cache = KVCache(config: model.config, capacity: ids.count)
        return try model.decode(tokens: ids, cache: cache, rows: .all)
    }

    func quantizedLogits(_ engine: QuantizedLlama, _ ids: [Int], split: Int) throws -> [Float] {
        // Prefill in two chunks (tiled sgemm path and direct path), all rows.
        let cache = engine.makeCache(capacity: ids.count)
        let first = try engine.decode(tokens: Array(ids[..<split]), cache: cache, rows: .all)
        var rest: [Float] = []
        for id in ids[split...] { rest += try engine.decode(tokens: [id], cache: cache, rows: .all) }
        return first + rest
    }

    func testTinyQ8GGUFMatchesFloatPathAndTransformers() throws {
        let path = Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf")
        let json = try Support.caseJSON("tiny_llama_gguf")
        let ids = Support.ints(json, "input_ids")
        let engine = try QuantizedLlama.load(path: path)
        XCTAssertTrue(engine.matrices.allSatisfy { $0.typeName == "Q8_0" }, engine.matrices.map(\.typeName).description)
        let reference = try ModelLoader.loadLanguageModel(path: path)
        let expected = try floatLogits(reference, ids)
        let data = try Data(contentsOf: URL(fileURLWithPath: Support.modelFixture("tiny_llama_gguf", "logits.f32")))
        let golden = data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        try forEachKernel { kernel in
            let got = try quantizedLogits(engine, ids, split: 9)
            let difference = Support.maxAbsDifference(got, expected)
            print("tiny Q8_0 GGUF, \(kernel): max |Δlogit| quantized engine vs float path = \(difference)")
            XCTAssertLessThanOrEqual(difference, Self.tolerance(kernel), "\(kernel)")
            // And against transformers' logits for the file (the float path's own fixture).
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(got, golden), kernel == .float ? 2e-4 : Self.integerTolerance, "\(kernel)")
            XCTAssertEqual(try engine.greedy(prompt: ids, maxTokens: 12), try reference.greedy(prompt: ids, maxTokens: 12), "\(kernel)")
        }
    }

    /// Q4_0 / Q4_1 inside a whole model (llama with GQA, tied head; qwen2 with q/k/v biases): the
    /// float model gets the dequantized values of exactly the blocks the engine reads.
    func testQ4ModelsMatchFloatModelOnDequantizedWeights() throws {
        for fixture in ["tiny_llama", "tiny_qwen2"] {
            for type in [GGMLType.q4_0, .q4_1, .q8_0] {
                let model = try ModelLoader.loadLanguageModel(path: Support.modelFixture(fixture, "model"))
                let engine = try QuantizedLlama.quantizing(model, to: type)
                overwrite(model, with: engine)
                let ids = Array((0..<14).map { ($0 * 37 + 5) % model.config.vocabSize })
                let expected = try floatLogits(model, ids)
                try forEachKernel { kernel in
                    let difference = Support.maxAbsDifference(try quantizedLogits(engine, ids, split: 10), expected)
                    print("\(fixture) \(type.name) \(kernel): max |Δlogit| = \(difference)")
                    XCTAssertLessThanOrEqual(difference, Self.tolerance(kernel), "\(fixture) \(type.name) \(kernel)")
                }
            }
        }
    }

    /// Writes each engine matrix's dequantized values into the float model's slots.
    func overwrite(_ model: LlamaModel, with engine: QuantizedLlama) {
        let storage = model.parameters.storage.pointer
        func put(_ m: WeightMatrix, _ offset: Int) { m.dequantize(rows: 0..<m.rows, into: storage + offset) }
        for (l, w) in zip(engine.layers, model.layerOffsets) {
            put(l.q, w.q); put(l.k, w.k); put(l.v, w.v); put(l.o, w.o)
            put(l.gate, w.gate); put(l.up, w.up); put(l.down, w.down)
        }
        put(engine.embedding, model.embedOffset)
        if !model.config.tieWordEmbeddings { put(engine.head, model.headOffset) }
    }

    func testBadInputIsAnError() throws {
        let engine = try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let cache = engine.makeCache(capacity: 4)
        XCTAssertThrowsError(try engine.decode(tokens: [engine.config.vocabSize], cache: cache))
        XCTAssertThrowsError(try engine.decode(tokens: [1, 2, 3, 4, 5], cache: cache))
        XCTAssertThrowsError(try engine.decode(tokens: [], cache: cache))
        XCTAssertEqual(cache.length, 0)
        XCTAssertThrowsError(try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "case.json")))
    }

    /// Several sequences in one step == each alone (continuous batching's core).
    func testBatchedStepEqualsSequential() throws {
        let engine = try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let prompts = [[3, 17, 42, 99, 5, 8, 13, 21, 34, 55], [7, 7, 7], [250, 1, 2, 3, 4, 200]]
        let sequential = try prompts.map { try engine.greedy(prompt: $0, maxTokens: 10) }
        let caches = prompts.map { engine.makeCache(capacity: $0.count + 10) }
        var logits = try engine.step(zip(prompts, caches).map { SequenceStep(tokens: $0, cache: $1) })
        var outputs = [[Int]](repeating: [], count: prompts.count)
        for _ in 0..<10 {
            let next = logits.map { Sampler.argmax($0) }
            for i in 0..<prompts.count { outputs[i].append(next[i]) }
            logits = try engine.step((0..<prompts.count).map { SequenceStep(tokens: [next[$0]], cache: caches[$0]) })
        }
        XCTAssertEqual(outputs, sequential)
    }

    // MARK: - The real SmolLM2 Q4_1 file

    func testSmolLM2TensorTypesAndBits() throws {
        let engine = try Support.smolLM2Engine()
        let types = Dictionary(grouping: engine.matrices, by: \.typeName).mapValues(\.count)
        print("SmolLM2 matrices by type: \(types); decode reads \(engine.decodeWeightBytes / 1_000_000) MB of weights per token")
        XCTAssertEqual(types["Q4_1"], 7 * 30)
        XCTAssertEqual(engine.embedding.typeName, "Q8_0")
        XCTAssertEqual(engine.layers[0].gate.bitsPerWeight, 5.0)
    }

    func testSmolLM2GreedyEqualsTransformers() throws {
        let engine = try Support.smolLM2Engine()
        let json = try Support.caseJSON("smollm2")
        let ids = Support.ints(json, "input_ids")
        XCTAssertEqual(try engine.greedy(prompt: ids, maxTokens: Support.ints(json, "greedy_ids").count), Support.ints(json, "greedy_ids"))
    }
}

/// Every decode kernel this CPU runs inside the real model: same greedy ids as transformers.
final class DecodeKernelModelTests: XCTestCase {
    func testTinyAndSmolLM2GreedyWithEveryKernel() throws {
        let saved = QuantizedLinear.kernel
        defer { setDecodeKernel(saved) }
        let path = Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf")
        let engine = try QuantizedLlama.load(path: path)
        let reference = try ModelLoader.loadLanguageModel(path: path)
        let expected = try reference.greedy(prompt: [3, 17, 42, 99], maxTokens: 12)
        let smol = try Support.smolLM2Engine()
        let json = try Support.caseJSON("smollm2")
        for kernel in DecodeKernel.supported {
            setDecodeKernel(kernel)
            XCTAssertEqual(try engine.greedy(prompt: [3, 17, 42, 99], maxTokens: 12), expected, "\(kernel)")
            XCTAssertEqual(try smol.greedy(prompt: Support.ints(json, "input_ids"), maxTokens: Support.ints(json, "greedy_ids").count),
                           Support.ints(json, "greedy_ids"), "\(kernel)")
        }
    }
}

final class PrefillAttentionPassTests: XCTestCase {
    /// Prefill attention in query blocks of 5, 16 or 64 rows (one pool chunk per few blocks), for a
    /// fresh prompt and for a continuation at an offset, gives the float path's logits.
    func testQueryBlocksMatchFloatPath() throws {
        let path = Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf")
        let engine = try QuantizedLlama.load(path: path)
        let reference = try ModelLoader.loadLanguageModel(path: path)
        let ids = (0..<40).map { ($0 * 53 + 11) % 300 }
        let expected = try reference.decode(tokens: ids, cache: KVCache(config: reference.config, capacity: 40), rows: .all)
        let saved = SequenceAttention.prefillQueryRows
        defer { SequenceAttention.prefillQueryRows = saved }
        let savedKernel = QuantizedLinear.kernel
        defer { setDecodeKernel(savedKernel) }
        setDecodeKernel(.float)  // the float kernel: exact enough that a wrong block shows at 1e-4
        for rows in [5, 16, 64] {
            SequenceAttention.prefillQueryRows = rows
            let got = try engine.decode(tokens: ids, cache: engine.makeCache(capacity: 40), rows: .all)
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(got, expected), 1e-4, "\(rows)-query blocks")
            // 12 tokens, then the other 28 as a continuation at offset 12.
            let cache = engine.makeCache(capacity: 40)
            let head = try engine.decode(tokens: Array(ids.prefix(12)), cache: cache, rows: .all)
            let tail = try engine.decode(tokens: Array(ids.dropFirst(12)), cache: cache, rows: .all)
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(head + tail, expected), 1e-4, "\(rows)-query blocks, continuation")
        }
    }
}
