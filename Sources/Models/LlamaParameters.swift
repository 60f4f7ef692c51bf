import TensorMath

/// Our parameter names for a LLaMA-family decoder: transformers' `LlamaModel` names without the
/// `model.` prefix (`embed_tokens.weight`, `layers.3.self_attn.q_proj.weight`, `norm.weight`), plus
/// `lm_head.weight` when the head is not tied. A model part may live under a prefix inside a larger
/// buffer (`language_model.` in a LLaVA's trainable buffer).
public enum LlamaParameterNames {
    public static let embedTokens = "embed_tokens.weight"
    public static let finalNorm = "norm.weight"
    public static let lmHead = "lm_head.weight"

    public static func layer(_ index: Int, _ suffix: String) -> String { "layers.\(index).\(suffix)" }

    /// Every tensor of the decoder with its shape, in a fixed order (embeddings, layers, norm, head).
    public static func shapes(_ c: LlamaConfig) -> [(name: String, shape: [Int])] {
        var list: [(String, [Int])] = [(embedTokens, [c.vocabSize, c.hiddenSize])]
        for i in 0..<c.numHiddenLayers {
            list.append((layer(i, "input_layernorm.weight"), [c.hiddenSize]))
            list.append((layer(i, "self_attn.q_proj.weight"), [c.qWidth, c.hiddenSize]))
            if c.attentionBias { list.append((layer(i, "self_attn.q_proj.bias"), [c.qWidth])) }
            list.append((layer(i, "self_attn.k_proj.weight"), [c.kvWidth, c.hiddenSize]))
            if c.attentionBias { list.append((layer(i, "self_attn.k_proj.bias"), [c.kvWidth])) }
            list.append((layer(i, "self_attn.v_proj.weight"), [c.kvWidth, c.hiddenSize]))
            if c.attentionBias { list.append((layer(i, "self_attn.v_proj.bias"), [c.kvWidth])) }
            list.append((layer(i, "self_attn.o_proj.weight"), [c.hiddenSize, c.qWidth]))
            if c.outputProjectionBias { list.append((layer(i, "self_attn.o_proj.bias"), [c.hiddenSize])) }
            list.append((layer(i, "post_attention_layernorm.weight"), [c.hiddenSize]))
            for (proj, shape) in [("gate_proj", [c.intermediateSize, c.hiddenSize]), ("up_proj", [c.intermediateSize, c.hiddenSize]),
                                  ("down_proj", [c.hiddenSize, c.intermediateSize])] {
                list.append((layer(i, "mlp.\(proj).weight"), shape))
                if c.mlpBias { list.append((layer(i, "mlp.\(proj).bias"), [shape[0]])) }
            }
        }
        list.append((finalNorm, [c.hiddenSize]))
        if !c.tieWordEmbeddings { list.append((lmHead, [c.vocabSize, c.hiddenSize])) }
        return list
    }

    public static func declare(_ config: LlamaConfig, prefix: String = "", into layout: inout ParameterLayout) {
        for (name, shape) in shapes(config) { layout.add(prefix + name, shape: shape) }
    }
}

/// Offsets (in floats, into the part's buffer — and into a gradient buffer of the same layout)
/// of one decoder layer's tensors. A backward pass uses `grad.storage.pointer + offset`.
public struct LlamaLayerOffsets: Sendable {
    public var inputNorm: Int
    public var q: Int, qBias: Int?
    public var k: Int, kBias: Int?
    public var v: Int, vBias: Int?
    public var o: Int, oBias: Int?
    public var postNorm: Int
    public var gate: Int, gateBias: Int?
    public var up: Int, upBias: Int?
    public var down: Int, downBias: Int?

    init(layer i: Int, config c: LlamaConfig, offset: (String) -> Int) {
        func name(_ suffix: String) -> String { LlamaParameterNames.layer(i, suffix) }
        inputNorm = offset(name("input_layernorm.weight"))
        q = offset(name("self_attn.q_proj.weight"))
        k = offset(name("self_attn.k_proj.weight"))
        v = offset(name("self_attn.v_proj.weight"))
        o = offset(name("self_attn.o_proj.weight"))
        qBias = c.attentionBias ? offset(name("self_attn.q_proj.bias")) : nil
        kBias = c.attentionBias ? offset(name("self_attn.k_proj.bias")) : nil
        vBias = c.attentionBias ? offset(name("self_attn.v_proj.bias")) : nil
        oBias = c.outputProjectionBias ? offset(name("self_attn.o_proj.bias")) : nil
        postNorm = offset(name("post_attention_layernorm.weight"))
        gate = offset(name("mlp.gate_proj.weight"))
        up = offset(name("mlp.up_proj.weight"))
        down = offset(name("mlp.down_proj.weight"))
        gateBias = c.mlpBias ? offset(name("mlp.gate_proj.bias")) : nil
        upBias = c.mlpBias ? offset(name("mlp.up_proj.bias")) : nil
        downBias = c.mlpBias ? offset(name("mlp.down_proj.bias")) : nil
    }
}
