import ForgeCore
import Foundation

/// A CLIP ViT vision tower's hyper-parameters (`CLIPVisionConfig`, or `vision_config` inside a
/// `CLIPConfig` / `LlavaConfig`). Missing fields take transformers' defaults.
public struct CLIPVisionConfig: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numChannels: Int
    public var imageSize: Int
    public var patchSize: Int
    public var layerNormEps: Float
    /// `quick_gelu` (CLIP) or `gelu` (exact erf GELU).
    public var hiddenAct: String

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numChannels = "num_channels"
        case imageSize = "image_size"
        case patchSize = "patch_size"
        case layerNormEps = "layer_norm_eps"
        case hiddenAct = "hidden_act"
    }

    public init(hiddenSize: Int = 768, intermediateSize: Int = 3072, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12,
                numChannels: Int = 3, imageSize: Int = 224, patchSize: Int = 32, layerNormEps: Float = 1e-5,
                hiddenAct: String = "quick_gelu") {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numChannels = numChannels
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.layerNormEps = layerNormEps
        self.hiddenAct = hiddenAct
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = CLIPVisionConfig()
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        numChannels = try c.decodeIfPresent(Int.self, forKey: .numChannels) ?? d.numChannels
        imageSize = try c.decodeIfPresent(Int.self, forKey: .imageSize) ?? d.imageSize
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? d.patchSize
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? d.hiddenAct
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
    public var patchesPerSide: Int { imageSize / patchSize }
    public var patchCount: Int { patchesPerSide * patchesPerSide }
    /// Patches plus the class token.
    public var positionCount: Int { patchCount + 1 }
    /// Floats in one flattened patch, in the conv weight's (channel, y, x) order.
    public var patchVectorLength: Int { numChannels * patchSize * patchSize }

    public func validate(file: String?) throws {
        func fail(_ field: String, _ message: String) -> ForgeError { ForgeError(.badInput, message, file: file, location: field) }
        for (field, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                               ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                               ("num_channels", numChannels), ("image_size", imageSize), ("patch_size", patchSize)]
        where value <= 0 || value > 1 << 20 {
            throw fail(field, "\(field) = \(value) is out of range")
        }
        guard hiddenSize % numAttentionHeads == 0 else { throw fail("num_attention_heads", "hidden_size \(hiddenSize) is not divisible by \(numAttentionHeads) heads") }
        guard imageSize % patchSize == 0 else { throw fail("patch_size", "image_size \(imageSize) is not a multiple of patch_size \(patchSize)") }
        guard ["quick_gelu", "gelu"].contains(hiddenAct) else { throw fail("hidden_act", "activation '\(hiddenAct)' is not supported (quick_gelu, gelu)") }
    }
}

/// Which rows of the selected hidden state become image features.
public enum VisionFeatureStrategy: String, Codable, Sendable {
    /// Drop the class token (LLaVA).
    case `default`
    /// Keep every row, class token first.
    case full
}

/// The projector between the vision features and the LLM embeddings.
public struct ProjectorConfig: Sendable, Equatable {
    public enum Kind: String, Sendable { case linear, mlp2x }
    public var kind: Kind
    /// `gelu` (exact erf) for mlp2x; ignored for linear.
    public var activation: String
    public var bias: Bool
    public var inputSize: Int
    public var outputSize: Int

    public init(kind: Kind, activation: String = "gelu", bias: Bool = true, inputSize: Int, outputSize: Int) {
        self.kind = kind
        self.activation = activation
        self.bias = bias
        self.inputSize = inputSize
        self.outputSize = outputSize
    }
}

/// transformers' `LlavaConfig`.
public struct LlavaConfig: Codable, Sendable, Equatable {
    public var textConfig: LlamaConfig
    public var visionConfig: CLIPVisionConfig
    public var projectorHiddenAct: String
    /// Hidden-state indices (HF `hidden_states` numbering: 0 = embeddings after pre-LayerNorm,
    /// k = after k encoder layers; negative counts from the end). Several are concatenated.
    public var visionFeatureLayers: [Int]
    public var visionFeatureSelectStrategy: VisionFeatureStrategy
    public var imageTokenIndex: Int
    public var imageSeqLength: Int
    public var multimodalProjectorBias: Bool

