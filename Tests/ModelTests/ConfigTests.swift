import XCTest
import Foundation
@testable import Models

final class ConfigTests: XCTestCase {
    func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(json.utf8))
    }

    /// llava-hf/llava-1.5-7b-hf lists only a few text fields; the rest are LlamaConfig defaults.
    func testLlavaHubConfigTakesTransformersDefaults() throws {
        let config = try decode(LlavaConfig.self, """
        {"model_type": "llava", "ignore_index": -100, "image_token_index": 32000, "projector_hidden_act": "gelu",
         "text_config": {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096, "model_type": "llama",
                         "rms_norm_eps": 1e-05, "torch_dtype": "float16", "vocab_size": 32064},
         "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
                           "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
         "vision_feature_layer": -2, "vision_feature_select_strategy": "default"}
        """)
        XCTAssertEqual(config.textConfig.hiddenSize, 4096)
        XCTAssertEqual(config.textConfig.intermediateSize, 11008)
        XCTAssertEqual(config.textConfig.numKeyValueHeads, 32)
        XCTAssertEqual(config.textConfig.headDim, 128)
        XCTAssertEqual(config.textConfig.vocabSize, 32064)
        XCTAssertEqual(config.textConfig.rmsNormEps, 1e-5)
        XCTAssertEqual(config.textConfig.ropeTheta, 10000)
        XCTAssertFalse(config.textConfig.tieWordEmbeddings)
        XCTAssertEqual(config.visionConfig.patchCount, 576)
        XCTAssertEqual(config.visionConfig.hiddenAct, "quick_gelu")
        XCTAssertEqual(config.visionFeatureLayers, [-2])
        XCTAssertEqual(config.imageTokenIndex, 32000)
        XCTAssertEqual(config.projector, ProjectorConfig(kind: .mlp2x, activation: "gelu", bias: true, inputSize: 1024, outputSize: 4096))
    }

    func testQwen2HasQKVBiasesByModelTypeAndTransformers5RopeParameters() throws {
        let qwen = try decode(LlamaConfig.self, """
        {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
         "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": true,
         "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}
        """)
        XCTAssertTrue(qwen.attentionBias)
        XCTAssertFalse(qwen.outputProjectionBias)
        XCTAssertEqual(qwen.ropeTheta, 1_000_000)
        XCTAssertEqual(qwen.headDim, 64)
        let llama = try decode(LlamaConfig.self, #"{"model_type": "llama", "attention_bias": true, "head_dim": 96, "vocab_size": 10, "eos_token_id": [7, 8]}"#)
        XCTAssertTrue(llama.attentionBias)
        XCTAssertTrue(llama.outputProjectionBias)
        XCTAssertEqual(llama.headDim, 96)
        XCTAssertEqual(llama.eosTokenID, 7)
        XCTAssertThrowsError(try decode(LlamaConfig.self, #"{"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#))
    }

    func testFeatureLayerListAndIDAliases() throws {
        let config = try decode(LlavaConfig.self, #"{"vision_feature_layer": [-2, -5], "image_token_id": 151646, "vision_feature_select_strategy": "full"}"#)
        XCTAssertEqual(config.visionFeatureLayers, [-2, -5])
        XCTAssertEqual(config.imageTokenIndex, 151646)
        XCTAssertEqual(config.visionFeatureSelectStrategy, .full)
        XCTAssertEqual(config.projector.inputSize, 2 * config.visionConfig.hiddenSize)
        // Round trip through our encoder.
        let again = try JSONDecoder().decode(LlavaConfig.self, from: JSONEncoder().encode(config))
        XCTAssertEqual(again, config)
    }

    func testBadConfigFailsNamingTheField() throws {
        let folder = try Fixtures.temporaryFolder(self)
        try Data(#"{"model_type": "llama", "hidden_size": "wide"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny_llama", "model", "model.safetensors"),
                                         toPath: folder.appendingPathComponent("model.safetensors").path)
        XCTAssertThrowsError(try ModelLoader.load(path: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("hidden_size"), "\(error)")
            XCTAssertTrue("\(error)".contains("config.json"), "\(error)")
        }
        try Data(#"{"model_type": "gpt2"}"#.utf8).write(to: folder.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelLoader.load(path: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("gpt2"), "\(error)")
        }
        try Data(#"{"model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 3, "hidden_size": 64, "vocab_size": 300}"#.utf8)
            .write(to: folder.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelLoader.load(path: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("num_key_value_heads"), "\(error)")
        }
    }
}
