import Models
import TensorMath

/// Gradient scratch for one backward pass of `tokens` positions (llm.c's "grads_acts"): one set
/// reused by every layer, so memory is independent of depth. Every buffer is written over before
/// anything accumulates into it, so a workspace can be reused across steps.
public final class LlamaBackwardWorkspace {
    public let tokens: Int
    /// d(residual stream) `[T, C]`: d(layer output) on entry to a layer, d(layer input) on exit.
    /// After `backward` it holds d(embeddings) — what a LLaVA splice routes to the projector.
    public let dStream: FloatBuffer
    let dNorm: FloatBuffer       // [T, C]: d(RMSNorm output)
    let dAttention: FloatBuffer  // [T, heads·D]
    let dq: FloatBuffer          // [T, heads·D]
    let dk: FloatBuffer          // [T, kvHeads·D]
    let dv: FloatBuffer          // [T, kvHeads·D]
    let dGated: FloatBuffer      // [T, I]
    let dGate: FloatBuffer       // [T, I]
    let dUp: FloatBuffer         // [T, I]
    let headInput: FloatBuffer   // [T, C]: the final norm's rows that had logits (gathered)
    let dHeadInput: FloatBuffer  // [T, C]

    public init(config c: LlamaConfig, tokens t: Int) {
        tokens = t
        dStream = FloatBuffer(count: t * c.hiddenSize)
        dNorm = FloatBuffer(count: t * c.hiddenSize)
        dAttention = FloatBuffer(count: t * c.qWidth)
        dq = FloatBuffer(count: t * c.qWidth)
        dk = FloatBuffer(count: t * c.kvWidth)
        dv = FloatBuffer(count: t * c.kvWidth)
        dGated = FloatBuffer(count: t * c.intermediateSize)
        dGate = FloatBuffer(count: t * c.intermediateSize)
        dUp = FloatBuffer(count: t * c.intermediateSize)
        headInput = FloatBuffer(count: t * c.hiddenSize)
        dHeadInput = FloatBuffer(count: t * c.hiddenSize)
    }
}

@inline(__always)
func zero(_ buffer: FloatBuffer, _ count: Int) {
    OpProfile.measure("zero") {
        Parallel.forEachRange(count, grain: 262_144) { range in
            (buffer.pointer + range.lowerBound).update(repeating: 0, count: range.count)
        }
    }
}

