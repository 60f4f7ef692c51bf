import XCTest
import Checkpoints
import ForgeCore
@testable import Models

/// Every checkpoint key is consumed, nothing the config needs is missing, shapes agree — each
/// failure names the tensor.
final class LoadingTests: XCTestCase {
    typealias Tensor = (name: String, shape: [Int], data: [Float])

    func tinyLlamaTensors() throws -> [Tensor] {
        let source = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llama", "model"))
        return try source.tensorNames.map { name in (name, source.info(name)!.shape, try source.floats(name)) }
    }

    /// A folder with the tiny Llama's config.json (optionally edited) and the given tensors.
    func writeModel(_ tensors: [Tensor], editConfig: ((inout [String: Any]) -> Void)? = nil) throws -> String {
        let folder = try Fixtures.temporaryFolder(self)
        let configData = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny_llama", "model", "config.json")))
        var config = try JSONSerialization.jsonObject(with: configData) as! [String: Any]
        editConfig?(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        try SafeTensorsWriter.write(tensors, to: folder.appendingPathComponent("model.safetensors").path)
        return folder.path
    }

    func assertLoadFails(_ path: String, mentioning needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ModelLoader.load(path: path), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(error is ForgeError, "not a ForgeError: \(text)", file: file, line: line)
            for needle in needles { XCTAssertTrue(text.contains(needle), "'\(needle)' not in: \(text)", file: file, line: line) }
        }
    }

    func testRewrittenCopyLoads() throws {
        // The control: the same tensors rewritten by our writer load and give the same logits.
        let path = try writeModel(try tinyLlamaTensors())
        let model = try ModelLoader.loadLanguageModel(path: path)
        let original = try ModelLoader.loadLanguageModel(path: Fixtures.path("tiny_llama", "model"))
        XCTAssertEqual(try model.logits(tokens: [1, 2, 3]), try original.logits(tokens: [1, 2, 3]))
    }

    func testLeftoverKeyFailsNamingIt() throws {
        var tensors = try tinyLlamaTensors()
        tensors.append(("model.layers.0.mlp.extra_proj.weight", [2, 2], [1, 2, 3, 4]))
        assertLoadFails(try writeModel(tensors), mentioning: ["model.layers.0.mlp.extra_proj.weight", "not used"])
        // A whole extra layer (config says 2) is a leftover too.
        var extraLayer = try tinyLlamaTensors()
        extraLayer.append(("model.layers.2.input_layernorm.weight", [64], [Float](repeating: 1, count: 64)))
        assertLoadFails(try writeModel(extraLayer), mentioning: ["model.layers.2.input_layernorm.weight"])
        // An unknown prefix.
        var unknown = try tinyLlamaTensors()
        unknown.append(("something_else.weight", [1], [0]))
        assertLoadFails(try writeModel(unknown), mentioning: ["something_else.weight"])
    }

    func testMissingKeyFailsNamingItAndItsShape() throws {
        let tensors = try tinyLlamaTensors().filter { $0.name != "model.layers.1.self_attn.k_proj.weight" }
        assertLoadFails(try writeModel(tensors), mentioning: ["layers.1.self_attn.k_proj.weight", "[32, 64]", "missing"])
        // Untying the head in config.json makes lm_head required.
        assertLoadFails(try writeModel(try tinyLlamaTensors()) { $0["tie_word_embeddings"] = false }, mentioning: ["lm_head.weight", "missing"])
    }

    func testShapeMismatchFailsNamingTensorAndBothShapes() throws {
        var tensors = try tinyLlamaTensors()
        let index = tensors.firstIndex { $0.name == "model.layers.0.mlp.up_proj.weight" }!
        tensors[index] = (tensors[index].name, [64, 96], tensors[index].data)  // transposed
        assertLoadFails(try writeModel(tensors), mentioning: ["model.layers.0.mlp.up_proj.weight", "[64, 96]", "[96, 64]"])
        // Config vs weights: a config asking for a wider MLP.
        assertLoadFails(try writeModel(try tinyLlamaTensors()) { $0["intermediate_size"] = 128 },
                        mentioning: ["mlp.gate_proj.weight", "[96, 64]", "[128, 64]"])
    }

