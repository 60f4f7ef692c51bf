import Foundation
import TensorMath

/// Preallocated keys and values of every layer for one sequence: `[capacity, kvHeads·D]` per layer,
/// keys stored after RoPE. `length` tokens are valid; the next call writes at position `length`.
/// The layout (one contiguous row per position) lets a prefix cache copy or share leading rows.
public final class KVCache {
    public let capacity: Int
    public let layerCount: Int
    public let kvWidth: Int
    public let keys: [FloatBuffer]
    public let values: [FloatBuffer]
    public private(set) var length = 0
    /// Scratch for the step being computed, grown on demand (see `LlamaModel.decode`).
    var workspace: DecodeWorkspace?

    public init(config: LlamaConfig, capacity: Int) {
        precondition(capacity > 0, "KVCache: capacity must be positive")
        self.capacity = capacity
        layerCount = config.numHiddenLayers
        kvWidth = config.kvWidth
        keys = (0..<layerCount).map { _ in FloatBuffer(count: capacity * config.kvWidth) }
        values = (0..<layerCount).map { _ in FloatBuffer(count: capacity * config.kvWidth) }
    }

    /// Forget everything (buffers are reused).
    public func reset() { length = 0 }

    /// Keep only the first `newLength` positions (e.g. to re-decode from a shared prefix).
    public func truncate(to newLength: Int) {
        precondition(newLength >= 0 && newLength <= length, "KVCache: cannot truncate \(length) to \(newLength)")
        length = newLength
    }

    /// Replace this cache's contents by the first `count` positions of `other` (a shared prompt
    /// prefix, e.g. from a prefix cache), so decoding continues at position `count`.
    public func copyPrefix(from other: KVCache, count: Int) {
        precondition(other.layerCount == layerCount && other.kvWidth == kvWidth, "KVCache: copy between caches of different models")
        precondition(count >= 0 && count <= other.length && count <= capacity, "KVCache: cannot copy \(count) of \(other.length) positions into \(capacity)")
        for layer in 0..<layerCount {
            keys[layer].copy(from: other.keys[layer].pointer, count: count * kvWidth)
            values[layer].copy(from: other.values[layer].pointer, count: count * kvWidth)
        }
        length = count
    }

    /// Marks `count` more positions valid (after a kernel outside Models wrote their rows).
    public func advance(by count: Int) {
        precondition(count >= 0 && length + count <= capacity, "KVCache: cannot advance \(length) by \(count) past \(capacity)")
        length += count
    }
}

/// Per-step buffers of the cached path, sized for `tokens` new positions against `context` keys.
final class DecodeWorkspace {
    let tokens: Int
    let context: Int
    let x: FloatBuffer, norm: FloatBuffer, q: FloatBuffer, k: FloatBuffer, v: FloatBuffer
    let attention: FloatBuffer, projection: FloatBuffer, gate: FloatBuffer, up: FloatBuffer
    let scores: FloatBuffer

    init(config c: LlamaConfig, tokens t: Int, context: Int) {
        tokens = t
        self.context = context
        x = FloatBuffer(count: t * c.hiddenSize)
        norm = FloatBuffer(count: t * c.hiddenSize)
        q = FloatBuffer(count: t * c.qWidth)
        k = FloatBuffer(count: t * c.kvWidth)
        v = FloatBuffer(count: t * c.kvWidth)
        attention = FloatBuffer(count: t * c.qWidth)
        projection = FloatBuffer(count: t * c.hiddenSize)
        gate = FloatBuffer(count: t * c.intermediateSize)
        up = FloatBuffer(count: t * c.intermediateSize)
        // Prefill (≥ 8 queries) scores one head at a time; decode scores every head at once.
        scores = FloatBuffer(count: max(t, c.numAttentionHeads * min(t, CachedAttention.gemmThreshold - 1)) * context)
    }
}

/// Causal attention of T new queries (at positions `offset..<offset+T`) over the cached keys and
/// values `0..<offset+T` (the new ones already written). Same layouts as `Attention` in TensorMath:
/// q `[T, heads·D]`, cache rows `[kvHeads·D]`, out `[T, heads·D]`.
enum CachedAttention {
    /// From this many new queries on, the scores go through GEMM.
    static let gemmThreshold = 8

    static func forward(
        out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        tokens t: Int, offset: Int, heads: Int, kvHeads: Int, headDim d: Int
    ) {
        let context = offset + t
        let qWidth = heads * d, kvWidth = kvHeads * d, group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        if t >= gemmThreshold {
            // Prefill: two GEMMs per head.
            for h in 0..<heads {
                let g = h / group
                let s = scores
                BLAS.gemm(.none, .transpose, m: t, n: context, k: d, alpha: scale,
                          a: q + h * d, lda: qWidth, b: keys + g * d, ldb: kvWidth, c: s, ldc: context)
                Parallel.forEachRow(t, rowWork: context * 8) { i in
                    let row = s + i * context
                    let valid = offset + i + 1
                    softmax(row, count: valid)
                    if valid < context { (row + valid).update(repeating: 0, count: context - valid) }
                }
                BLAS.gemm(.none, .none, m: t, n: d, k: context,
                          a: s, lda: context, b: values + g * d, ldb: kvWidth, c: out + h * d, ldc: qWidth)
            }
            return
        }
        // Decode (few queries): dot products, heads split over the cores.
        Parallel.forEachRange(heads * t, grain: max(1, 4096 / max(1, context * d))) { range in
            for item in range {
                let h = item / t, i = item % t, g = h / group
                let valid = offset + i + 1
                let row = scores + (h * t + i) * context
                let qv = q + i * qWidth + h * d
                for j in 0..<valid {
                    let kv = keys + j * kvWidth + g * d
                    var dot: Float = 0
                    for e in 0..<d { dot += qv[e] * kv[e] }
                    row[j] = dot * scale
                }
                softmax(row, count: valid)
                let o = out + i * qWidth + h * d
                o.update(repeating: 0, count: d)
                for j in 0..<valid {
                    let p = row[j], vv = values + j * kvWidth + g * d
                    for e in 0..<d { o[e] += p * vv[e] }
                }
            }
        }
    }

    /// In place, max-subtracted, sum in Double (as TensorMath's Softmax).
    @inline(__always)
    static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, row[i]) }
        var sum = 0.0
        for i in 0..<count { let e = expf(row[i] - maxValue); row[i] = e; sum += Double(e) }
        let inverse = Float(1 / sum)
        for i in 0..<count { row[i] *= inverse }
    }
}
