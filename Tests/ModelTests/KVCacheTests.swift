import XCTest
import TensorMath
@testable import Models

/// The cached path (separate attention kernel, K/V written into the cache, RoPE at an offset)
/// must give the full forward's numbers.
final class KVCacheTests: XCTestCase {
    func tinyLlama() throws -> (LlamaModel, [Int]) {
        let json = try Fixtures.caseJSON("tiny_llama")
        let ids = Fixtures.ints(json, "input_ids")
        return (try ModelLoader.loadLanguageModel(path: Fixtures.path("tiny_llama", "model")), ids)
    }

    func testPrefillThenDecodeOneEqualsFullForward() throws {
        let (model, ids) = try tinyLlama()
        let v = model.config.vocabSize
        let full = try model.logits(tokens: ids)
        let cache = KVCache(config: model.config, capacity: 32)
        // Prefill of T (≥ 8: the GEMM path), then one token (the dot-product path).
        let prefix = Array(ids.dropLast())
        let prefill = try model.decode(tokens: prefix, cache: cache, rows: .all)
        XCTAssertEqual(cache.length, prefix.count)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(prefill, Array(full[0..<(prefix.count * v)])), 1e-4)
        let last = try model.decode(tokens: [ids.last!], cache: cache)
        let difference = Fixtures.maxAbsDifference(last, Array(full.suffix(v)))
        XCTAssertLessThanOrEqual(difference, 1e-4, "decode vs full forward: \(difference)")
        XCTAssertEqual(cache.length, ids.count)
    }

    func testTokenByTokenAndShortChunksEqualFullForward() throws {
        let (model, ids) = try tinyLlama()
        let v = model.config.vocabSize
        let full = try model.logits(tokens: ids)
        let cache = KVCache(config: model.config, capacity: ids.count)
        var position = 0
        for chunk in [1, 3, 1, 2, 1, 5] where position < ids.count {
            let end = min(ids.count, position + chunk)
            let rows = try model.decode(tokens: Array(ids[position..<end]), cache: cache, rows: .all)
            let expected = Array(full[(position * v)..<(end * v)])
            XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(rows, expected), 1e-4, "chunk at \(position)")
            position = end
        }
        XCTAssertEqual(position, ids.count)
        // The cache is full: one more position is a clear error, not an overrun.
        XCTAssertThrowsError(try model.decode(tokens: [1], cache: cache))
        // Truncating lets a shared prefix be re-decoded.
        cache.truncate(to: 4)
        let again = try model.decode(tokens: [ids[4]], cache: cache)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(again, Array(full[(4 * v)..<(5 * v)])), 1e-4)
        // A second cache seeded from the first's prefix continues identically.
        let other = KVCache(config: model.config, capacity: ids.count)
        other.copyPrefix(from: cache, count: 5)
        let continued = try other.length == 5 ? model.decode(tokens: Array(ids[5...]), cache: other, rows: .all) : []
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(continued, Array(full[(5 * v)...])), 1e-4)
    }

    func testLlavaPrefillWithImageThenDecodeEqualsFullForward() throws {
        let json = try Fixtures.caseJSON("tiny_llava")
        let ids = Fixtures.ints(json, "image_input_ids")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        guard case .llava(let model) = try ModelLoader.load(path: Fixtures.path("tiny_llava", "model")) else { return XCTFail("not LLaVA") }
        let v = model.language.config.vocabSize
        let full = try model.logits(tokens: ids + [17], pixelValues: pixels)
        let cache = KVCache(config: model.language.config, capacity: 40)
        let prefill = try model.prefill(tokens: ids, pixelValues: pixels, cache: cache)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(prefill, Array(full[((ids.count - 1) * v)..<(ids.count * v)])), 1e-4)
        let next = try model.language.decode(tokens: [17], cache: cache)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(next, Array(full.suffix(v))), 1e-4)
    }

    func testTrainingActivationsKeepEveryLayerAndGiveTheSameLogits() throws {
        let (model, ids) = try tinyLlama()
        let inference = try model.logits(tokens: ids)
        let activations = LlamaActivations(config: model.config, tokens: ids.count, keepForBackward: true)
        try model.embed(tokens: ids, into: activations.embeddings.pointer)
        model.forward(activations: activations)
        XCTAssertEqual(activations.logits.toArray(), inference)
        XCTAssertEqual(activations.layers.count, model.config.numHiddenLayers)
        // Layer 1's input is layer 0's output, kept separately from layer 0's input.
        XCTAssertFalse(activations.layers[0].input === activations.layers[1].input)
        XCTAssertNotEqual(activations.layers[0].input.toArray(), activations.layers[1].input.toArray())
        // Attention probabilities are causal rows summing to 1 (every head's).
        let t = ids.count, shape = model.attentionShape(t)
        let probs = activations.layers[1].probs.toArray()
        for head in 0..<shape.heads {
            for row in 0..<t {
                let values = (0..<t).map { probs[shape.probsIndex(head: head, row: row, key: $0, length: t)] }
                XCTAssertEqual(values.reduce(0, +), 1, accuracy: 1e-5)
                XCTAssertTrue(values.dropFirst(row + 1).allSatisfy { $0 == 0 })
            }
        }
    }
}