    func testLlavaLeftoverAndMissingNameTheTensor() throws {
        let source = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llava", "model"))
        var tensors: [Tensor] = try source.tensorNames.map { ($0, source.info($0)!.shape, try source.floats($0)) }
        let folder = try Fixtures.temporaryFolder(self)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny_llava", "model", "config.json"),
                                         toPath: folder.appendingPathComponent("config.json").path)
        let projectorKey = tensors.first { $0.name.contains("multi_modal_projector.linear_2.bias") }!.name
        tensors.removeAll { $0.name == projectorKey }
        try SafeTensorsWriter.write(tensors, to: folder.appendingPathComponent("model.safetensors").path)
        assertLoadFails(folder.path, mentioning: ["linear_2.bias", "missing"])
    }

    func testTwoLayoutsInOneFileAreRejected() throws {
        var tensors = try tinyLlamaTensors()
        let norm = tensors.first { $0.name == "model.norm.weight" }!
        tensors.append(("language_model.model.norm.weight", norm.shape, norm.data))
        assertLoadFails(try writeModel(tensors), mentioning: ["model.norm.weight", "language_model.model.norm.weight"])
    }

    func testSanitizeMapsEveryLayout() {
        let cases: [(String, CheckpointKeys.Mapping?)] = [
            ("language_model.model.layers.0.self_attn.q_proj.weight", .parameter(.language, "layers.0.self_attn.q_proj.weight")),
            ("language_model.lm_head.weight", .parameter(.language, "lm_head.weight")),
            ("model.language_model.norm.weight", .parameter(.language, "norm.weight")),
            ("language_model.embed_tokens.weight", .parameter(.language, "embed_tokens.weight")),
            ("lm_head.weight", .parameter(.language, "lm_head.weight")),
            ("model.layers.3.mlp.up_proj.weight", .parameter(.language, "layers.3.mlp.up_proj.weight")),
            ("vision_tower.vision_model.encoder.layers.1.mlp.fc1.bias", .parameter(.vision, "encoder.layers.1.mlp.fc1.bias")),
            ("model.vision_tower.vision_model.pre_layrnorm.weight", .parameter(.vision, "pre_layrnorm.weight")),
            ("vision_tower.encoder.layers.0.layer_norm1.weight", .parameter(.vision, "encoder.layers.0.layer_norm1.weight")),
            ("model.vision_tower.embeddings.class_embedding", .parameter(.vision, "embeddings.class_embedding")),
            ("vision_model.embeddings.patch_embedding.weight", .parameter(.vision, "embeddings.patch_embedding.weight")),
            ("multi_modal_projector.linear_1.weight", .parameter(.projector, "linear_1.weight")),
            ("model.multi_modal_projector.linear_2.bias", .parameter(.projector, "linear_2.bias")),
            ("model.mm_projector.0.weight", .parameter(.projector, "linear_1.weight")),
            ("model.mm_projector.2.bias", .parameter(.projector, "linear_2.bias")),
            ("model.mm_projector.weight", .parameter(.projector, "linear_1.weight")),
            ("token_embd.weight", .parameter(.language, "embed_tokens.weight")),
            ("blk.7.attn_q.weight", .parameter(.language, "layers.7.self_attn.q_proj.weight")),
            ("blk.7.attn_output.weight", .parameter(.language, "layers.7.self_attn.o_proj.weight")),
            ("blk.0.ffn_norm.weight", .parameter(.language, "layers.0.post_attention_layernorm.weight")),
            ("blk.0.ffn_down.weight", .parameter(.language, "layers.0.mlp.down_proj.weight")),
            ("output_norm.weight", .parameter(.language, "norm.weight")),
            ("output.weight", .parameter(.language, "lm_head.weight")),
            ("embeddings.position_embedding.weight", .parameter(.vision, "embeddings.position_embedding.weight")),
            ("encoder.layers.0.mlp.fc2.weight", .parameter(.vision, "encoder.layers.0.mlp.fc2.weight")),
            ("post_layernorm.bias", .parameter(.vision, "post_layernorm.bias")),
            ("layers.0.self_attn.q_proj.weight", .parameter(.language, "layers.0.self_attn.q_proj.weight")),
            ("model.layers.0.self_attn.rotary_emb.inv_freq", .ignored),
            ("vision_model.embeddings.position_ids", .ignored),
            ("blk.0.attn_qkv.weight", nil),
            ("rope_freqs.weight", nil),
            ("text_model.embeddings.token_embedding.weight", nil),
        ]
        for (key, expected) in cases {
            XCTAssertEqual(CheckpointKeys.sanitize(key), expected, key)
        }
        XCTAssertEqual(CheckpointKeys.sanitize("text_model.encoder.layers.0.mlp.fc1.weight", ignoreCLIPTextTower: true), .ignored)
        XCTAssertEqual(CheckpointKeys.sanitize("logit_scale", ignoreCLIPTextTower: true), .ignored)
    }

    /// GGUF's converter permutes Q/K rows per head as `reshape(heads, 2, D/2, in).swapaxes(1, 2)`;
    /// applying that permutation and then ours restores the original.
    func testGGUFUnpermuteInvertsTheConverterPermutation() {
        let heads = 3, d = 8, columns = 5
        let original = (0..<(heads * d * columns)).map(Float.init)
        var permuted = [Float](repeating: -1, count: original.count)
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<(d / 2) {
                    // torch: new[h, i, j] = old[h, j, i] over the (heads, D/2, 2) view.
                    let from = (h * d + j * (d / 2) + i) * columns, to = (h * d + i * 2 + j) * columns
                    for c in 0..<columns { permuted[to + c] = original[from + c] }
                }
            }
        }
        XCTAssertNotEqual(permuted, original)
        permuted.withUnsafeMutableBufferPointer { CheckpointKeys.unpermuteGGUFRows($0.baseAddress!, heads: heads, headDim: d, columns: columns) }
        XCTAssertEqual(permuted, original)
    }
}

