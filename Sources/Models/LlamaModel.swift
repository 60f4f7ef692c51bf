import ForgeCore
import TensorMath

/// A LLaMA-family decoder (Llama, SmolLM, Qwen2-style biases): token embeddings, per layer
/// RMSNorm → GQA attention with rotate-half RoPE → residual → RMSNorm → SwiGLU MLP → residual,
/// final RMSNorm, tied or untied lm_head. Every matrix product is one sgemm `[T, in] · Wᵀ`.
///
/// The weights live in `parameters` (one flat Float32 buffer, names from `LlamaParameterNames`
/// under `prefix`), so an optimizer over the part is one loop over `parameters.storage`.
public final class LlamaModel {
    public let config: LlamaConfig
    public let parameters: ParameterBuffer
    public let prefix: String
    public let rotary: RotaryTable

    /// Offsets into `parameters.storage` (and into a gradient buffer with the same layout).
    public let embedOffset: Int
    public let finalNormOffset: Int
    /// lm_head, or the embedding table when tied (its gradient then accumulates into the table's).
    public let headOffset: Int
    public let layerOffsets: [LlamaLayerOffsets]

    public static let maximumRotaryPositions = 32768

    /// A trainable term on some projections (LoRA), applied by the full-sequence forward and by
    /// `backward`; nil for a plain model. The KV-cache decode path ignores it (merge first).
    public var adapter: LinearAdapter?

    public init(config: LlamaConfig, parameters: ParameterBuffer, prefix: String = "") throws {
        try config.validate(file: nil)
        self.config = config
        self.parameters = parameters
        self.prefix = prefix
        var missing: [String] = []
        func offset(_ name: String) -> Int {
            guard let slot = parameters.layout.slot(prefix + name) else { missing.append(prefix + name); return 0 }
            return slot.offset
        }
        for (name, shape) in LlamaParameterNames.shapes(config) {
            if let slot = parameters.layout.slot(prefix + name), slot.shape != shape {
                throw ForgeError(.badInput, "parameter \(prefix + name) has shape \(slot.shape), the config needs \(shape)")
            }
        }
        embedOffset = offset(LlamaParameterNames.embedTokens)
        finalNormOffset = offset(LlamaParameterNames.finalNorm)
        headOffset = config.tieWordEmbeddings ? embedOffset : offset(LlamaParameterNames.lmHead)
        layerOffsets = (0..<config.numHiddenLayers).map { LlamaLayerOffsets(layer: $0, config: config, offset: offset) }
        if !missing.isEmpty {
            throw ForgeError(.badInput, "parameter buffer lacks \(missing.count) tensors: \(missing.prefix(5).joined(separator: ", "))")
        }
        // The cos/sin table costs 4·D bytes per position; long-context configs (128k) are capped so
        // loading stays cheap — sequences past the cap are refused with an error.
        rotary = RotaryTable(positions: min(config.maxPositionEmbeddings, LlamaModel.maximumRotaryPositions),
                             headDim: config.headDim, theta: config.ropeTheta)
    }

    /// A zero-filled buffer with this config's layout (weights to be loaded or initialised).
    public static func makeParameters(_ config: LlamaConfig, prefix: String = "") -> ParameterBuffer {
        var layout = ParameterLayout()
        LlamaParameterNames.declare(config, prefix: prefix, into: &layout)
        return ParameterBuffer(layout: layout)
    }

    @inline(__always) func weight(_ offset: Int) -> UnsafeMutablePointer<Float> { parameters.storage.pointer + offset }
    @inline(__always) func optionalWeight(_ offset: Int?) -> UnsafeMutablePointer<Float>? { offset.map { parameters.storage.pointer + $0 } }

    /// The embedding table `[V, C]`.
    public var embeddingTable: UnsafePointer<Float> { UnsafePointer(weight(embedOffset)) }

    // MARK: - Embeddings

