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

    /// Prefill scores several heads per parallel softmax pass, up to this many floats of scores
    /// (16 MB): fewer switches between OpenBLAS's threads and ours (its idle threads spin in
    /// sched_yield, which on a loaded machine cost a third of prefill time).
    nonisolated(unsafe) static var prefillScoreFloats = 4_194_304

    static func headsPerPass(tokens t: Int, context: Int, heads: Int) -> Int {
        max(1, min(heads, prefillScoreFloats / max(1, t * context)))
    }

    /// Floats of score scratch `forward` needs.
    static func scratchCount(tokens t: Int, context: Int, heads: Int) -> Int {
        t >= gemmThreshold ? headsPerPass(tokens: t, context: context, heads: heads) * t * context : heads * t * context
    }

    static func forward(
        out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
        tokens t: Int, offset: Int, heads: Int, kvHeads: Int, headDim d: Int
    ) {
        let context = offset + t
        let qWidth = heads * d, kvWidth = kvHeads * d, group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        if t >= gemmThreshold {
            // Per pass of `perPass` heads: their score GEMMs, one parallel softmax over all their
            // rows, their value GEMMs.
            let perPass = headsPerPass(tokens: t, context: context, heads: heads)
            var first = 0
            while first < heads {
                let count = min(perPass, heads - first)
                for j in 0..<count {
                    let h = first + j, g = h / group
                    BLAS.gemm(.none, .transpose, m: t, n: context, k: d, alpha: scale,
                              a: q + h * d, lda: qWidth, b: keys + g * d, ldb: kvWidth, c: scores + j * t * context, ldc: context)
                }
                Parallel.forEachRow(count * t, rowWork: context * 8) { item in
                    let i = item % t
                    let row = scores + item * context
                    let valid = offset + i + 1
                    softmax(row, count: valid)
                    if valid < context { (row + valid).update(repeating: 0, count: context - valid) }
                }
                for j in 0..<count {
                    let h = first + j, g = h / group
                    BLAS.gemm(.none, .none, m: t, n: d, k: context,
                              a: scores + j * t * context, lda: context, b: values + g * d, ldb: kvWidth, c: out + h * d, ldc: qWidth)
                }
                first += count
            }
            return
        }
        let vectorized = d % 16 == 0
        Parallel.forEachRange(heads * t, grain: max(1, 8192 / max(1, context * d))) { range in
            for item in range {
                let h = item / t, i = item % t, g = h / group
                let valid = offset + i + 1
                let row = scores + (h * t + i) * context
                let qv = q + i * qWidth + h * d
                if vectorized {
                    let qRaw = UnsafeRawPointer(qv)
                    for j in 0..<valid {
                        let kRaw = UnsafeRawPointer(keys + j * kvWidth + g * d)
                        var acc = SIMD16<Float>()
                        var e = 0
                        while e < d {
                            acc.addProduct(qRaw.loadUnaligned(fromByteOffset: e * 4, as: SIMD16<Float>.self),
                                           kRaw.loadUnaligned(fromByteOffset: e * 4, as: SIMD16<Float>.self))
                            e += 16
                        }
                        row[j] = acc.sum() * scale
                    }
                } else {
                    for j in 0..<valid {
                        let kv = keys + j * kvWidth + g * d
                        var dot: Float = 0
                        for e in 0..<d { dot += qv[e] * kv[e] }
                        row[j] = dot * scale
                    }
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
