@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// `model-info`'s data: what CheckpointSummary reports for GGUF files, safetensors files and
/// Hugging Face folders, and its renderings.
final class CheckpointSummaryTests: XCTestCase {
    func testGGUFFile() throws {
        let summary = try CheckpointSummary.inspect(path: Fixtures.path("aligned_v2.gguf"))
        XCTAssertEqual(summary.format, "gguf")
        XCTAssertEqual(summary.formatVersion, 2)
        XCTAssertEqual(summary.architecture, "llama")
        XCTAssertEqual(summary.hyperparameter("layers"), .int(1))
        XCTAssertEqual(summary.hyperparameter("context"), .int(16))
        XCTAssertNil(summary.tokenizer)
        XCTAssertTrue(summary.notes.contains { $0.contains("no tokenizer") })
        XCTAssertEqual(summary.tensors.map(\.name), ["a", "b", "c", "q"])
        XCTAssertEqual(summary.totalParameters, 15 + 7 + 1 + 96)
        XCTAssertEqual(summary.parametersByDType, [
            .init(dtype: "Q8_0", tensors: 1, parameters: 96, bytes: 102),
            .init(dtype: "F32", tensors: 3, parameters: 23, bytes: 92),
        ])
        XCTAssertEqual(summary.totalBytes, Fixtures.bytes("aligned_v2.gguf").count)
    }

    /// A llava-hf style folder: config.json with text/vision configs, the 2-shard fixture, tokenizer files.
    private func makeLlavaFolder() -> ScratchFolder {
        let folder = ScratchFolder()
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"] {
            folder.write(name, Fixtures.bytes("sharded/" + name))
        }
        folder.write("config.json", text: """
        {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "image_token_index": 32000,
         "projector_hidden_act": "gelu", "vision_feature_layer": -2, "vision_feature_select_strategy": "default",
         "text_config": {"model_type": "llama", "num_hidden_layers": 8, "hidden_size": 512, "intermediate_size": 1376,
                         "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 32064, "max_position_embeddings": 2048,
                         "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": false},
         "vision_config": {"model_type": "clip_vision_model", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
                           "image_size": 224, "patch_size": 16},
         "torch_dtype": "float32"}
        """)
        folder.write("tokenizer.json", text: """
        {"version": "1.0", "added_tokens": [{"id": 3, "content": "<image>"}, {"id": 4, "content": "<pad>"}],
         "pre_tokenizer": {"type": "ByteLevel"},
         "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
        """)
        folder.write("tokenizer_config.json", text: #"{"tokenizer_class": "LlamaTokenizerFast", "chat_template": "{{ x }}"}"#)
        return folder
    }

