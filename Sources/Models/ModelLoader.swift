import Checkpoints
import ForgeCore
import Foundation
import TensorMath

/// What `ModelLoader.load(path:)` found.
public enum LoadedModel {
    case language(LlamaModel)
    case vision(CLIPVisionTower)
    case llava(LlavaModel)
}

/// Settings a LLaVA assembled from parts needs that no single part's config carries.
public struct LlavaPartsOptions: Sendable {
    public var imageTokenIndex: Int
    public var visionFeatureLayers: [Int]
    public var visionFeatureSelectStrategy: VisionFeatureStrategy
    /// Without a projector file: a freshly initialised projector of this kind (Stage 1 training).
    public var newProjectorKind: ProjectorConfig.Kind
    public var seed: UInt64

    public init(imageTokenIndex: Int = 32000, visionFeatureLayers: [Int] = [-2], visionFeatureSelectStrategy: VisionFeatureStrategy = .default,
                newProjectorKind: ProjectorConfig.Kind = .mlp2x, seed: UInt64 = 0) {
        self.imageTokenIndex = imageTokenIndex
        self.visionFeatureLayers = visionFeatureLayers
        self.visionFeatureSelectStrategy = visionFeatureSelectStrategy
        self.newProjectorKind = newProjectorKind
        self.seed = seed
    }
}

/// Loads checkpoints into our models: a folder (config.json + safetensors, single or sharded), a
/// `.safetensors` file (config.json beside it) or a GGUF file. Weights are converted/dequantized to
/// Float32 into one flat `ParameterBuffer` per part (trainable projector + LLM, frozen tower).
public enum ModelLoader {
    static let languageModelTypes: Set<String> = ["llama", "qwen2", "mistral"]
    static let visionModelTypes: Set<String> = ["clip_vision_model", "clip"]

    public static func load(path: String) throws -> LoadedModel {
        _ = BLASRuntime.ensureBestCore()
        if isGGUF(path) { return .language(try loadGGUF(path: path)) }
        let (configPath, checkpointPath) = try locate(path)
        let json = try readConfig(configPath)
        let header = try decode(ConfigHeader.self, from: json, file: configPath)
        let modelType = header.modelType ?? ""
        if modelType == "llava" {
            let config = try decode(LlavaConfig.self, from: json, file: configPath)
            return .llava(try loadLlava(config: config, checkpoint: SafeTensorsCheckpoint(path: checkpointPath), configPath: configPath))
        }
        if languageModelTypes.contains(modelType) {
            let config = try decode(LlamaConfig.self, from: json, file: configPath)
            return .language(try loadLanguage(config: config, source: SafeTensorsCheckpoint(path: checkpointPath), configPath: configPath))
        }
        if visionModelTypes.contains(modelType) {
            let config = try visionConfig(json, modelType: modelType, file: configPath)
            return .vision(try loadVision(config: config, source: SafeTensorsCheckpoint(path: checkpointPath), configPath: configPath,
                                          ignoreCLIPTextTower: modelType == "clip"))
        }
        if modelType == "llava_llama" {
            throw ForgeError(.usage, "an original-LLaVA (llava_llama) folder holds the LLM and projector but not the vision tower; load it with loadParts(vision: CLIP folder, llm: this folder, projector: nil)",
                             file: configPath, location: "model_type")
        }
        throw ForgeError(.badInput, "model_type '\(modelType)' is not supported (llava, llama, qwen2, mistral, clip, clip_vision_model)",
                         file: configPath, location: "model_type")
    }

    /// A LLaMA-family decoder from a folder, safetensors file or GGUF file.
    public static func loadLanguageModel(path: String) throws -> LlamaModel {
        guard case .language(let model) = try load(path: path) else {
            throw ForgeError(.badInput, "not a LLaMA-family language model", file: path)
        }
        return model
    }

    /// A CLIP vision tower from a CLIPVisionModel / CLIPModel folder.
    public static func loadVisionTower(path: String) throws -> CLIPVisionTower {
        guard case .vision(let tower) = try load(path: path) else {
            throw ForgeError(.badInput, "not a CLIP vision model", file: path)
        }
        return tower
    }