    enum CodingKeys: String, CodingKey {
        case textConfig = "text_config"
        case visionConfig = "vision_config"
        case projectorHiddenAct = "projector_hidden_act"
        case visionFeatureLayer = "vision_feature_layer"
        case visionFeatureSelectStrategy = "vision_feature_select_strategy"
        case imageTokenIndex = "image_token_index"
        case imageTokenID = "image_token_id"
        case imageSeqLength = "image_seq_length"
        case multimodalProjectorBias = "multimodal_projector_bias"
    }

    public init(textConfig: LlamaConfig, visionConfig: CLIPVisionConfig, projectorHiddenAct: String = "gelu",
                visionFeatureLayers: [Int] = [-2], visionFeatureSelectStrategy: VisionFeatureStrategy = .default,
                imageTokenIndex: Int = 32000, imageSeqLength: Int = 576, multimodalProjectorBias: Bool = true) {
        self.textConfig = textConfig
        self.visionConfig = visionConfig
        self.projectorHiddenAct = projectorHiddenAct
        self.visionFeatureLayers = visionFeatureLayers
        self.visionFeatureSelectStrategy = visionFeatureSelectStrategy
        self.imageTokenIndex = imageTokenIndex
        self.imageSeqLength = imageSeqLength
        self.multimodalProjectorBias = multimodalProjectorBias
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        // Both sub-configs default like transformers' LlavaConfig (a CLIP ViT-L/14-336 and a Llama).
        textConfig = try c.decodeIfPresent(LlamaConfig.self, forKey: .textConfig) ?? (try JSONDecoder().decode(LlamaConfig.self, from: Data("{}".utf8)))
        visionConfig = try c.decodeIfPresent(CLIPVisionConfig.self, forKey: .visionConfig)
            ?? CLIPVisionConfig(hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 24, numAttentionHeads: 16,
                                imageSize: 336, patchSize: 14)
        projectorHiddenAct = try c.decodeIfPresent(String.self, forKey: .projectorHiddenAct) ?? "gelu"
        if let single = try? c.decodeIfPresent(Int.self, forKey: .visionFeatureLayer) {
            visionFeatureLayers = [single]
        } else if let list = try c.decodeIfPresent([Int].self, forKey: .visionFeatureLayer) {
            visionFeatureLayers = list
        } else {
            visionFeatureLayers = [-2]
        }
        visionFeatureSelectStrategy = try c.decodeIfPresent(VisionFeatureStrategy.self, forKey: .visionFeatureSelectStrategy) ?? .default
        imageTokenIndex = try c.decodeIfPresent(Int.self, forKey: .imageTokenIndex)
            ?? c.decodeIfPresent(Int.self, forKey: .imageTokenID) ?? 32000
        imageSeqLength = try c.decodeIfPresent(Int.self, forKey: .imageSeqLength) ?? 576
        multimodalProjectorBias = try c.decodeIfPresent(Bool.self, forKey: .multimodalProjectorBias) ?? true
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(textConfig, forKey: .textConfig)
        try c.encode(visionConfig, forKey: .visionConfig)
        try c.encode(projectorHiddenAct, forKey: .projectorHiddenAct)
        if visionFeatureLayers.count == 1 {
            try c.encode(visionFeatureLayers[0], forKey: .visionFeatureLayer)
        } else {
            try c.encode(visionFeatureLayers, forKey: .visionFeatureLayer)
        }
        try c.encode(visionFeatureSelectStrategy, forKey: .visionFeatureSelectStrategy)
        try c.encode(imageTokenIndex, forKey: .imageTokenIndex)
        try c.encode(imageSeqLength, forKey: .imageSeqLength)
        try c.encode(multimodalProjectorBias, forKey: .multimodalProjectorBias)
    }

    /// The projector LLaVA-HF builds: Linear(vision·layers → text) → act → Linear(text → text).
    public var projector: ProjectorConfig {
        ProjectorConfig(kind: .mlp2x, activation: projectorHiddenAct, bias: multimodalProjectorBias,
                        inputSize: visionConfig.hiddenSize * visionFeatureLayers.count, outputSize: textConfig.hiddenSize)
    }
}
