import Checkpoints
import ForgeCore
import Models
import TensorMath

/// One decoder layer's weights for the quantized engine.
struct QuantizedLayer {
    var inputNorm: FloatBuffer, postNorm: FloatBuffer
    var q: WeightMatrix, k: WeightMatrix, v: WeightMatrix, o: WeightMatrix
    var gate: WeightMatrix, up: WeightMatrix, down: WeightMatrix
    var qBias: FloatBuffer?, kBias: FloatBuffer?, vBias: FloatBuffer?, oBias: FloatBuffer?
    var gateBias: FloatBuffer?, upBias: FloatBuffer?, downBias: FloatBuffer?
}

/// One sequence's part of a batched step: new tokens (or input embeddings) appended to its cache.
public struct SequenceStep {
    public enum Input { case tokens([Int]), embeddings([Float]) }
    public var input: Input
    public var cache: KVCache
    public var rows: LlamaModel.LogitsRows
    public init(tokens: [Int], cache: KVCache, rows: LlamaModel.LogitsRows = .last) {
        input = .tokens(tokens); self.cache = cache; self.rows = rows
    }
    public init(embeddings: [Float], cache: KVCache, rows: LlamaModel.LogitsRows = .last) {
        input = .embeddings(embeddings); self.cache = cache; self.rows = rows
    }
}

/// The LLaMA-family decoder over GGUF weights kept in their stored form: Q4_0/Q4_1/Q8_0 matrices
/// read in place from the memory map by `BlockDot` (decode reads ~4.5–5 bits per weight for Q4),
/// F32 through sgemv/sgemm, other types converted once. Same math and layouts as
/// `Models.LlamaModel`'s cached path (RMSNorm → GQA attention with rotate-half RoPE → SwiGLU),
/// and the same `KVCache`, so prefix caching and LLaVA embeddings work the same way.
///
/// Not thread-safe: one `step` at a time (the batch scheduler serializes them). Several sequences
/// are decoded together by passing several `SequenceStep`s to one `step` call.
public final class QuantizedLlama {
    public let config: LlamaConfig
    public let rotary: RotaryTable
    let embedding: WeightMatrix
    let head: WeightMatrix
    let finalNorm: FloatBuffer
    let layers: [QuantizedLayer]
    private let workspace = QuantizedWorkspace()

    init(config: LlamaConfig, embedding: WeightMatrix, head: WeightMatrix, finalNorm: FloatBuffer, layers: [QuantizedLayer]) throws {
        try config.validate(file: nil)
        self.config = config
        self.embedding = embedding
        self.head = head
        self.finalNorm = finalNorm
        self.layers = layers
        rotary = RotaryTable(positions: min(config.maxPositionEmbeddings, LlamaModel.maximumRotaryPositions),
                             headDim: config.headDim, theta: config.ropeTheta)
    }

    /// Every matrix with its stored type, for reports (`model-info`, the bench).
    public var matrices: [WeightMatrix] {
        var list = [embedding]
        for l in layers { list += [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] }
        if head !== embedding { list.append(head) }
        return list
    }