    /// A LLaVA from separate parts: a CLIP folder, an LLM (folder or GGUF) and optionally a projector
    /// file (`model.mm_projector.*` or `multi_modal_projector.*` safetensors). Without a projector
    /// file the projector comes from the LLM checkpoint when it has one (original LLaVA
    /// `llava_llama` folders), else it is freshly initialised (PyTorch's Linear default, seeded).
    public static func loadParts(vision: String, llm: String, projector: String?, options: LlavaPartsOptions = LlavaPartsOptions()) throws -> LlavaModel {
        _ = BLASRuntime.ensureBestCore()
        let tower = try loadVisionTower(path: vision)
        // LLM config and source.
        let textConfig: LlamaConfig
        let llmSource: TensorSource
        var ggufRoPE: (Int, Int, Int)?
        if isGGUF(llm) {
            let file = try GGUFFile(path: llm)
            textConfig = try LlamaConfig(gguf: file)
            llmSource = file
            if file.architecture == "llama" || file.architecture == "mistral" {
                ggufRoPE = (textConfig.numAttentionHeads, textConfig.numKeyValueHeads, textConfig.headDim)
            }
        } else {
            let (configPath, checkpointPath) = try locate(llm)
            textConfig = try decode(LlamaConfig.self, from: try readConfig(configPath), file: configPath)
            try textConfig.validate(file: configPath)
            llmSource = try SafeTensorsCheckpoint(path: checkpointPath)
        }
        // Projector config from its file's tensors, from the LLM checkpoint itself (original LLaVA
        // `llava_llama` folders carry model.mm_projector.* next to the decoder), or a new one.
        let featureWidth = tower.config.hiddenSize * options.visionFeatureLayers.count
        var projectorSource: TensorSource?
        var projectorConfig = ProjectorConfig(kind: options.newProjectorKind, inputSize: featureWidth, outputSize: textConfig.hiddenSize)
        let llmHoldsProjector = llmSource.tensorNames.contains {
            if case .parameter(.projector, _)? = CheckpointKeys.sanitize($0) { return true } else { return false }
        }
        if let projector {
            let source = try SafeTensorsCheckpoint(path: projector)
            projectorConfig = try inferProjector(source)
            projectorSource = source
        } else if llmHoldsProjector {
            projectorConfig = try inferProjector(llmSource)
        }
        guard projectorConfig.inputSize == featureWidth, projectorConfig.outputSize == textConfig.hiddenSize else {
            throw ForgeError(.badInput, "projector maps \(projectorConfig.inputSize) → \(projectorConfig.outputSize) features, but the tower gives \(featureWidth) and the language model takes \(textConfig.hiddenSize)",
                             file: projector ?? llm)
        }
        let config = LlavaConfig(textConfig: textConfig, visionConfig: tower.config, projectorHiddenAct: projectorConfig.activation,
                                 visionFeatureLayers: options.visionFeatureLayers, visionFeatureSelectStrategy: options.visionFeatureSelectStrategy,
                                 imageTokenIndex: options.imageTokenIndex, imageSeqLength: tower.config.patchCount,
                                 multimodalProjectorBias: projectorConfig.bias)
        let trainable = ParameterBuffer(layout: LlavaModel.trainableLayout(text: textConfig, projector: projectorConfig))
        var llmTargets = [languageTarget(textConfig, buffer: trainable, prefix: LlavaModel.languagePrefix, ggufRoPE: ggufRoPE)]
        if projector == nil && llmHoldsProjector { llmTargets.append(projectorTarget(projectorConfig, buffer: trainable)) }
        try WeightLoader.load(llmSource, into: llmTargets)
        if let projectorSource {
            try WeightLoader.load(projectorSource, into: [projectorTarget(projectorConfig, buffer: trainable)])
        } else if !llmHoldsProjector {
            initialiseProjector(projectorConfig, buffer: trainable, seed: options.seed)
        }
        return try LlavaModel(config: config, vision: tower, trainable: trainable, projectorConfig: projectorConfig)
    }

    // MARK: - Parts

    static func loadGGUF(path: String) throws -> LlamaModel {
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        let buffer = LlamaModel.makeParameters(config)
        // llama.cpp permutes Q/K for the llama architecture only; qwen2 files keep transformers' rows.
        let permuted = file.architecture == "llama" || file.architecture == "mistral"
        try WeightLoader.load(file, into: [languageTarget(config, buffer: buffer, prefix: "",
                                                          ggufRoPE: permuted ? (config.numAttentionHeads, config.numKeyValueHeads, config.headDim) : nil)])
        return try LlamaModel(config: config, parameters: buffer)
    }

    static func loadLanguage(config: LlamaConfig, source: TensorSource, configPath: String) throws -> LlamaModel {
        try config.validate(file: configPath)
        let buffer = LlamaModel.makeParameters(config)
        try WeightLoader.load(source, into: [languageTarget(config, buffer: buffer, prefix: "")])
        return try LlamaModel(config: config, parameters: buffer)
    }

    static func loadVision(config: CLIPVisionConfig, source: TensorSource, configPath: String, ignoreCLIPTextTower: Bool) throws -> CLIPVisionTower {
        try config.validate(file: configPath)
        let buffer = CLIPVisionTower.makeParameters(config)
        try WeightLoader.load(source, into: [PartTarget(part: .vision, buffer: buffer, prefix: "", shapes: CLIPParameterNames.shapes(config))],
                              ignoreCLIPTextTower: ignoreCLIPTextTower)
        return try CLIPVisionTower(config: config, parameters: buffer)
    }

