import TensorMath

/// One decoder layer's intermediate tensors for a sequence of T tokens — exactly what a backward
/// pass reads (inputs of every RMSNorm and Linear, rotated q/k, v, attention probabilities, the MLP
/// gate/up pre-activations).
public final class LlamaLayerActivations {
    /// Layer input (residual stream) `[T, C]`: the first RMSNorm's input.
    public let input: FloatBuffer
    public let norm1: FloatBuffer      // [T, C]
    public let rstd1: FloatBuffer      // [T]
    public let q: FloatBuffer          // [T, heads·D], after RoPE
    public let k: FloatBuffer          // [T, kvHeads·D], after RoPE
    public let v: FloatBuffer          // [T, kvHeads·D]
    public let probs: FloatBuffer      // per segment of length n: [heads, n, n], segments in order
    public let attention: FloatBuffer  // [T, heads·D]: o_proj's input
    /// input + o_proj(attention) `[T, C]`: the second RMSNorm's input.
    public let middle: FloatBuffer
    public let norm2: FloatBuffer      // [T, C]
    public let rstd2: FloatBuffer      // [T]
    public let gate: FloatBuffer       // [T, I]
    public let up: FloatBuffer         // [T, I]
    public let gated: FloatBuffer      // [T, I] = silu(gate)·up: down_proj's input

    init(config c: LlamaConfig, tokens t: Int, probsCount: Int, input: FloatBuffer, middle: FloatBuffer) {
        self.input = input
        self.middle = middle
        norm1 = FloatBuffer(count: t * c.hiddenSize)
        rstd1 = FloatBuffer(count: t)
        q = FloatBuffer(count: t * c.qWidth)
        k = FloatBuffer(count: t * c.kvWidth)
        v = FloatBuffer(count: t * c.kvWidth)
        probs = FloatBuffer(count: probsCount)
        attention = FloatBuffer(count: t * c.qWidth)
        norm2 = FloatBuffer(count: t * c.hiddenSize)
        rstd2 = FloatBuffer(count: t)
        gate = FloatBuffer(count: t * c.intermediateSize)
        up = FloatBuffer(count: t * c.intermediateSize)
        gated = FloatBuffer(count: t * c.intermediateSize)
    }
}

/// Buffers for one full-sequence forward of `tokens` positions.
///
/// With `keepForBackward` every layer gets its own `LlamaLayerActivations` and its own residual
/// stream buffers, so after `forward` a trainer can run the backward pass layer by layer. Without
/// it (inference) one set is shared by all layers and the residual stream is updated in place —
/// memory independent of depth.
public final class LlamaActivations {
    public let tokens: Int
    /// Lengths of the independent sequences packed into the T rows, in order (sum = T). Each is
    /// its own causal attention block with positions from 0; matrix products run over all rows.
    public let segments: [Int]
    public let keepForBackward: Bool
    /// Per layer (count = layers when keeping for backward, else one shared entry).
    public let layers: [LlamaLayerActivations]
    /// The residual stream after the last layer `[T, C]`: the final norm's input.
    public let finalInput: FloatBuffer
    public let finalNorm: FloatBuffer  // [T, C]
    public let finalRstd: FloatBuffer  // [T]
    /// `[T, V]`.
    public let logits: FloatBuffer
    /// o_proj / down_proj outputs before the residual add `[T, C]` (not needed by backward).
    let projection: FloatBuffer

    public convenience init(config c: LlamaConfig, tokens t: Int, keepForBackward: Bool) {
        self.init(config: c, segments: [t], keepForBackward: keepForBackward)
    }

    /// Buffers for several sequences run as one pass (lengths `segments`).
    public init(config c: LlamaConfig, segments: [Int], keepForBackward: Bool) {
        precondition(!segments.isEmpty && segments.allSatisfy { $0 > 0 }, "LlamaActivations: empty sequence")
        let t = segments.reduce(0, +)
        tokens = t
        self.segments = segments
        self.keepForBackward = keepForBackward
        let probsCount = c.numAttentionHeads * segments.reduce(0) { $0 + $1 * $1 }
        let width = t * c.hiddenSize
        if keepForBackward {
            var list: [LlamaLayerActivations] = []
            var input = FloatBuffer(count: width)
            for _ in 0..<c.numHiddenLayers {
                let middle = FloatBuffer(count: width)
                list.append(LlamaLayerActivations(config: c, tokens: t, probsCount: probsCount, input: input, middle: middle))
                input = FloatBuffer(count: width)
            }
            layers = list
            finalInput = input
        } else {
            let stream = FloatBuffer(count: width)
            layers = [LlamaLayerActivations(config: c, tokens: t, probsCount: probsCount, input: stream, middle: stream)]
            finalInput = stream
        }
        finalNorm = FloatBuffer(count: width)
        finalRstd = FloatBuffer(count: t)
        logits = FloatBuffer(count: t * c.vocabSize)
        projection = FloatBuffer(count: width)
    }

    /// The embeddings fed to layer 0 `[T, C]` (write here when passing input embeddings).
    public var embeddings: FloatBuffer { layers[0].input }

    func layer(_ index: Int) -> LlamaLayerActivations { keepForBackward ? layers[index] : layers[0] }

    /// Where layer `index` writes its output.
    func output(ofLayer index: Int) -> FloatBuffer {
        keepForBackward ? (index + 1 < layers.count ? layers[index + 1].input : finalInput) : finalInput
    }
}