    /// Bytes the decode of one token reads from weight matrices (embedding row excluded).
    public var decodeWeightBytes: Int {
        var total = head.rowBytes * head.rows
        for l in layers { for m in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] { total += m.rowBytes * m.rows } }
        return total
    }

    /// A KV cache for this model.
    public func makeCache(capacity: Int) -> KVCache { KVCache(config: config, capacity: min(capacity, rotary.positions)) }

    // MARK: - Decode

    /// Appends `tokens` to `cache` and returns the logits of the last new position `[V]` or of all
    /// new positions `[T, V]` (as `LlamaModel.decode`).
    public func decode(tokens: [Int], cache: KVCache, rows: LlamaModel.LogitsRows = .last) throws -> [Float] {
        try step([SequenceStep(tokens: tokens, cache: cache, rows: rows)])[0]
    }

    /// As `decode(tokens:)` from input embeddings `[count, C]` (a LLaVA prompt with image rows spliced in).
    public func decode(embeddings: [Float], cache: KVCache, rows: LlamaModel.LogitsRows = .last) throws -> [Float] {
        try step([SequenceStep(embeddings: embeddings, cache: cache, rows: rows)])[0]
    }

    /// One batched step: every sequence's new rows go through each weight matrix together (one
    /// multi-vector product), attention runs per sequence against its own cache. Returns each
    /// sequence's logits.
    public func step(_ sequences: [SequenceStep]) throws -> [[Float]] {
        let c = config, hidden = c.hiddenSize
        guard !sequences.isEmpty else { return [] }
        var counts: [Int] = []
        for s in sequences {
            let t: Int
            switch s.input {
            case .tokens(let ids):
                t = ids.count
                if let bad = ids.first(where: { $0 < 0 || $0 >= c.vocabSize }) {
                    throw ForgeError(.badInput, "token id \(bad) is outside the vocabulary 0..<\(c.vocabSize)")
                }
            case .embeddings(let values):
                guard values.count % hidden == 0 else { throw ForgeError(.usage, "embeddings: \(values.count) floats is not a whole number of \(hidden)-wide rows") }
                t = values.count / hidden
            }
            guard t > 0 else { throw ForgeError(.usage, "decode: no tokens") }
            guard s.cache.layerCount == c.numHiddenLayers, s.cache.kvWidth == c.kvWidth else {
                throw ForgeError(.usage, "KV cache was made for another model (\(s.cache.layerCount) layers × \(s.cache.kvWidth))")
            }
            let context = s.cache.length + t
            guard context <= s.cache.capacity, context <= rotary.positions else {
                throw ForgeError(.usage, "sequence of \(context) positions exceeds the KV cache (\(s.cache.capacity)) or the model's \(rotary.positions) positions")
            }
            counts.append(t)
        }
        if Set(sequences.map { ObjectIdentifier($0.cache) }).count != sequences.count {
            throw ForgeError(.usage, "step: two sequences share one KV cache")
        }
        let n = counts.reduce(0, +)
        // Prefill sequences (≥ the attention GEMM threshold) reuse one scratch one after another;
        // the decode ones share one parallel region, each with its own part.
        var prefillScores = 0, decodeScores = 0
        for (s, t) in zip(sequences, counts) {
            let need = SequenceAttention.scratchCount(tokens: t, context: s.cache.length + t, heads: c.numAttentionHeads,
                                                      kvHeads: c.numKeyValueHeads, headDim: c.headDim)
            if t >= SequenceAttention.gemmThreshold { prefillScores = max(prefillScores, need) } else { decodeScores += need }
        }
        let maxScores = max(prefillScores, decodeScores)
        let selected = zip(sequences, counts).reduce(0) { $0 + ($1.0.rows == .last ? 1 : $1.1) }
        let w = workspace.prepare(config: c, rows: max(n, selected), scores: maxScores)

        // Embeddings.
        var row = 0
        for (s, t) in zip(sequences, counts) {
            switch s.input {
            case .tokens(let ids):
                for (i, id) in ids.enumerated() { embedding.row(id, into: w.x.pointer + (row + i) * hidden) }
            case .embeddings(let values):
                w.x.copy(from: values, count: values.count, at: row * hidden)
            }
            row += t
        }
        forwardLayers(sequences, counts: counts, rows: n, workspace: w)
        for (s, t) in zip(sequences, counts) { s.cache.advance(by: t) }

        // Only the asked-for rows go through the final norm and the vocabulary projection, all
        // sequences' rows together.
        var gathered = 0, source = 0
        var spans: [(Int, Int)] = []
        for (s, t) in zip(sequences, counts) {
            let first = s.rows == .last ? t - 1 : 0, count = t - first
            RMSNorm.forward(out: w.norm.pointer + gathered * hidden, rstd: nil, input: w.x.pointer + (source + first) * hidden,
                            weight: finalNorm.pointer, rows: count, dim: hidden, eps: c.rmsNormEps)
            spans.append((gathered, count))
            gathered += count
            source += t
        }
        let logits = w.logits(gathered * c.vocabSize)  // reused: every element is written below
        QuantizedLinear.forward(jobs: [LinearJob(weight: head, bias: nil, out: logits.pointer, outStride: c.vocabSize)],
                                input: w.norm.pointer, vectors: gathered, inFeatures: hidden, scratch: w.scratch)
        return spans.map { logits.toArray(offset: $0.0 * c.vocabSize, count: $0.1 * c.vocabSize) }
    }

    private func forwardLayers(_ sequences: [SequenceStep], counts: [Int], rows n: Int, workspace w: QuantizedWorkspace) {
        let c = config, hidden = c.hiddenSize, inter = c.intermediateSize, kvWidth = c.kvWidth
        let x = w.x.pointer
        for (index, l) in layers.enumerated() {
            RMSNorm.forward(out: w.norm.pointer, rstd: nil, input: x, weight: l.inputNorm.pointer, rows: n, dim: hidden, eps: c.rmsNormEps)
            QuantizedLinear.forward(jobs: [
                LinearJob(weight: l.q, bias: l.qBias.map { UnsafePointer($0.pointer) }, out: w.q.pointer, outStride: c.qWidth),
                LinearJob(weight: l.k, bias: l.kBias.map { UnsafePointer($0.pointer) }, out: w.k.pointer, outStride: kvWidth),
                LinearJob(weight: l.v, bias: l.vBias.map { UnsafePointer($0.pointer) }, out: w.v.pointer, outStride: kvWidth),
            ], input: w.norm.pointer, vectors: n, inFeatures: hidden, scratch: w.scratch)
            var row = 0, decodeScores = 0
            w.decodeAttention.removeAll(keepingCapacity: true)
            for (s, t) in zip(sequences, counts) {
                let offset = s.cache.length
                let keyRows = s.cache.keys[index].pointer + offset * kvWidth
                let valueRows = s.cache.values[index].pointer + offset * kvWidth
                keyRows.update(from: w.k.pointer + row * kvWidth, count: t * kvWidth)
                valueRows.update(from: w.v.pointer + row * kvWidth, count: t * kvWidth)
                let q = w.q.pointer + row * c.qWidth
                RoPE.forward(q, table: rotary, tokens: t, heads: c.numAttentionHeads, positionOffset: offset)
                RoPE.forward(keyRows, table: rotary, tokens: t, heads: c.numKeyValueHeads, positionOffset: offset)
                if t >= SequenceAttention.gemmThreshold {
                    SequenceAttention.forward(out: w.attention.pointer + row * c.qWidth, scores: w.scores.pointer, q: q,
                                              keys: s.cache.keys[index].pointer, values: s.cache.values[index].pointer,
                                              tokens: t, offset: offset, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim)
                } else {
                    w.decodeAttention.append(.init(out: w.attention.pointer + row * c.qWidth, q: q, keys: s.cache.keys[index].pointer,
                                                   values: s.cache.values[index].pointer, tokens: t, offset: offset, scores: decodeScores))
                    decodeScores += c.numAttentionHeads * t * (offset + t)
                }
                row += t
            }
            if !w.decodeAttention.isEmpty {
                SequenceAttention.decode(w.decodeAttention, scores: w.scores.pointer, heads: c.numAttentionHeads,
                                         kvHeads: c.numKeyValueHeads, headDim: c.headDim)
            }
            QuantizedLinear.forward(jobs: [LinearJob(weight: l.o, bias: l.oBias.map { UnsafePointer($0.pointer) }, out: w.projection.pointer, outStride: hidden)],
                                    input: w.attention.pointer, vectors: n, inFeatures: c.qWidth, scratch: w.scratch)
            Residual.forward(out: x, a: x, b: w.projection.pointer, count: n * hidden)
            RMSNorm.forward(out: w.norm.pointer, rstd: nil, input: x, weight: l.postNorm.pointer, rows: n, dim: hidden, eps: c.rmsNormEps)
            QuantizedLinear.forward(jobs: [
                LinearJob(weight: l.gate, bias: l.gateBias.map { UnsafePointer($0.pointer) }, out: w.gate.pointer, outStride: inter),
                LinearJob(weight: l.up, bias: l.upBias.map { UnsafePointer($0.pointer) }, out: w.up.pointer, outStride: inter),
            ], input: w.norm.pointer, vectors: n, inFeatures: hidden, scratch: w.scratch)
            QuantizedLinear.forwardSwiGLU(jobs: [LinearJob(weight: l.down, bias: l.downBias.map { UnsafePointer($0.pointer) }, out: w.projection.pointer, outStride: hidden)],
                                          gate: w.gate.pointer, up: w.up.pointer, vectors: n, inFeatures: inter, scratch: w.scratch)
            Residual.forward(out: x, a: x, b: w.projection.pointer, count: n * hidden)
        }
    }

    /// Greedy continuation (as `LlamaModel.greedy`): prefill, then argmax steps until `maxTokens`
    /// or a `stop` id (included).
    public func greedy(prompt: [Int], maxTokens: Int, stop: Set<Int> = [], cache: KVCache? = nil) throws -> [Int] {
        let cache = cache ?? makeCache(capacity: max(1, prompt.count + maxTokens))
        return try LlamaModel.greedy(prompt: prompt, maxTokens: maxTokens, stop: stop, cache: cache) { try decode(tokens: $0, cache: $1) }
    }
}