    static func loadLlava(config: LlavaConfig, checkpoint: TensorSource, configPath: String) throws -> LlavaModel {
        try config.textConfig.validate(file: configPath)
        try config.visionConfig.validate(file: configPath)
        let visionBuffer = CLIPVisionTower.makeParameters(config.visionConfig)
        let trainable = ParameterBuffer(layout: LlavaModel.trainableLayout(text: config.textConfig, projector: config.projector))
        try WeightLoader.load(checkpoint, into: [
            PartTarget(part: .vision, buffer: visionBuffer, prefix: "", shapes: CLIPParameterNames.shapes(config.visionConfig)),
            projectorTarget(config.projector, buffer: trainable),
            languageTarget(config.textConfig, buffer: trainable, prefix: LlavaModel.languagePrefix),
        ])
        let tower = try CLIPVisionTower(config: config.visionConfig, parameters: visionBuffer)
        return try LlavaModel(config: config, vision: tower, trainable: trainable)
    }

    static func languageTarget(_ config: LlamaConfig, buffer: ParameterBuffer, prefix: String, ggufRoPE: (Int, Int, Int)? = nil) -> PartTarget {
        PartTarget(part: .language, buffer: buffer, prefix: prefix, shapes: LlamaParameterNames.shapes(config),
                   tiedHead: config.tieWordEmbeddings, ggufRoPE: ggufRoPE.map { (heads: $0.0, kvHeads: $0.1, headDim: $0.2) })
    }

    static func projectorTarget(_ config: ProjectorConfig, buffer: ParameterBuffer) -> PartTarget {
        PartTarget(part: .projector, buffer: buffer, prefix: LlavaModel.projectorPrefix, shapes: ProjectorParameterNames.shapes(config))
    }

    /// Kind, bias and sizes of a projector file, from its (sanitized) tensor names and shapes.
    static func inferProjector(_ source: TensorSource) throws -> ProjectorConfig {
        var shapes: [String: [Int]] = [:]
        for key in source.tensorNames {
            if case .parameter(.projector, let name)? = CheckpointKeys.sanitize(key), let info = source.info(key) { shapes[name] = info.shape }
        }
        guard let first = shapes["linear_1.weight"], first.count == 2 else {
            throw ForgeError(.badInput, "no projector weight (mm_projector.0.weight, mm_projector.weight or multi_modal_projector.linear_1.weight)",
                             file: source.path)
        }
        return ProjectorConfig(kind: shapes["linear_2.weight"] == nil ? .linear : .mlp2x, activation: "gelu",
                               bias: shapes["linear_1.bias"] != nil, inputSize: first[1], outputSize: first[0])
    }

    /// PyTorch's `nn.Linear` default: weight and bias ~ U(−1/√in, 1/√in).
    static func initialiseProjector(_ config: ProjectorConfig, buffer: ParameterBuffer, seed: UInt64) {
        var random = SeededRandom(seed: seed, key: "projector-init")
        for (name, shape) in ProjectorParameterNames.shapes(config) {
            let fanIn = name.hasPrefix("linear_1") ? config.inputSize : config.outputSize
            let bound = 1 / Float(fanIn).squareRoot()
            let pointer = buffer.pointer(LlavaModel.projectorPrefix + name)
            for i in 0..<shape.reduce(1, *) { pointer[i] = Float.random(in: -bound..<bound, using: &random) }
        }
    }

    // MARK: - Files and config.json

    /// A regular file starting with the bytes "GGUF" (the extension is not trusted either way).
    static func isGGUF(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    struct ConfigHeader: Decodable {
        var modelType: String?
        enum CodingKeys: String, CodingKey { case modelType = "model_type" }
    }

    /// (config.json, checkpoint path) for a folder, a .safetensors file or an index .json.
    static func locate(_ path: String) throws -> (String, String) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForgeError(.io, "no such file or folder", file: path)
        }
        let folder = isDirectory.boolValue ? URL(fileURLWithPath: path) : URL(fileURLWithPath: path).deletingLastPathComponent()
        let config = folder.appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: config) else {
            throw ForgeError(.badInput, "no config.json next to the weights", file: path)
        }
        return (config, path)
    }

    static func readConfig(_ path: String) throws -> Data {
        do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ForgeError(.io, "cannot read: \(error.localizedDescription)", file: path)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: data)
        } catch let error as DecodingError {
            let (path, message): ([CodingKey], String)
            switch error {
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
                (path, message) = (context.codingPath, context.debugDescription)
            @unknown default:
                (path, message) = ([], "\(error)")
            }
            throw ForgeError(.badInput, message, file: file, location: path.map(\.stringValue).joined(separator: "."))
        }
    }

    static func visionConfig(_ json: Data, modelType: String, file: String) throws -> CLIPVisionConfig {
        if modelType == "clip" {
            struct Wrapper: Decodable {
                var visionConfig: CLIPVisionConfig?
                enum CodingKeys: String, CodingKey { case visionConfig = "vision_config" }
            }
            return try decode(Wrapper.self, from: json, file: file).visionConfig ?? CLIPVisionConfig()
        }
        return try decode(CLIPVisionConfig.self, from: json, file: file)
    }
}