final class LlavaCompositionTests: XCTestCase {
    func model() throws -> LlavaModel {
        guard case .llava(let model) = try ModelLoader.load(path: Fixtures.path("tiny_llava", "model")) else { throw XCTSkip("not LLaVA") }
        return model
    }

    /// Two images: features are per image, in order, and the rows land at the placeholders in order.
    func testTwoImagesSpliceInOrder() throws {
        let model = try model()
        let json = try Fixtures.caseJSON("tiny_llava")
        let first = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let second = first.map { -0.5 * $0 + 0.1 }
        let both = try model.imageFeatures(pixelValues: first + second, images: 2)
        let one = try model.imageFeatures(pixelValues: first, images: 1)
        let two = try model.imageFeatures(pixelValues: second, images: 1)
        XCTAssertEqual(both, one + two)
        let rows = model.rowsPerImage, c = model.language.config.hiddenSize
        let ids = [1, 7] + [Int](repeating: 299, count: rows) + [8, 9] + [Int](repeating: 299, count: rows) + [10]
        XCTAssertEqual(model.imagePositions(tokens: ids).count, 2 * rows)
        let embeddings = FloatBuffer(count: ids.count * c)
        try model.embed(tokens: ids, imageFeatures: both, into: embeddings.pointer)
        let secondBlock = embeddings.toArray(offset: (2 + rows + 2) * c, count: rows * c)
        XCTAssertEqual(secondBlock, two)
        let text = embeddings.toArray(offset: 1 * c, count: c)
        XCTAssertEqual(text, Array(UnsafeBufferPointer(start: model.language.embeddingTable + 7 * c, count: c)))
        // Swapping the images changes the logits (order matters).
        let a = try model.logits(tokens: ids, pixelValues: first + second, images: 2)
        let b = try model.logits(tokens: ids, pixelValues: second + first, images: 2)
        XCTAssertGreaterThan(Fixtures.maxAbsDifference(a, b), 1e-3)
    }

    /// The training-shaped forward (cached vision features → projector → splice → decoder keeping
    /// activations) gives transformers' logits too.
    func testTrainingForwardFromCachedFeaturesMatchesTransformers() throws {
        let model = try model()
        let json = try Fixtures.caseJSON("tiny_llava")
        let ids = Fixtures.ints(json, "image_input_ids")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let expected = try Fixtures.floats("tiny_llava", json, "image_logits").values
        let features = try model.visionFeatures(pixelValues: pixels, images: 1)
        let projectorActivations = ProjectorActivations(config: model.projector.config, rows: model.rowsPerImage)
        features.withUnsafeBufferPointer { projectorActivations.input.copy(from: $0.baseAddress!, count: features.count) }
        let activations = LlamaActivations(config: model.language.config, tokens: ids.count, keepForBackward: true)
        try model.forward(tokens: ids, projectorActivations: projectorActivations, activations: activations)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(activations.logits.toArray(), expected), 1e-4)
        // The projector kept its pre-activation and activation for backward.
        XCTAssertNotEqual(projectorActivations.hidden.toArray(), projectorActivations.activated.toArray())
    }
}