final class PartsAndShardsTests: XCTestCase {
    /// A sharded checkpoint (model.safetensors.index.json + two shards) loads to the same logits.
    func testShardedSafetensorsLoad() throws {
        let source = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llama", "model"))
        let names = source.tensorNames
        let folder = try Fixtures.temporaryFolder(self)
        try FileManager.default.copyItem(atPath: Fixtures.path("tiny_llama", "model", "config.json"),
                                         toPath: folder.appendingPathComponent("config.json").path)
        var weightMap: [String: String] = [:]
        for (shard, slice) in [names.prefix(names.count / 2), names.suffix(names.count - names.count / 2)].enumerated() {
            let file = "model-0000\(shard + 1)-of-00002.safetensors"
            try SafeTensorsWriter.write(try slice.map { ($0, source.info($0)!.shape, try source.floats($0)) },
                                        to: folder.appendingPathComponent(file).path)
            for name in slice { weightMap[name] = file }
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
        try index.write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        let sharded = try ModelLoader.loadLanguageModel(path: folder.path)
        let original = try ModelLoader.loadLanguageModel(path: Fixtures.path("tiny_llama", "model"))
        XCTAssertEqual(try sharded.logits(tokens: [3, 1, 4, 1, 5]), try original.logits(tokens: [3, 1, 4, 1, 5]))
    }

    /// CLIP folder + GGUF LLM + no projector file: a new projector (PyTorch's Linear init), the
    /// language part identical to the GGUF loaded alone.
    func testPartsWithGGUFLanguageModelAndNewProjector() throws {
        let gguf = Fixtures.path("tiny_llama_gguf", "tiny_llama.Q8_0.gguf")
        let model = try ModelLoader.loadParts(vision: Fixtures.path("tiny_llava_parts", "vision"), llm: gguf, projector: nil,
                                              options: LlavaPartsOptions(imageTokenIndex: 299, seed: 7))
        XCTAssertEqual(model.projector.config, ProjectorConfig(kind: .mlp2x, activation: "gelu", bias: true, inputSize: 32, outputSize: 64))
        let weights = model.trainable.values(LlavaModel.projectorPrefix + "linear_1.weight")
        let bound = 1 / Float(32).squareRoot()
        XCTAssertTrue(weights.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(Set(weights).count, weights.count / 2)
        let alone = try ModelLoader.loadLanguageModel(path: gguf)
        let ids = [1, 20, 30, 40]
        XCTAssertEqual(try model.logits(tokens: ids), try alone.logits(tokens: ids))
        // An image runs end to end: 9 rows spliced at the 9 placeholders.
        let json = try Fixtures.caseJSON("tiny_llava")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let logits = try model.logits(tokens: [1] + [Int](repeating: 299, count: 9) + [5], pixelValues: pixels)
        XCTAssertEqual(logits.count, 11 * 300)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        // A projector file whose sizes do not fit the tower/LLM pair is refused, naming both sides.
        XCTAssertThrowsError(try ModelLoader.loadParts(vision: Fixtures.path("tiny_llava_parts", "vision"), llm: gguf,
                                                       projector: Fixtures.path("tiny_llava_parts", "mm_projector.safetensors"),
                                                       options: LlavaPartsOptions(imageTokenIndex: 299))) { error in
            XCTAssertTrue("\(error)".contains("projector"), "\(error)")
        }
    }
}

extension PartsAndShardsTests {
    /// An original-LLaVA style folder (model_type llava_llama: decoder `model.*` + `model.mm_projector.*`
    /// + `lm_head`) used as the LLM part brings its projector along.
    func testOriginalLlavaFolderCarriesItsProjector() throws {
        let llm = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llava_parts", "llm"))
        let projector = try SafeTensorsCheckpoint(path: Fixtures.path("tiny_llava_parts", "mm_projector.safetensors"))
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        for source in [llm, projector] as [TensorSource] {
            for name in source.tensorNames { tensors.append((name, source.info(name)!.shape, try source.floats(name))) }
        }
        let folder = try Fixtures.temporaryFolder(self)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny_llava_parts", "llm", "config.json")))) as! [String: Any]
        config["model_type"] = "llava_llama"
        config["mm_projector_type"] = "mlp2x_gelu"
        config["mm_vision_select_layer"] = -2
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        try SafeTensorsWriter.write(tensors, to: folder.appendingPathComponent("model.safetensors").path)

        let model = try ModelLoader.loadParts(vision: Fixtures.path("tiny_llava_parts", "vision"), llm: folder.path, projector: nil,
                                              options: LlavaPartsOptions(imageTokenIndex: 299))
        let json = try Fixtures.caseJSON("tiny_llava")
        let pixels = try Fixtures.floats("tiny_llava", json, "pixel_values").values
        let expected = try Fixtures.floats("tiny_llava", json, "image_logits").values
        let logits = try model.logits(tokens: Fixtures.ints(json, "image_input_ids"), pixelValues: pixels)
        XCTAssertLessThanOrEqual(Fixtures.maxAbsDifference(logits, expected), 1e-4)
        // Loaded alone it is not a complete model: a clear usage error.
        XCTAssertThrowsError(try ModelLoader.load(path: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("loadParts"), "\(error)")
        }
        // With a projector file as well, the folder's own projector tensors are leftovers.
        XCTAssertThrowsError(try ModelLoader.loadParts(vision: Fixtures.path("tiny_llava_parts", "vision"), llm: folder.path,
                                                       projector: Fixtures.path("tiny_llava_parts", "mm_projector.safetensors"),
                                                       options: LlavaPartsOptions(imageTokenIndex: 299))) { error in
            XCTAssertTrue("\(error)".contains("model.mm_projector.0.bias"), "\(error)")
        }
    }
}
