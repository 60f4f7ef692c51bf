import Checkpoints
import ForgeCore
import Foundation

/// A LLaMA-family decoder's hyper-parameters, as in transformers' `LlamaConfig` / `Qwen2Config`
/// `config.json`. Missing fields take transformers' defaults for the `model_type`, because real
/// files (llava-hf `text_config`) often list only what differs from them.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    /// Per-head width; transformers defaults it to hidden_size / num_attention_heads.
    public var headDim: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    public var tieWordEmbeddings: Bool
    /// Biases on q/k/v (Llama's `attention_bias` also puts one on o_proj; Qwen2 has q/k/v only).
    public var attentionBias: Bool
    /// Derived, not a config.json field: Llama's `attention_bias`, false for Qwen2; from GGUF, whether
    /// `blk.0.attn_output.bias` exists.
    public var outputProjectionBias: Bool
    public var mlpBias: Bool
    public var bosTokenID: Int?
    public var eosTokenID: Int?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case maxPositionEmbeddings = "max_position_embeddings"
        case vocabSize = "vocab_size"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id"
    }

    /// `rope_scaling` / transformers 5 `rope_parameters`: only the plain ("default") rotation is implemented.
    struct RopeParameters: Codable {
        var ropeType: String?
        var type: String?
        var ropeTheta: Double?
        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, ropeTheta = "rope_theta"
        }
    }

    public init(
        modelType: String = "llama", hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
        numAttentionHeads: Int, numKeyValueHeads: Int? = nil, headDim: Int? = nil, rmsNormEps: Float = 1e-6,
        ropeTheta: Double = 10_000, maxPositionEmbeddings: Int = 2048, vocabSize: Int,
        tieWordEmbeddings: Bool = false, attentionBias: Bool = false, outputProjectionBias: Bool = false,
        mlpBias: Bool = false, bosTokenID: Int? = 1, eosTokenID: Int? = 2
    ) {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? hiddenSize / max(1, numAttentionHeads)
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.vocabSize = vocabSize
        self.tieWordEmbeddings = tieWordEmbeddings
        self.attentionBias = attentionBias
        self.outputProjectionBias = outputProjectionBias
        self.mlpBias = mlpBias
        self.bosTokenID = bosTokenID
        self.eosTokenID = eosTokenID
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        let isQwen2 = modelType == "qwen2"
        // transformers' defaults (LlamaConfig / Qwen2Config __init__).
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 4096
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? (isQwen2 ? 22016 : 11008)
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? 32
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? 32
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? hiddenSize / max(1, numAttentionHeads)
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        let parameters = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? parameters?.ropeTheta ?? 10_000
        for rope in [parameters, try c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling)].compactMap({ $0 }) {
            let kind = rope.ropeType ?? rope.type ?? "default"
            guard kind == "default" else {
                throw DecodingError.dataCorruptedError(forKey: .ropeScaling, in: c,
                    debugDescription: "rope type '\(kind)' is not supported (only the default rotation is)")
            }
        }
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? (isQwen2 ? 32768 : 2048)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? (isQwen2 ? 151_936 : 32000)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        // Qwen2 always has q/k/v biases and no o_proj bias; Llama's attention_bias covers all four.
        let llamaBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        attentionBias = isQwen2 ? true : llamaBias
        outputProjectionBias = isQwen2 ? false : llamaBias
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        bosTokenID = try LlamaConfig.decodeTokenID(c, .bosTokenID)
        eosTokenID = try LlamaConfig.decodeTokenID(c, .eosTokenID)
    }

    /// Token ids may be an int, a list (first taken) or null.
    private static func decodeTokenID(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Int? {
        if let single = try? c.decodeIfPresent(Int.self, forKey: key) { return single }
        if let list = try? c.decodeIfPresent([Int].self, forKey: key) { return list.first }
        return nil
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType, forKey: .modelType)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        if modelType != "qwen2" { try c.encode(attentionBias, forKey: .attentionBias) }
        try c.encode(mlpBias, forKey: .mlpBias)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID)
    }

    public var qWidth: Int { numAttentionHeads * headDim }
    public var kvWidth: Int { numKeyValueHeads * headDim }

    /// Structural checks a config.json can fail (named field, not a crash later).
    public func validate(file: String?) throws {
        func fail(_ field: String, _ message: String) -> ForgeError { ForgeError(.badInput, message, file: file, location: field) }
        for (field, value) in [("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                               ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                               ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim), ("vocab_size", vocabSize),
                               ("max_position_embeddings", maxPositionEmbeddings)] where value <= 0 || value > 1 << 24 {
            throw fail(field, "\(field) = \(value) is out of range")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw fail("num_key_value_heads", "\(numAttentionHeads) attention heads are not a multiple of \(numKeyValueHeads) key/value heads")
        }
        guard headDim % 2 == 0 else { throw fail("head_dim", "head_dim \(headDim) must be even for rotary embeddings") }
        guard rmsNormEps > 0, ropeTheta > 0 else { throw fail("rms_norm_eps", "rms_norm_eps and rope_theta must be positive") }
    }
}

