import XCTest
import Checkpoints
import TensorMath
@testable import Models

/// Logits equal transformers' (tools/reference/make_model_fixtures.py) within 1e-4 max abs, for
/// every position, on tiny random checkpoints saved by `save_pretrained`.
final class ModelParityTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func languageModel(_ name: String) throws -> LlamaModel {
        guard case .language(let model) = try ModelLoader.load(path: Fixtures.path(name, "model")) else {
            XCTFail("\(name) did not load as a language model"); throw XCTSkip()
        }
        return model
    }

    func llava(_ folder: String) throws -> LlavaModel {
        guard case .llava(let model) = try ModelLoader.load(path: Fixtures.path("tiny_llava", folder)) else {
            XCTFail("\(folder) did not load as LLaVA"); throw XCTSkip()
        }
        return model
    }

    func checkTextCase(_ name: String, tied: Bool, bias: Bool) throws {
        let json = try Fixtures.caseJSON(name)
        let ids = Fixtures.ints(json, "input_ids")
        let (expected, shape) = try Fixtures.floats(name, json, "logits")
        let model = try languageModel(name)
        XCTAssertEqual(model.config.tieWordEmbeddings, tied)
        XCTAssertEqual(model.config.attentionBias, bias)
        XCTAssertEqual(model.parameters.contains("lm_head.weight"), !tied)
        let logits = try model.logits(tokens: ids)
        XCTAssertEqual([ids.count, model.config.vocabSize], shape)
        let difference = Fixtures.maxAbsDifference(logits, expected)
        XCTAssertLessThanOrEqual(difference, Self.tolerance, "\(name): max |Δlogit| \(difference)")
        // The check has teeth: the logits are far from zero and vary by position.
        XCTAssertGreaterThan(expected.map(abs).max()!, 1)
    }

    func testTinyLlamaWithGQAAndTiedEmbeddingsMatchesTransformers() throws {
        try checkTextCase("tiny_llama", tied: true, bias: false)
    }

    func testTinyQwen2WithBiasesAndUntiedHeadMatchesTransformers() throws {
        try checkTextCase("tiny_qwen2", tied: false, bias: true)
    }

    func testTinyLlavaImageAndTextLogitsMatchTransformersInBothKeyLayouts() throws {
        let json = try Fixtures.caseJSON("tiny_llava")
        let imageIDs = Fixtures.ints(json, "image_input_ids")
        let textIDs = Fixtures.ints(json, "text_input_ids")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let expectedImage = try Fixtures.floats("tiny_llava", json, "image_logits").values
        let expectedText = try Fixtures.floats("tiny_llava", json, "text_logits").values
        for folder in ["model", "model_hub_layout"] {
            let model = try llava(folder)
            XCTAssertEqual(model.config.visionFeatureLayers, [-2])
            XCTAssertEqual(model.config.visionFeatureSelectStrategy, .default)
            let image = try model.logits(tokens: imageIDs, pixelValues: pixels)
            let text = try model.logits(tokens: textIDs)
            let dImage = Fixtures.maxAbsDifference(image, expectedImage)
            let dText = Fixtures.maxAbsDifference(text, expectedText)
            XCTAssertLessThanOrEqual(dImage, Self.tolerance, "\(folder) image+text: max |Δlogit| \(dImage)")
            XCTAssertLessThanOrEqual(dText, Self.tolerance, "\(folder) text-only: max |Δlogit| \(dText)")
        }
    }

    /// The transformers 4.52–4.57 layout (`model.language_model.*`, `model.vision_tower.vision_model.*`,
    /// `model.multi_modal_projector.*`, top-level `lm_head`), written here by renaming the fixture's keys.
    func testTransformers4LayoutLoadsToTheSameLogits() throws {
        let source = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llava", "model"))
        func rename(_ key: String) -> String {
            if key.hasPrefix("language_model.model.") { return "model.language_model." + key.dropFirst("language_model.model.".count) }
            if key.hasPrefix("language_model.lm_head.") { return String(key.dropFirst("language_model.".count)) }
            if key.hasPrefix("vision_tower.") { return "model.vision_tower.vision_model." + key.dropFirst("vision_tower.".count) }
            if key.hasPrefix("multi_modal_projector.") { return "model." + key }
            return key
        }
        let tensors = try source.tensorNames.map { (name: rename($0), shape: source.info($0)!.shape, data: try source.floats($0)) }
        XCTAssertTrue(tensors.contains { $0.name == "model.vision_tower.vision_model.pre_layrnorm.weight" })
        XCTAssertTrue(tensors.contains { $0.name == "lm_head.weight" })
        let folder = try Fixtures.temporaryFolder(self)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny_llava", "model", "config.json"), toPath: folder.appendingPathComponent("config.json").path)
        try SafeTensorsWriter.write(tensors, to: folder.appendingPathComponent("model.safetensors").path)
        guard case .llava(let model) = try ModelLoader.load(path: folder.path) else { return XCTFail("not LLaVA") }
        let json = try Fixtures.caseJSON("tiny_llava")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let expected = try Fixtures.floats("tiny_llava", json, "image_logits").values
        let logits = try model.logits(tokens: Fixtures.ints(json, "image_input_ids"), pixelValues: pixels)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(logits, expected), Self.tolerance)
    }

    func testVisionTowerSelectsHiddenStateMinusTwoWithoutCLS() throws {
        let json = try Fixtures.caseJSON("tiny_llava")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let (expected, shape) = try Fixtures.floats("tiny_llava", json, "vision_selected_features")
        let model = try llava("model")
        let features = try model.visionFeatures(pixelValues: pixels, images: 1)
        XCTAssertEqual(shape, [model.rowsPerImage, model.config.visionConfig.hiddenSize])
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(features, expected), Self.tolerance)
        // hidden_states indexing: −2 of a 2-layer tower is index 1 (after one layer); −1 is 2; 0 the embeddings.
        XCTAssertEqual(try model.vision.hiddenStateIndex(-2), 1)
        XCTAssertEqual(try model.vision.hiddenStateIndex(-1), 2)
        XCTAssertEqual(try model.vision.hiddenStateIndex(0), 0)
        XCTAssertThrowsError(try model.vision.hiddenStateIndex(-4))
        // A different layer gives different features (the selection matters).
        let last = try model.vision.features(pixels: pixels, layers: [-1], strategy: .default)
        XCTAssertGreaterThan(Fixtures.maxAbsDifference(last, expected), 1e-2)
        // `full` keeps the class token as the first row.
        let full = try model.vision.features(pixels: pixels, layers: [-2], strategy: .full)
        XCTAssertEqual(full.count, (model.rowsPerImage + 1) * model.config.visionConfig.hiddenSize)
        XCTAssertEqual(Array(full.suffix(features.count)), features)
        // Several images run through the tower together give each image's own features.
        let second = pixels.enumerated().map { $0.element * 0.5 + Float($0.offset % 7) * 0.1 }
        let batched = try (pixels + second).withUnsafeBufferPointer {
            try model.vision.features(pixels: $0.baseAddress!, images: 2, layers: model.config.visionFeatureLayers,
                                      strategy: model.config.visionFeatureSelectStrategy)
        }
        let alone = try model.visionFeatures(pixelValues: second, images: 1)
        XCTAssertEqual(batched.count, 2 * features.count)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(Array(batched.prefix(features.count)), features), 1e-5)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(Array(batched.suffix(features.count)), alone), 1e-5)
        XCTAssertGreaterThan(Fixtures.maxAbsDifference(alone, features), 1e-3)
    }

    func testLlavaFromSeparatePartsMatchesTransformers() throws {
        let json = try Fixtures.caseJSON("tiny_llava")
        let imageIDs = Fixtures.ints(json, "image_input_ids")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let expected = try Fixtures.floats("tiny_llava", json, "image_logits").values
        let model = try ModelLoader.loadParts(vision: Fixtures.path("tiny_llava_parts", "vision"),
                                              llm: Fixtures.path("tiny_llava_parts", "llm"),
                                              projector: Fixtures.path("tiny_llava_parts", "mm_projector.safetensors"),
                                              options: LlavaPartsOptions(imageTokenIndex: 299))
        XCTAssertEqual(model.projector.config.kind, .mlp2x)
        let logits = try model.logits(tokens: imageIDs, pixelValues: pixels)
        let difference = Fixtures.maxAbsDifference(logits, expected)
        XCTAssertLessThanOrEqual(difference, Self.tolerance, "parts: max |Δlogit| \(difference)")
        // Trainable buffer: projector slots first, then the language model's, contiguous.
        let names = model.trainable.layout.names
        XCTAssertTrue(names.first!.hasPrefix(LlavaModel.projectorPrefix))
        let firstLanguage = names.firstIndex { $0.hasPrefix(LlavaModel.languagePrefix) }!
        XCTAssertTrue(names[firstLanguage...].allSatisfy { $0.hasPrefix(LlavaModel.languagePrefix) })
    }

    func testImagePlaceholderCountMustMatchFeatureRows() throws {
        let json = try Fixtures.caseJSON("tiny_llava")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let model = try llava("model")
        var ids = Fixtures.ints(json, "image_input_ids")
        ids.remove(at: ids.firstIndex(of: 299)!)
        XCTAssertThrowsError(try model.logits(tokens: ids, pixelValues: pixels)) { error in
            XCTAssertTrue("\(error)".contains("image tokens"), "\(error)")
        }
        XCTAssertThrowsError(try model.logits(tokens: [1, 300])) { error in
            XCTAssertTrue("\(error)".contains("300"), "\(error)")
        }
        XCTAssertThrowsError(try model.logits(tokens: []))
        // 65 positions > max_position_embeddings 64: an error, not an out-of-bounds RoPE read.
        XCTAssertThrowsError(try model.logits(tokens: [Int](repeating: 5, count: 65))) { error in
            XCTAssertTrue("\(error)".contains("65"), "\(error)")
        }
        XCTAssertThrowsError(try model.logits(tokens: ids, pixelValues: Array(pixels.dropLast()))) { error in
            XCTAssertTrue("\(error)".contains("pixel_values"), "\(error)")
        }
    }
}