    /// Checks ids before any lookup (the kernel's precondition would crash on a bad id).
    public func validate(tokens: [Int]) throws {
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw ForgeError(.badInput, "token id \(bad) is outside the vocabulary 0..<\(config.vocabSize)")
        }
    }

    /// out `[T, C]` = embedding rows of `tokens`.
    public func embed(tokens: [Int], into out: UnsafeMutablePointer<Float>) throws {
        try validate(tokens: tokens)
        tokens.withUnsafeBufferPointer { ids in
            Embedding.forward(out: out, tokenIDs: ids, table: weight(embedOffset), vocab: config.vocabSize, dim: config.hiddenSize)
        }
    }

    // MARK: - Full-sequence forward (training-capable)

    /// A sequence the full forward can take: 1...max_position_embeddings positions.
    public func validate(sequenceLength t: Int) throws {
        guard t > 0 else { throw ForgeError(.usage, "empty token sequence") }
        guard t <= rotary.positions else {
            throw ForgeError(.usage, "\(t) positions exceed the model's \(rotary.positions) (max_position_embeddings)")
        }
    }

    /// Logits `[T, V]` (row-major) for a sequence of token ids.
    public func logits(tokens: [Int]) throws -> [Float] {
        try validate(sequenceLength: tokens.count)
        let activations = LlamaActivations(config: config, tokens: tokens.count, keepForBackward: false)
        try embed(tokens: tokens, into: activations.embeddings.pointer)
        forward(activations: activations)
        return activations.logits.toArray()
    }

    /// Runs the decoder on `activations.embeddings` (`[T, C]`, already filled: token embeddings or
    /// spliced multimodal embeddings) and fills `activations.logits` `[T, V]`. Positions are
    /// 0..<T. With `keepForBackward` activations, every intermediate a backward pass needs is kept.
    public func forward(activations a: LlamaActivations) { forward(activations: a, logitRows: nil) }

    /// As `forward(activations:)`, with the vocabulary projection only for the positions in
    /// `logitRows` (ascending, each in 0..<T): their logits fill rows 0..<R of `activations.logits`.
    /// Training passes the positions whose next-token label counts — an image's rows and a masked
    /// prompt need no logits, and the head is the largest single matrix of a small LM.
    /// nil = every position.
    public func forward(activations a: LlamaActivations, logitRows: [Int]?) {
        let c = config, t = a.tokens
        let hidden = c.hiddenSize, inter = c.intermediateSize
        precondition(a.segments.allSatisfy { $0 <= rotary.positions }, "LlamaModel: a sequence exceeds the \(rotary.positions) rotary positions (call validate(sequenceLength:))")
        let scale = 1 / Float(c.headDim).squareRoot()
        for (index, w) in layerOffsets.enumerated() {
            let l = a.layer(index)
            let output = a.output(ofLayer: index)
            RMSNorm.forward(out: l.norm1.pointer, rstd: l.rstd1.pointer, input: l.input.pointer, weight: weight(w.inputNorm),
                            rows: t, dim: hidden, eps: c.rmsNormEps)
            Linear.forward(out: l.q.pointer, input: l.norm1.pointer, weight: weight(w.q), bias: optionalWeight(w.qBias),
                           rows: t, inFeatures: hidden, outFeatures: c.qWidth)
            adapter?.forward(layer: index, projection: .q, out: l.q.pointer, input: l.norm1.pointer, rows: t)
            Linear.forward(out: l.k.pointer, input: l.norm1.pointer, weight: weight(w.k), bias: optionalWeight(w.kBias),
                           rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            adapter?.forward(layer: index, projection: .k, out: l.k.pointer, input: l.norm1.pointer, rows: t)
            Linear.forward(out: l.v.pointer, input: l.norm1.pointer, weight: weight(w.v), bias: optionalWeight(w.vBias),
                           rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            adapter?.forward(layer: index, projection: .v, out: l.v.pointer, input: l.norm1.pointer, rows: t)
            forEachSegment(a) { start, length, _ in
                RoPE.forward(l.q.pointer + start * c.qWidth, table: rotary, tokens: length, heads: c.numAttentionHeads)
                RoPE.forward(l.k.pointer + start * c.kvWidth, table: rotary, tokens: length, heads: c.numKeyValueHeads)
            }
            // Every packed sequence's heads in one pass (one fork/join per layer).
            Attention.forward(out: l.attention.pointer, probs: l.probs.pointer, q: l.q.pointer, k: l.k.pointer, v: l.v.pointer,
                              segments: a.segments, shape: attentionShape(t), scale: scale)
            Linear.forward(out: a.projection.pointer, input: l.attention.pointer, weight: weight(w.o), bias: optionalWeight(w.oBias),
                           rows: t, inFeatures: c.qWidth, outFeatures: hidden)
            adapter?.forward(layer: index, projection: .o, out: a.projection.pointer, input: l.attention.pointer, rows: t)
            Residual.forward(out: l.middle.pointer, a: l.input.pointer, b: a.projection.pointer, count: t * hidden)
            RMSNorm.forward(out: l.norm2.pointer, rstd: l.rstd2.pointer, input: l.middle.pointer, weight: weight(w.postNorm),
                            rows: t, dim: hidden, eps: c.rmsNormEps)
            Linear.forward(out: l.gate.pointer, input: l.norm2.pointer, weight: weight(w.gate), bias: optionalWeight(w.gateBias),
                           rows: t, inFeatures: hidden, outFeatures: inter)
            adapter?.forward(layer: index, projection: .gate, out: l.gate.pointer, input: l.norm2.pointer, rows: t)
            Linear.forward(out: l.up.pointer, input: l.norm2.pointer, weight: weight(w.up), bias: optionalWeight(w.upBias),
                           rows: t, inFeatures: hidden, outFeatures: inter)
            adapter?.forward(layer: index, projection: .up, out: l.up.pointer, input: l.norm2.pointer, rows: t)
            SwiGLU.forward(out: l.gated.pointer, gate: l.gate.pointer, up: l.up.pointer, count: t * inter)
            Linear.forward(out: a.projection.pointer, input: l.gated.pointer, weight: weight(w.down), bias: optionalWeight(w.downBias),
                           rows: t, inFeatures: inter, outFeatures: hidden)
            adapter?.forward(layer: index, projection: .down, out: a.projection.pointer, input: l.gated.pointer, rows: t)
            Residual.forward(out: output.pointer, a: l.middle.pointer, b: a.projection.pointer, count: t * hidden)
        }
        RMSNorm.forward(out: a.finalNorm.pointer, rstd: a.finalRstd.pointer, input: a.finalInput.pointer, weight: weight(finalNormOffset),
                        rows: t, dim: hidden, eps: c.rmsNormEps)
        guard let logitRows, logitRows.count < t else {
            Linear.forward(out: a.logits.pointer, input: a.finalNorm.pointer, weight: weight(headOffset), bias: nil,
                           rows: t, inFeatures: hidden, outFeatures: c.vocabSize)
            return
        }
        // The wanted rows gathered into the (free after the last layer) projection scratch [R, C].
        LlamaModel.gather(rows: logitRows, from: a.finalNorm.pointer, into: a.projection.pointer, width: hidden, limit: t)
        Linear.forward(out: a.logits.pointer, input: a.projection.pointer, weight: weight(headOffset), bias: nil,
                       rows: logitRows.count, inFeatures: hidden, outFeatures: c.vocabSize)
    }

    /// The causal attention shape of `length` rows (one sequence, or several packed: pass `segments`).
    public func attentionShape(_ length: Int) -> Attention.Shape {
        Attention.Shape(tokens: length, heads: config.numAttentionHeads, kvHeads: config.numKeyValueHeads, headDim: config.headDim, causal: true)
    }

    /// `body(first row, length, probs offset)` for each packed sequence of `a`.
    public func forEachSegment(_ a: LlamaActivations, _ body: (Int, Int, Int) -> Void) {
        var start = 0, probsOffset = 0
        for length in a.segments {
            body(start, length, probsOffset)
            start += length
            probsOffset += config.numAttentionHeads * length * length
        }
    }

    /// out row r = source row `rows[r]` (`[*, width]` each); rows must lie in 0..<limit.
    public static func gather(rows: [Int], from source: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width: Int, limit: Int) {
        for (r, row) in rows.enumerated() {
            precondition(row >= 0 && row < limit, "gather: row \(row) outside 0..<\(limit)")
            (out + r * width).update(from: source + row * width, count: width)
        }
    }

    // MARK: - Incremental decode with a KV cache

    /// Which logits rows a cached step returns.
    public enum LogitsRows: Sendable { case last, all }

    /// Appends `tokens` to the sequence in `cache` (positions `cache.length…`) and returns the
    /// logits of the last new position `[V]` or of all new positions `[T, V]`.
    public func decode(tokens: [Int], cache: KVCache, rows: LogitsRows = .last) throws -> [Float] {
        guard !tokens.isEmpty else { throw ForgeError(.usage, "decode: no tokens") }
        let workspace = try prepareWorkspace(tokens: tokens.count, cache: cache)
        try embed(tokens: tokens, into: workspace.x.pointer)
        return decodeStep(workspace: workspace, tokens: tokens.count, cache: cache, rows: rows)
    }

    /// As `decode(tokens:)`, from input embeddings `[T, C]` (a LLaVA prompt with image rows spliced in).
    public func decode(embeddings: UnsafePointer<Float>, count: Int, cache: KVCache, rows: LogitsRows = .last) throws -> [Float] {
        guard count > 0 else { throw ForgeError(.usage, "decode: no positions") }
        let workspace = try prepareWorkspace(tokens: count, cache: cache)
        workspace.x.copy(from: embeddings, count: count * config.hiddenSize)
        return decodeStep(workspace: workspace, tokens: count, cache: cache, rows: rows)
    }

    private func prepareWorkspace(tokens t: Int, cache: KVCache) throws -> DecodeWorkspace {
        guard cache.layerCount == config.numHiddenLayers, cache.kvWidth == config.kvWidth else {
            throw ForgeError(.usage, "KV cache was made for another model (\(cache.layerCount) layers × \(cache.kvWidth))")
        }
        let context = cache.length + t
        guard context <= cache.capacity, context <= rotary.positions else {
            throw ForgeError(.usage, "sequence of \(context) positions exceeds the KV cache (\(cache.capacity)) or the model's \(rotary.positions) positions")
        }
        if let existing = cache.workspace, existing.tokens >= t, existing.context >= cache.capacity { return existing }
        let made = DecodeWorkspace(config: config, tokens: max(t, cache.workspace?.tokens ?? 0), context: cache.capacity)
        cache.workspace = made
        return made
    }

    private func decodeStep(workspace s: DecodeWorkspace, tokens t: Int, cache: KVCache, rows: LogitsRows) -> [Float] {
        let c = config, hidden = c.hiddenSize, inter = c.intermediateSize, offset = cache.length
        let x = s.x.pointer
        for (index, w) in layerOffsets.enumerated() {
            RMSNorm.forward(out: s.norm.pointer, rstd: nil, input: x, weight: weight(w.inputNorm), rows: t, dim: hidden, eps: c.rmsNormEps)
            // New keys/values go straight into the cache rows offset..<offset+T.
            let keyRows = cache.keys[index].pointer + offset * c.kvWidth
            let valueRows = cache.values[index].pointer + offset * c.kvWidth
            DecodeLinear.forward(out: s.q.pointer, input: s.norm.pointer, weight: weight(w.q), bias: optionalWeight(w.qBias),
                           rows: t, inFeatures: hidden, outFeatures: c.qWidth)
            DecodeLinear.forward(out: keyRows, input: s.norm.pointer, weight: weight(w.k), bias: optionalWeight(w.kBias),
                           rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            DecodeLinear.forward(out: valueRows, input: s.norm.pointer, weight: weight(w.v), bias: optionalWeight(w.vBias),
                           rows: t, inFeatures: hidden, outFeatures: c.kvWidth)
            RoPE.forward(s.q.pointer, table: rotary, tokens: t, heads: c.numAttentionHeads, positionOffset: offset)
            RoPE.forward(keyRows, table: rotary, tokens: t, heads: c.numKeyValueHeads, positionOffset: offset)
            CachedAttention.forward(out: s.attention.pointer, scores: s.scores.pointer, q: s.q.pointer,
                                    keys: cache.keys[index].pointer, values: cache.values[index].pointer,
                                    tokens: t, offset: offset, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim)
            DecodeLinear.forward(out: s.projection.pointer, input: s.attention.pointer, weight: weight(w.o), bias: optionalWeight(w.oBias),
                           rows: t, inFeatures: c.qWidth, outFeatures: hidden)
            Residual.forward(out: x, a: x, b: s.projection.pointer, count: t * hidden)
            RMSNorm.forward(out: s.norm.pointer, rstd: nil, input: x, weight: weight(w.postNorm), rows: t, dim: hidden, eps: c.rmsNormEps)
            DecodeLinear.forward(out: s.gate.pointer, input: s.norm.pointer, weight: weight(w.gate), bias: optionalWeight(w.gateBias),
                           rows: t, inFeatures: hidden, outFeatures: inter)
            DecodeLinear.forward(out: s.up.pointer, input: s.norm.pointer, weight: weight(w.up), bias: optionalWeight(w.upBias),
                           rows: t, inFeatures: hidden, outFeatures: inter)
            SwiGLU.forward(out: s.gate.pointer, gate: s.gate.pointer, up: s.up.pointer, count: t * inter)
            DecodeLinear.forward(out: s.projection.pointer, input: s.gate.pointer, weight: weight(w.down), bias: optionalWeight(w.downBias),
                           rows: t, inFeatures: inter, outFeatures: hidden)
            Residual.forward(out: x, a: x, b: s.projection.pointer, count: t * hidden)
        }
        cache.advance(by: t)
        // Only the rows asked for go through the final norm and the (large) vocabulary projection.
        let first = rows == .last ? t - 1 : 0, count = t - first
        RMSNorm.forward(out: s.norm.pointer, rstd: nil, input: x + first * hidden, weight: weight(finalNormOffset),
                        rows: count, dim: hidden, eps: c.rmsNormEps)
        var logits = [Float](repeating: 0, count: count * c.vocabSize)
        logits.withUnsafeMutableBufferPointer { out in
            DecodeLinear.forward(out: out.baseAddress!, input: s.norm.pointer, weight: weight(headOffset), bias: nil,
                           rows: count, inFeatures: hidden, outFeatures: c.vocabSize)
        }
        return logits
    }

    /// Greedy continuation: prefill `prompt`, then `maxTokens` argmax steps (stopping after `stop`
    /// ids). Returns the generated ids.
    public func greedy(prompt: [Int], maxTokens: Int, stop: Set<Int> = [], cache: KVCache? = nil) throws -> [Int] {
        let cache = cache ?? KVCache(config: config, capacity: max(1, min(rotary.positions, prompt.count + maxTokens)))
        return try Self.greedy(prompt: prompt, maxTokens: maxTokens, stop: stop, cache: cache) { try decode(tokens: $0, cache: $1) }
    }

    /// The greedy loop over any decoder with this cache layout (the quantized engine's too):
    /// reset `cache`, prefill, then argmax steps until `maxTokens` or a `stop` id (included).
    public static func greedy(prompt: [Int], maxTokens: Int, stop: Set<Int>, cache: KVCache,
                              decode: ([Int], KVCache) throws -> [Float]) rethrows -> [Int] {
        cache.reset()
        var logits = try decode(prompt, cache)
        var generated: [Int] = []
        while generated.count < maxTokens {
            let next = argmax(logits)
            generated.append(next)
            if stop.contains(next) || generated.count == maxTokens { break }
            logits = try decode([next], cache)
        }
        return generated
    }

    /// Index of the largest value (first on ties, like torch.argmax).
    public static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in 1..<values.count where values[i] > values[best] { best = i }
        return best
    }
}