/// Per-step buffers, grown on demand.
final class QuantizedWorkspace {
    private(set) var rows = 0
    private(set) var scoreCount = 0
    var x = FloatBuffer(count: 0), norm = FloatBuffer(count: 0), q = FloatBuffer(count: 0)
    var k = FloatBuffer(count: 0), v = FloatBuffer(count: 0), attention = FloatBuffer(count: 0)
    var projection = FloatBuffer(count: 0), gate = FloatBuffer(count: 0), up = FloatBuffer(count: 0)
    var scores = FloatBuffer(count: 0)
    private var logitRows = FloatBuffer(count: 0)
    var decodeAttention: [SequenceAttention.DecodeAttention] = []
    let scratch = LinearScratch()

    /// The step's logits `[rows, V]`, grown on demand (a fresh zeroed 1.5 MB buffer per batched
    /// step was measurable next to an 8-sequence decode step).
    func logits(_ count: Int) -> FloatBuffer {
        if logitRows.count < count { logitRows = FloatBuffer(count: count) }
        return logitRows
    }

    func prepare(config c: LlamaConfig, rows t: Int, scores needed: Int) -> QuantizedWorkspace {
        if t > rows {
            rows = t
            x = FloatBuffer(count: t * c.hiddenSize)
            norm = FloatBuffer(count: t * c.hiddenSize)
            q = FloatBuffer(count: t * c.qWidth)
            k = FloatBuffer(count: t * c.kvWidth)
            v = FloatBuffer(count: t * c.kvWidth)
            attention = FloatBuffer(count: t * c.qWidth)
            projection = FloatBuffer(count: t * c.hiddenSize)
            gate = FloatBuffer(count: t * c.intermediateSize)
            up = FloatBuffer(count: t * c.intermediateSize)
        }
        if needed > scoreCount {
            scoreCount = needed
            scores = FloatBuffer(count: needed)
        }
        return self
    }
}
