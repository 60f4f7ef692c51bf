import CInferenceKernels
import CTrainingKernels
import Foundation
import TensorMath

/// Causal attention of one sequence's T new queries (positions `offset..<offset+T`) over its cached
/// keys/values `0..<offset+T` (new rows already written, keys after RoPE).
/// q `[T, heads·D]` (row stride `qStride`), cache rows `[kvHeads·D]`, out `[T, heads·D]`.
/// Same arithmetic as Models' cached attention (scores scaled by 1/√D, max-subtracted softmax with
/// the sum in Double), with SIMD dot products for the few-query (decode) case.
enum SequenceAttention {
    /// From this many new queries on, the scores go through GEMM (as in Models).
    static let gemmThreshold = 8

    /// Prefill attention works on blocks of this many queries of one head: each block's scores
    /// (sgemm), softmax and weighted values (sgemm) only over the keys up to its last query, so
    /// neither the masked upper triangle of a fresh prompt is computed nor, for a continuation
    /// after a cached prefix, anything but its own rows against the whole context.
    nonisolated(unsafe) static var prefillQueryRows = 64
    /// At most this many pool chunks per prefill attention call, each with its own score slot.
    static let prefillSlots = 16

    static func prefillChunks(tokens t: Int, heads: Int) -> Int {
        min(prefillSlots, heads * ((t + prefillQueryRows - 1) / prefillQueryRows))
    }

    /// Floats of score scratch `forward` needs (for the block kernels, the transposed keys too).
    static func scratchCount(tokens t: Int, context: Int, heads: Int, kvHeads: Int, headDim d: Int) -> Int {
        guard t >= gemmThreshold else { return heads * t * context }
        let slots = prefillChunks(tokens: t, heads: heads) * min(t, prefillQueryRows) * context
        return slots + (Attention.usesBlockKernels(headDim: d) ? kvHeads * d * transposedStride(context) : 0)
    }

    static func transposedStride(_ context: Int) -> Int { (context + 15) / 16 * 16 }

    static func forward(
        out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        tokens t: Int, offset: Int, heads: Int, kvHeads: Int, headDim d: Int
    ) {
        let context = offset + t
        let qWidth = heads * d, kvWidth = kvHeads * d, group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        if t >= gemmThreshold {
            // Items (head, query block), head-major so a chunk's items share that head's keys and
            // values in cache; every chunk runs its items' sgemms single-threaded on our pool with
            // its own score slot. OpenBLAS's own threads stay asleep: handing each head's products
            // to them and back (its idle threads spin in sched_yield) cost more than it saved at
            // these sizes, most of all for a short continuation after a long cached prefix.
            let blockRows = prefillQueryRows, blocks = (t + blockRows - 1) / blockRows
            let items = heads * blocks, chunks = prefillChunks(tokens: t, heads: heads)
            let slotFloats = min(t, blockRows) * context
            if Attention.usesBlockKernels(headDim: d) {
                // The training attention's AVX-512 block kernels (CTrainingKernels): scores,
                // softmax and values of a block in one call over each KV head's keys transposed
                // once here, the causal mask skipped per 6-row tile; no BLAS at all.
                let ld = transposedStride(context), keysT = scores + chunks * slotFloats
                WorkerPool.run(kvHeads) { g in lf_attention_transpose(keys + g * d, kvWidth, context, d, keysT + g * d * ld, ld) }
                WorkerPool.run(chunks) { chunk in
                    let slot = scores + chunk * slotFloats
                    for item in (chunk * items / chunks)..<((chunk + 1) * items / chunks) {
                        let h = item / blocks, g = h / group, first = (item % blocks) * blockRows
                        let rows = min(blockRows, t - first), span = offset + first + rows
                        var block = lf_attention_block(rows: rows, keys: span, head_dim: d, group: 1, first_token: offset + first,
                                                       causal: 1, scale: scale)
                        lf_attention_block_forward(&block, q + first * qWidth + h * d, qWidth, keysT + g * d * ld, ld,
                                                   values + g * d, kvWidth, slot, span, span, out + first * qWidth + h * d, qWidth)
                    }
                }
                return
            }
            BLASRuntime.withSingleThreadedBLAS {
                WorkerPool.run(chunks) { chunk in
                    let slot = scores + chunk * slotFloats
                    for item in (chunk * items / chunks)..<((chunk + 1) * items / chunks) {
                        let h = item / blocks, g = h / group, first = (item % blocks) * blockRows
                        let rows = min(blockRows, t - first), span = offset + first + rows  // keys this block sees
                        BLAS.gemm(.none, .transpose, m: rows, n: span, k: d, alpha: scale,
                                  a: q + first * qWidth + h * d, lda: qWidth, b: keys + g * d, ldb: kvWidth, c: slot, ldc: span)
                        for r in 0..<rows {
                            let row = slot + r * span, valid = offset + first + r + 1
                            softmax(row, count: valid)
                            if valid < span { (row + valid).update(repeating: 0, count: span - valid) }
                        }
                        BLAS.gemm(.none, .none, m: rows, n: d, k: span,
                                  a: slot, lda: span, b: values + g * d, ldb: kvWidth, c: out + first * qWidth + h * d, ldc: qWidth)
                    }
                }
            }
            return
        }
        decode([DecodeAttention(out: out, q: q, keys: keys, values: values, tokens: t, offset: offset, scores: 0)],
               scores: scores, heads: heads, kvHeads: kvHeads, headDim: d)
    }