    func testHuggingFaceLlavaFolder() throws {
        let folder = makeLlavaFolder()
        let summary = try CheckpointSummary.inspect(path: folder.path)
        XCTAssertEqual(summary.format, "huggingface-folder")
        XCTAssertEqual(summary.architecture, "llava")
        XCTAssertEqual(summary.architectures, ["LlavaForConditionalGeneration"])
        let expected: [(String, CheckpointSummary.Value)] = [
            ("text_model_type", .string("llama")), ("layers", .int(8)), ("hidden", .int(512)), ("intermediate", .int(1376)),
            ("heads", .int(8)), ("kv_heads", .int(4)), ("vocab", .int(32064)), ("context", .int(2048)), ("rope_theta", .double(10000)),
            ("rms_norm_eps", .double(1e-5)), ("tie_word_embeddings", .bool(false)), ("torch_dtype", .string("float32")),
            ("vision_model_type", .string("clip_vision_model")), ("vision_layers", .int(4)), ("vision_hidden", .int(256)),
            ("vision_heads", .int(4)), ("image_size", .int(224)), ("patch_size", .int(16)), ("projector_act", .string("gelu")),
            ("vision_feature_layer", .int(-2)), ("vision_feature_select", .string("default")), ("image_token_index", .int(32000)),
        ]
        XCTAssertEqual(summary.hyperparameters.map(\.key), expected.map(\.0))
        XCTAssertEqual(summary.hyperparameters.map(\.value), expected.map(\.1))
        let tokenizer = try XCTUnwrap(summary.tokenizer)
        XCTAssertEqual(tokenizer.source, "tokenizer.json")
        XCTAssertEqual(tokenizer.model, "BPE")
        XCTAssertEqual(tokenizer.vocabSize, 3)
        XCTAssertEqual(tokenizer.merges, 1)
        XCTAssertEqual(tokenizer.addedTokens, 2)
        XCTAssertEqual(tokenizer.details, ["pre-tokenizer ByteLevel", "class LlamaTokenizerFast", "chat template"])
        XCTAssertEqual(summary.totalParameters, 36)
        XCTAssertEqual(summary.files.count, 6, "index, 2 shards, config, tokenizer_config, tokenizer")

        let text = summary.renderText(allTensors: false)
        for fragment in ["Hugging Face folder", "llava  [LlavaForConditionalGeneration]", "layers 8", "kv_heads 4", "vision_layers 4",
                         "BPE (tokenizer.json): 3 tokens, 1 merges, 2 added tokens", "36 (36) in 4 tensors", "model.layers.1.weight", "[2, 3]"] {
            XCTAssertTrue(text.contains(fragment), "text output lacks \"\(fragment)\":\n\(text)")
        }
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try summary.renderJSON().utf8)) as? [String: Any])
        XCTAssertEqual((json["tensors"] as? [Any])?.count, 4)
        XCTAssertEqual((json["hyperparameters"] as? [String: Any])?["kv_heads"] as? Int, 4)
        XCTAssertEqual(json["totalParameters"] as? Int, 36)
        XCTAssertEqual((json["tokenizer"] as? [String: Any])?["model"] as? String, "BPE")
    }

    func testSingleSafeTensorsFileUsesTheConfigBesideIt() throws {
        let folder = ScratchFolder()
        folder.write("model.safetensors", Fixtures.bytes("f32.safetensors"))
        folder.write("config.json", text: #"{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2}"#)
        let summary = try CheckpointSummary.inspect(path: folder.path + "/model.safetensors")
        XCTAssertEqual(summary.format, "safetensors")
        XCTAssertEqual(summary.architectures, ["LlamaForCausalLM"])
        XCTAssertEqual(summary.hyperparameter("layers"), .int(2))
        XCTAssertEqual(summary.totalParameters, 24 + 6 + 1 + 0)
    }

    func testTransformers5ConfigKeys() throws {
        let folder = ScratchFolder()
        folder.write("model.safetensors", Fixtures.bytes("f32.safetensors"))
        folder.write("config.json", text: """
        {"model_type": "llama", "dtype": "bfloat16", "num_hidden_layers": 2,
         "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}
        """)
        let summary = try CheckpointSummary.inspect(path: folder.path)
        XCTAssertEqual(summary.hyperparameter("rope_theta"), .double(100000))
        XCTAssertNil(summary.hyperparameter("rope_type"))
        XCTAssertEqual(summary.hyperparameter("torch_dtype"), .string("bfloat16"))
    }

    func testLayerGrouping() {
        XCTAssertEqual(CheckpointSummary.layerPattern("model.layers.12.self_attn.q_proj.weight"), "model.layers.N.self_attn.q_proj.weight")
        XCTAssertEqual(CheckpointSummary.layerPattern("blk.3.attn_q.weight"), "blk.N.attn_q.weight")
        XCTAssertEqual(CheckpointSummary.layerPattern("v.blk.10.ffn_up.bias"), "v.blk.N.ffn_up.bias")
        XCTAssertEqual(CheckpointSummary.layerPattern("token_embd.weight"), "token_embd.weight")
        XCTAssertEqual(CheckpointSummary.layerPattern("mm.0.weight"), "mm.N.weight")
    }

    func testErrorsNameTheFile() throws {
        assertForgeError(["/no/such/model", "no such file"]) { try CheckpointSummary.inspect(path: "/no/such/model") }
        let folder = makeLlavaFolder()
        folder.write("config.json", text: "{\"model_type\": ")
        assertForgeError(["config.json", "not valid JSON"]) { try CheckpointSummary.inspect(path: folder.path) }
        let pickles = ScratchFolder()
        pickles.write("pytorch_model.bin", [0, 1, 2])
        assertForgeError(["PyTorch pickle", "safetensors"]) { try CheckpointSummary.inspect(path: pickles.path) }
        let corrupt = ScratchFolder()
        corrupt.write("model.gguf", Array(Fixtures.bytes("quants_v3.gguf").prefix(100)))
        assertForgeError(["model.gguf"]) { try CheckpointSummary.inspect(path: corrupt.path) }
    }

    func testSmolLM2WhenPresent() throws {
        guard let path = SmolLM2GGUFTests.modelPath(), FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("SmolLM2 GGUF not found (run scripts/fetch_model.sh)")
        }
        let summary = try CheckpointSummary.inspect(path: path)
        XCTAssertEqual(summary.architecture, "llama")
        XCTAssertEqual(summary.hyperparameter("layers"), .int(30))
        XCTAssertEqual(summary.hyperparameter("hidden"), .int(576))
        XCTAssertEqual(summary.hyperparameter("heads"), .int(9))
        XCTAssertEqual(summary.hyperparameter("kv_heads"), .int(3))
        XCTAssertEqual(summary.hyperparameter("vocab"), .int(49152))
        XCTAssertEqual(summary.hyperparameter("rms_norm_eps"), .double(1e-5))
        XCTAssertEqual(summary.totalParameters, 134_515_008, "gguf-py: sum of n_elements")
        XCTAssertEqual(summary.tokenizer?.model, "gpt2")
        XCTAssertEqual(summary.tokenizer?.vocabSize, 49152)
        XCTAssertEqual(summary.totalBytes, 98_362_432)
        XCTAssertEqual(summary.tensorGroups.count, 11, "token_embd, 9 per-layer groups ×30, output_norm")
        XCTAssertTrue(summary.renderText(allTensors: false).contains("blk.N.attn_q.weight  ×30"))
        XCTAssertEqual(summary.renderText(allTensors: true).components(separatedBy: "\n").filter { $0.contains("blk.") }.count, 270)
    }
}