extension LlamaModel {
    /// Backward of `forward(activations:)` from dlogits `[T, V]` (may be the logits buffer itself,
    /// overwritten by a fused loss) — or, with `logitRows`, of `forward(activations:logitRows:)`
    /// from dlogits `[R, V]` of those rows. Accumulates every parameter gradient into `gradients`
    /// (a buffer with this model's parameter layout: gradient of the tensor at offset o lives at
    /// `gradients.storage.pointer + o`). On return `workspace.dStream` holds d(embeddings) `[T, C]`.
    ///
    /// `embeddingTokens`: ids whose embedding rows receive the embedding gradient (one per
    /// position; pass a negative id for positions that were not token embeddings, e.g. spliced
    /// image rows). `nil` skips the embedding-table gradient (the input was embeddings only).
    /// `weightGradients: false` (a frozen decoder, Stage 1) forms only d(embeddings): no
    /// parameter gradient is written, which skips a third of the backward's matrix work.
    public func backward(
        activations a: LlamaActivations,
        dLogits: UnsafePointer<Float>,
        gradients: ParameterBuffer,
        workspace w: LlamaBackwardWorkspace,
        embeddingTokens: [Int]?,
        weightGradients: Bool = true,
        logitRows: [Int]? = nil
    ) {
        precondition(a.keepForBackward, "LlamaModel.backward: activations were not kept for backward")
        precondition(a.tokens == w.tokens, "LlamaModel.backward: workspace for \(w.tokens) tokens, activations for \(a.tokens)")
        precondition(!weightGradients || gradients.totalCount == parameters.totalCount, "LlamaModel.backward: gradient buffer layout differs")
        let c = config, t = a.tokens, hidden = c.hiddenSize, inter = c.intermediateSize
        let p = parameters.storage.pointer
        let g: UnsafeMutablePointer<Float>? = weightGradients ? gradients.storage.pointer : nil
        func optional(_ base: UnsafeMutablePointer<Float>?, _ offset: Int?) -> UnsafeMutablePointer<Float>? {
            guard let base, let offset else { return nil }
            return base + offset
        }
        let scale = 1 / Float(c.headDim).squareRoot()

        // lm_head (tied: the embedding table) and the final norm. Every d(activation) buffer is
        // written over by its first product (β = 0) or op (`accumulate: false`): no zeroing passes.
        if let logitRows, logitRows.count < t {
            // dLogits is [R, V] for the rows forward(activations:logitRows:) projected; the others had no logits.
            let rows = logitRows.count
            LlamaModel.gather(rows: logitRows, from: a.finalNorm.pointer, into: w.headInput.pointer, width: hidden, limit: t)
            Linear.backward(dinput: w.dHeadInput.pointer, dweight: optional(g, headOffset), dbias: nil, dout: dLogits,
                            input: w.headInput.pointer, weight: p + headOffset, rows: rows, inFeatures: hidden, outFeatures: c.vocabSize,
                            accumulateInput: false)
            // Rows without logits get no gradient.
            var next = 0
            for (r, row) in logitRows.enumerated() {
                precondition(row >= next, "LlamaModel.backward: logitRows must ascend")
                if next < row { (w.dNorm.pointer + next * hidden).update(repeating: 0, count: (row - next) * hidden) }
                (w.dNorm.pointer + row * hidden).update(from: w.dHeadInput.pointer + r * hidden, count: hidden)
                next = row + 1
            }
            if next < t { (w.dNorm.pointer + next * hidden).update(repeating: 0, count: (t - next) * hidden) }
        } else {
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, headOffset), dbias: nil, dout: dLogits,
                            input: a.finalNorm.pointer, weight: p + headOffset, rows: t, inFeatures: hidden, outFeatures: c.vocabSize,
                            accumulateInput: false)
        }
        RMSNorm.backward(dinput: w.dStream.pointer, dweight: optional(g, finalNormOffset), dout: w.dNorm.pointer,
                         input: a.finalInput.pointer, weight: p + finalNormOffset, rstd: a.finalRstd.pointer, rows: t, dim: hidden,
                         accumulate: false)

        for index in stride(from: layerOffsets.count - 1, through: 0, by: -1) {
            let o = layerOffsets[index], l = a.layers[index]
            // output = middle + down(silu(gate)·up): dStream is d(output) = d(middle) so far.
            Linear.backward(dinput: w.dGated.pointer, dweight: optional(g, o.down), dbias: optional(g, o.downBias), dout: w.dStream.pointer,
                            input: l.gated.pointer, weight: p + o.down, rows: t, inFeatures: inter, outFeatures: hidden, accumulateInput: false)
            adapter?.backward(layer: index, projection: .down, dinput: w.dGated.pointer, dout: w.dStream.pointer, input: l.gated.pointer, rows: t)
            SwiGLU.backward(dgate: w.dGate.pointer, dup: w.dUp.pointer, dout: w.dGated.pointer,
                            gate: l.gate.pointer, up: l.up.pointer, count: t * inter, accumulate: false)
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, o.gate), dbias: optional(g, o.gateBias), dout: w.dGate.pointer,
                            input: l.norm2.pointer, weight: p + o.gate, rows: t, inFeatures: hidden, outFeatures: inter, accumulateInput: false)
            adapter?.backward(layer: index, projection: .gate, dinput: w.dNorm.pointer, dout: w.dGate.pointer, input: l.norm2.pointer, rows: t)
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, o.up), dbias: optional(g, o.upBias), dout: w.dUp.pointer,
                            input: l.norm2.pointer, weight: p + o.up, rows: t, inFeatures: hidden, outFeatures: inter)
            adapter?.backward(layer: index, projection: .up, dinput: w.dNorm.pointer, dout: w.dUp.pointer, input: l.norm2.pointer, rows: t)
            RMSNorm.backward(dinput: w.dStream.pointer, dweight: optional(g, o.postNorm), dout: w.dNorm.pointer,
                             input: l.middle.pointer, weight: p + o.postNorm, rstd: l.rstd2.pointer, rows: t, dim: hidden)

            // middle = input + o_proj(attention): dStream is now d(middle) = d(input) so far.
            Linear.backward(dinput: w.dAttention.pointer, dweight: optional(g, o.o), dbias: optional(g, o.oBias), dout: w.dStream.pointer,
                            input: l.attention.pointer, weight: p + o.o, rows: t, inFeatures: c.qWidth, outFeatures: hidden, accumulateInput: false)
            adapter?.backward(layer: index, projection: .o, dinput: w.dAttention.pointer, dout: w.dStream.pointer, input: l.attention.pointer, rows: t)
            Attention.backward(dq: w.dq.pointer, dk: w.dk.pointer, dv: w.dv.pointer, dout: w.dAttention.pointer, probs: l.probs.pointer,
                               q: l.q.pointer, k: l.k.pointer, v: l.v.pointer, segments: a.segments, shape: attentionShape(t), scale: scale,
                               accumulate: false)
            forEachSegment(a) { start, length, _ in
                // q and k were rotated after their projections; undo the rotation on their gradients.
                RoPE.backward(w.dq.pointer + start * c.qWidth, table: rotary, tokens: length, heads: c.numAttentionHeads)
                RoPE.backward(w.dk.pointer + start * c.kvWidth, table: rotary, tokens: length, heads: c.numKeyValueHeads)
            }
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, o.q), dbias: optional(g, o.qBias), dout: w.dq.pointer,
                            input: l.norm1.pointer, weight: p + o.q, rows: t, inFeatures: hidden, outFeatures: c.qWidth, accumulateInput: false)
            adapter?.backward(layer: index, projection: .q, dinput: w.dNorm.pointer, dout: w.dq.pointer, input: l.norm1.pointer, rows: t)
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, o.k), dbias: optional(g, o.kBias), dout: w.dk.pointer,
                            input: l.norm1.pointer, weight: p + o.k, rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            adapter?.backward(layer: index, projection: .k, dinput: w.dNorm.pointer, dout: w.dk.pointer, input: l.norm1.pointer, rows: t)
            Linear.backward(dinput: w.dNorm.pointer, dweight: optional(g, o.v), dbias: optional(g, o.vBias), dout: w.dv.pointer,
                            input: l.norm1.pointer, weight: p + o.v, rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            adapter?.backward(layer: index, projection: .v, dinput: w.dNorm.pointer, dout: w.dv.pointer, input: l.norm1.pointer, rows: t)
            RMSNorm.backward(dinput: w.dStream.pointer, dweight: optional(g, o.inputNorm), dout: w.dNorm.pointer,
                             input: l.input.pointer, weight: p + o.inputNorm, rstd: l.rstd1.pointer, rows: t, dim: hidden)
        }

        guard let embeddingTokens, let g else { return }
        precondition(embeddingTokens.count == t, "LlamaModel.backward: \(embeddingTokens.count) embedding ids for \(t) positions")
        let table = g + embedOffset, dEmbeddings = w.dStream.pointer
        OpProfile.measure("embedding.backward") {
            for (position, id) in embeddingTokens.enumerated() where id >= 0 {
                precondition(id < c.vocabSize, "LlamaModel.backward: token id \(id) outside the vocabulary")
                let target = table + id * hidden, source = dEmbeddings + position * hidden
                for i in 0..<hidden { target[i] += source[i] }
            }
        }
    }
}