    /// One sequence's few new queries (decode), for `decode(_:)`; `scores` is its offset into the
    /// shared score scratch (`heads · tokens · (offset + tokens)` floats from there).
    struct DecodeAttention {
        var out: UnsafeMutablePointer<Float>
        var q: UnsafePointer<Float>
        var keys: UnsafePointer<Float>, values: UnsafePointer<Float>
        var tokens: Int, offset: Int
        var scores: Int
    }

    /// Decode attention of several sequences in ONE parallel region on the pool: every (sequence,
    /// KV head, query) item — the query heads of one GQA group, which share that KV head's cache
    /// rows — is independent. Items are grouped into chunks of ≥ ~16k multiply-adds.
    static func decode(_ items: [DecodeAttention], scores: UnsafeMutablePointer<Float>, heads: Int, kvHeads: Int, headDim d: Int) {
        var total = 0, work = 0
        for item in items {
            total += kvHeads * item.tokens
            work += heads * item.tokens * (item.offset + item.tokens) * d
        }
        let chunks = min(total, max(1, work / 16_384))
        let qWidth = heads * d, kvWidth = kvHeads * d, group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        WorkerPool.run(chunks) { chunk in
            var index = chunk * total / chunks
            let end = (chunk + 1) * total / chunks
            // Find the sequence holding flat item `index`.
            var s = 0, first = 0
            while index >= first + kvHeads * items[s].tokens { first += kvHeads * items[s].tokens; s += 1 }
            while index < end {
                let a = items[s], t = a.tokens, context = a.offset + t
                let local = index - first
                let g = local / t, i = local % t, h = g * group
                // Score rows of head h, query i at (h·t + i)·context: the group's rows are t·context apart.
                groupItem(out: a.out + i * qWidth + h * d, scores: scores + a.scores + (h * t + i) * context, scoreStride: t * context,
                          q: a.q + i * qWidth + h * d, heads: group, keys: a.keys + g * d, values: a.values + g * d,
                          valid: a.offset + i + 1, kvWidth: kvWidth, headDim: d, scale: scale)
                index += 1
                if index - first == kvHeads * t, index < end { first = index; s += 1 }
            }
        }
    }

    /// One query of a GQA group's `heads` query heads (side by side in `q` and `out`) over their
    /// `valid` shared cached rows: scores, softmax per head, weighted sum of values (the two
    /// products in C: `lf_attention_scores`, `lf_attention_values`).
    @inline(__always)
    static func groupItem(out o: UnsafeMutablePointer<Float>, scores rows: UnsafeMutablePointer<Float>, scoreStride: Int,
                          q qv: UnsafePointer<Float>, heads: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                          valid: Int, kvWidth: Int, headDim d: Int, scale: Float) {
        lf_attention_scores(qv, heads, d, keys, kvWidth, valid, scale, rows, scoreStride)
        for h in 0..<heads { softmax(rows + h * scoreStride, count: valid) }
        lf_attention_values(rows, scoreStride, heads, valid, values, kvWidth, d, o)
    }

    /// In place, max-subtracted, e^x 16 lanes at a time (`VectorExp`, within 1 ulp; glibc's scalar
    /// expf made prefill softmax a large share of a 512-token prompt), sum in Double per 16 lanes.
    @inline(__always)
    static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
        typealias V = SIMD16<Float>
        let raw = UnsafeMutableRawPointer(row)
        var maxValue = -Float.infinity
        var i = 0
        if count >= 16 {
            var m = V(repeating: -.infinity)
            while i + 16 <= count {
                let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                m.replace(with: v, where: v .> m)
                i += 16
            }
            maxValue = m.max()
        }
        while i < count { maxValue = max(maxValue, row[i]); i += 1 }
        let shift = V(repeating: maxValue)
        var sum = 0.0
        i = 0
        while i + 16 <= count {
            let e = VectorExp.exp(raw.loadUnaligned(fromByteOffset: 4 * i, as: V.self) - shift)
            raw.storeBytes(of: e, toByteOffset: 4 * i, as: V.self)
            sum += Double(e.sum())
            i += 16
        }
        while i < count { let e = VectorExp.exp(row[i] - maxValue); row[i] = e; sum += Double(e); i += 1 }
        let inverse = Float(1 / sum)
        for j in 0..<count { row[j] *= inverse }
    }
}