extension LlamaConfig {
    /// From GGUF metadata (`<arch>.embedding_length`, `block_count`, `attention.head_count(_kv)`,
    /// `feed_forward_length`, `rope.freq_base`, `attention.layer_norm_rms_epsilon`, `context_length`;
    /// the vocabulary size from the tokenizer's token list). The tie is decided by the loader from
    /// whether `output.weight` exists.
    public init(gguf file: GGUFFile) throws {
        guard let arch = file.architecture else {
            throw ForgeError(.badInput, "no general.architecture in the metadata", file: file.path, location: "general.architecture")
        }
        guard arch == "llama" || arch == "qwen2" || arch == "mistral" else {
            throw ForgeError(.badInput, "architecture '\(arch)' is not a LLaMA-family decoder (llama, qwen2 and mistral are)",
                             file: file.path, location: "general.architecture")
        }
        func int(_ key: String) throws -> Int {
            guard let value = file.metadata["\(arch).\(key)"]?.int else {
                throw ForgeError(.badInput, "missing or non-integer metadata", file: file.path, location: "\(arch).\(key)")
            }
            return value
        }
        func optionalDouble(_ key: String) -> Double? { file.metadata["\(arch).\(key)"]?.double }
        let hidden = try int("embedding_length")
        let heads = try int("attention.head_count")
        let kvHeads = (try? int("attention.head_count_kv")) ?? heads
        let headDim = (try? int("attention.key_length")) ?? (try? int("rope.dimension_count")) ?? hidden / max(1, heads)
        let vocab: Int
        if let tokens = file.metadata["tokenizer.ggml.tokens"]?.array {
            vocab = tokens.count
        } else if let stated = try? int("vocab_size") {
            vocab = stated
        } else if let embedding = file.info("token_embd.weight"), embedding.shape.count == 2 {
            vocab = embedding.shape[0]
        } else {
            throw ForgeError(.badInput, "no vocabulary size (tokenizer.ggml.tokens, \(arch).vocab_size or token_embd.weight)", file: file.path)
        }
        if let scaling = file.metadata["\(arch).rope.scaling.type"]?.string, scaling != "none" {
            throw ForgeError(.badInput, "rope scaling '\(scaling)' is not supported", file: file.path, location: "\(arch).rope.scaling.type")
        }
        self.init(modelType: arch == "qwen2" ? "qwen2" : "llama",
                  hiddenSize: hidden,
                  intermediateSize: try int("feed_forward_length"),
                  numHiddenLayers: try int("block_count"),
                  numAttentionHeads: heads,
                  numKeyValueHeads: kvHeads,
                  headDim: headDim,
                  rmsNormEps: Float(optionalDouble("attention.layer_norm_rms_epsilon") ?? 1e-5),
                  ropeTheta: optionalDouble("rope.freq_base") ?? 10_000,
                  maxPositionEmbeddings: (try? int("context_length")) ?? 2048,
                  vocabSize: vocab,
                  tieWordEmbeddings: file.info("output.weight") == nil,
                  attentionBias: file.info("blk.0.attn_q.bias") != nil,
                  outputProjectionBias: file.info("blk.0.attn_output.bias") != nil,
                  bosTokenID: file.metadata["tokenizer.ggml.bos_token_id"]?.int,
                  eosTokenID: file.metadata["tokenizer.ggml.eos_token_id"]?.int)
        try validate(file: file.path)
    }
}
