import Foundation
import XCTest
import ForgeCore
import TensorMath

/// The training kernels against naive Float64 references: block-causal attention (several query
/// blocks, GQA), the fused in-place cross-entropy row, and the LoRA term.
final class KernelTests: XCTestCase {
    var random = SeededRandom(seed: 11)
    func uniform() -> Float { Float(random.next() % 2_000_001) / 1_000_000 - 1 }
    func buffer(_ count: Int, scale: Float = 1) -> FloatBuffer {
        let b = FloatBuffer(count: count)
        for i in 0..<count { b.pointer[i] = uniform() * scale }
        return b
    }

    func assertClose(_ a: UnsafePointer<Float>, _ b: [Double], tolerance: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        var worst = 0.0, scale = 0.0
        for i in 0..<b.count { worst = max(worst, abs(Double(a[i]) - b[i])); scale = max(scale, abs(b[i])) }
        XCTAssertLessThanOrEqual(worst, tolerance * max(scale, 1e-30), "\(what): max |Δ| \(worst) (max |ref| \(scale))", file: file, line: line)
    }

    /// Float64 attention of one sequence (`shape.tokens` rows from the given pointers): out, probs
    /// (at `shape.probsIndex`), and d(Σ out·dout) w.r.t. q, k, v added onto dq0, dk0, dv0.
    struct AttentionReference { var out, probs, dq, dk, dv: [Double] }

    func attentionReference(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                            shape: Attention.Shape, scale: Float, dq0: [Double]? = nil, dk0: [Double]? = nil, dv0: [Double]? = nil) -> AttentionReference {
        let t = shape.tokens, heads = shape.heads, kvHeads = shape.kvHeads, d = shape.headDim, qw = heads * d, kw = kvHeads * d
        var r = AttentionReference(out: [Double](repeating: 0, count: t * qw), probs: [Double](repeating: 0, count: heads * t * t),
                                   dq: dq0 ?? [Double](repeating: 0, count: t * qw), dk: dk0 ?? [Double](repeating: 0, count: t * kw),
                                   dv: dv0 ?? [Double](repeating: 0, count: t * kw))
        for h in 0..<heads {
            let g = h / (heads / kvHeads)
            for i in 0..<t {
                let keys = shape.causal ? i + 1 : t
                var s = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    for x in 0..<d { s[j] += Double(q[i * qw + h * d + x]) * Double(k[j * kw + g * d + x]) }
                    s[j] *= Double(scale)
                }
                let m = s.max()!, e = s.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                let p = e.map { $0 / sum }
                for j in 0..<keys { r.probs[shape.probsIndex(head: h, row: i, key: j, length: t)] = p[j] }
                for x in 0..<d {
                    var acc = 0.0
                    for j in 0..<keys { acc += p[j] * Double(v[j * kw + g * d + x]) }
                    r.out[i * qw + h * d + x] = acc
                }
                // backward of row i
                var dp = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    for x in 0..<d {
                        let dy = Double(dout[i * qw + h * d + x])
                        dp[j] += dy * Double(v[j * kw + g * d + x])
                        r.dv[j * kw + g * d + x] += p[j] * dy
                    }
                }
                let dot = (0..<keys).reduce(0.0) { $0 + dp[$1] * p[$1] }
                for j in 0..<keys {
                    let ds = p[j] * (dp[j] - dot) * Double(scale)
                    for x in 0..<d {
                        r.dq[i * qw + h * d + x] += ds * Double(k[j * kw + g * d + x])
                        r.dk[j * kw + g * d + x] += ds * Double(q[i * qw + h * d + x])
                    }
                }
            }
        }
        return r
    }

    /// Several causal query blocks (128 rows each: T = 300 → 3 blocks, the last short; 257 → a
    /// 1-row last block; 256 → exact), plain and grouped heads (groups of 1, 2 and 3 query heads
    /// stacked over one kv head), against Float64; backward accumulates onto nonzero gradients.
    ///
    /// Head dims that are multiples of 16 run on the AVX-512 block kernels where the CPU has them
    /// (AttentionBlocks.c), so every case runs both ways: the kernels and the sgemm path.
    func testBlockCausalAttentionMatchesNaiveForwardAndBackward() {
        let cases: [(causal: Bool, t: Int, heads: Int, kvHeads: Int, d: Int)] = [
            (true, 300, 4, 2, 8), (false, 70, 4, 2, 8), (true, 300, 6, 2, 8), (true, 257, 4, 2, 16),
            (true, 256, 3, 1, 8), (true, 130, 3, 3, 8), (false, 150, 6, 2, 8),
            (true, 200, 6, 2, 64), (false, 197, 2, 2, 64), (true, 131, 2, 1, 32), (false, 21, 3, 1, 48),
        ]
        if CPUFeatures.current().hasAVX512 { XCTAssertTrue(Attention.usesBlockKernels(headDim: 64), "AVX-512 CPU, D = 64") }
        XCTAssertFalse(Attention.usesBlockKernels(headDim: 8))
        defer { Attention.blockKernelsEnabled = true }
        for blockKernels in [true, false] {
        Attention.blockKernelsEnabled = blockKernels
        for c in cases {
            let shape = Attention.Shape(tokens: c.t, heads: c.heads, kvHeads: c.kvHeads, headDim: c.d, causal: c.causal)
            let t = c.t, qw = c.heads * c.d, kw = c.kvHeads * c.d, scale: Float = 0.7
            let what = "causal \(c.causal) T=\(t) heads \(c.heads)/\(c.kvHeads) D=\(c.d) kernels \(Attention.usesBlockKernels(headDim: c.d))"
            let q = buffer(t * qw), k = buffer(t * kw), v = buffer(t * kw), dout = buffer(t * qw)
            let out = FloatBuffer(count: t * qw), probs = FloatBuffer(count: shape.probsCount)
            probs.fill(.nan)  // every entry must be written (masked ones as 0)
            Attention.forward(out: out.pointer, probs: probs.pointer, q: q.pointer, k: k.pointer, v: v.pointer, shape: shape, scale: scale)
            let dq = buffer(t * qw), dk = buffer(t * kw), dv = buffer(t * kw)  // backward accumulates onto these
            let dq0 = dq.toArray().map(Double.init), dk0 = dk.toArray().map(Double.init), dv0 = dv.toArray().map(Double.init)
            Attention.backward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: dout.pointer, probs: probs.pointer,
                               q: q.pointer, k: k.pointer, v: v.pointer, shape: shape, scale: scale)
            let ref = attentionReference(q: q.pointer, k: k.pointer, v: v.pointer, dout: dout.pointer, shape: shape, scale: scale,
                                         dq0: dq0, dk0: dk0, dv0: dv0)
            assertClose(out.pointer, ref.out, tolerance: 1e-5, "out (\(what))")
            assertClose(probs.pointer, ref.probs, tolerance: 1e-5, "probs (\(what))")
            assertClose(dq.pointer, ref.dq, tolerance: 1e-5, "dq (\(what))")
            assertClose(dk.pointer, ref.dk, tolerance: 1e-5, "dk (\(what))")
            assertClose(dv.pointer, ref.dv, tolerance: 1e-5, "dv (\(what))")
        }
        }
    }

    /// Packed sequences (one pass over every segment's groups) give what each sequence gives alone
    /// and what Float64 gives, and `accumulate: false` writes the gradients without reading them
    /// (NaN-filled buffers) — for single-head groups and groups of 2 and 3 stacked heads.
    func testPackedAttentionMatchesPerSequenceAndOverwritesGradients() {
        defer { Attention.blockKernelsEnabled = true }
        for (heads, kvHeads, d, blockKernels) in [(4, 2, 8, false), (6, 2, 8, false), (4, 4, 8, false), (6, 2, 16, true), (4, 4, 16, true), (6, 2, 16, false)] {
            Attention.blockKernelsEnabled = blockKernels
            let segments = [300, 70, 129], t = segments.reduce(0, +)
            let qw = heads * d, kw = kvHeads * d, scale: Float = 0.6
            let q = buffer(t * qw), k = buffer(t * kw), v = buffer(t * kw), dout = buffer(t * qw)
            let shape = Attention.Shape(tokens: t, heads: heads, kvHeads: kvHeads, headDim: d, causal: true)
            let probsCount = Attention.probsCount(heads: heads, segments: segments)
            let out = FloatBuffer(count: t * qw), probs = FloatBuffer(count: probsCount)
            probs.fill(.nan)
            Attention.forward(out: out.pointer, probs: probs.pointer, q: q.pointer, k: k.pointer, v: v.pointer, segments: segments, shape: shape, scale: scale)
            let dq = FloatBuffer(count: t * qw), dk = FloatBuffer(count: t * kw), dv = FloatBuffer(count: t * kw)
            for b in [dq, dk, dv] { b.fill(.nan) }
            Attention.backward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: dout.pointer, probs: probs.pointer,
                               q: q.pointer, k: k.pointer, v: v.pointer, segments: segments, shape: shape, scale: scale, accumulate: false)
            var start = 0, probsOffset = 0
            for n in segments {
                let what = "segment of \(n), heads \(heads)/\(kvHeads), D \(d), kernels \(Attention.usesBlockKernels(headDim: d))"
                let one = Attention.Shape(tokens: n, heads: heads, kvHeads: kvHeads, headDim: d, causal: true)
                let soloOut = FloatBuffer(count: n * qw), soloProbs = FloatBuffer(count: one.probsCount)
                Attention.forward(out: soloOut.pointer, probs: soloProbs.pointer, q: q.pointer + start * qw, k: k.pointer + start * kw,
                                  v: v.pointer + start * kw, shape: one, scale: scale)
                let soloDq = FloatBuffer(count: n * qw), soloDk = FloatBuffer(count: n * kw), soloDv = FloatBuffer(count: n * kw)
                Attention.backward(dq: soloDq.pointer, dk: soloDk.pointer, dv: soloDv.pointer, dout: dout.pointer + start * qw, probs: soloProbs.pointer,
                                   q: q.pointer + start * qw, k: k.pointer + start * kw, v: v.pointer + start * kw, shape: one, scale: scale)
                assertClose(out.pointer + start * qw, soloOut.toArray().map(Double.init), tolerance: 1e-6, "out, \(what)")
                assertClose(probs.pointer + probsOffset, soloProbs.toArray().map(Double.init), tolerance: 1e-6, "probs, \(what)")
                assertClose(dq.pointer + start * qw, soloDq.toArray().map(Double.init), tolerance: 1e-6, "dq, \(what)")
                assertClose(dk.pointer + start * kw, soloDk.toArray().map(Double.init), tolerance: 1e-6, "dk, \(what)")
                assertClose(dv.pointer + start * kw, soloDv.toArray().map(Double.init), tolerance: 1e-6, "dv, \(what)")
                let ref = attentionReference(q: q.pointer + start * qw, k: k.pointer + start * kw, v: v.pointer + start * kw,
                                             dout: dout.pointer + start * qw, shape: one, scale: scale)
                assertClose(out.pointer + start * qw, ref.out, tolerance: 1e-5, "out vs Float64, \(what)")
                assertClose(probs.pointer + probsOffset, ref.probs, tolerance: 1e-5, "probs vs Float64, \(what)")
                assertClose(dq.pointer + start * qw, ref.dq, tolerance: 1e-5, "dq vs Float64, \(what)")
                assertClose(dk.pointer + start * kw, ref.dk, tolerance: 1e-5, "dk vs Float64, \(what)")
                assertClose(dv.pointer + start * kw, ref.dv, tolerance: 1e-5, "dv vs Float64, \(what)")
                start += n
                probsOffset += heads * n * n
            }
        }
    }

    /// The `accumulate: false` forms of the element-wise backwards equal accumulating onto zeros,
    /// without reading the destination; RMSNorm's row-parallel d(weight) still adds onto its buffer.
    func testOverwritingBackwardsEqualAccumulatingOntoZeros() {
        let rows = 67, dim = 20, count = rows * dim
        let x = buffer(count), dy = buffer(count), weight = buffer(dim), rstd = FloatBuffer(count: rows), norm = FloatBuffer(count: count)
        RMSNorm.forward(out: norm.pointer, rstd: rstd.pointer, input: x.pointer, weight: weight.pointer, rows: rows, dim: dim, eps: 1e-5)
        let dxAdded = FloatBuffer(count: count), dxWritten = FloatBuffer(count: count)
        dxWritten.fill(.nan)
        let dw = buffer(dim), dw0 = dw.toArray().map(Double.init), dwSerial = FloatBuffer(count: dim)
        RMSNorm.backward(dinput: dxAdded.pointer, dweight: nil, dout: dy.pointer, input: x.pointer, weight: weight.pointer,
                         rstd: rstd.pointer, rows: rows, dim: dim)
        RMSNorm.backward(dinput: dxWritten.pointer, dweight: dw.pointer, dout: dy.pointer, input: x.pointer, weight: weight.pointer,
                         rstd: rstd.pointer, rows: rows, dim: dim, accumulate: false)
        assertClose(dxWritten.pointer, dxAdded.toArray().map(Double.init), tolerance: 1e-7, "rmsnorm dinput")
        // d(weight)[i] = Σ_rows dy · x · rstd, added onto the old values.
        for i in 0..<dim {
            var sum = 0.0
            for r in 0..<rows { sum += Double(dy.pointer[r * dim + i]) * Double(x.pointer[r * dim + i]) * Double(rstd.pointer[r]) }
            dwSerial.pointer[i] = Float(dw0[i] + sum)
        }
        assertClose(dw.pointer, dwSerial.toArray().map(Double.init), tolerance: 1e-5, "rmsnorm dweight")

        let gate = buffer(count), up = buffer(count), dgated = buffer(count)
        let dgAdded = FloatBuffer(count: count), duAdded = FloatBuffer(count: count), dgWritten = FloatBuffer(count: count), duWritten = FloatBuffer(count: count)
        dgWritten.fill(.nan)
        duWritten.fill(.nan)
        SwiGLU.backward(dgate: dgAdded.pointer, dup: duAdded.pointer, dout: dgated.pointer, gate: gate.pointer, up: up.pointer, count: count)
        SwiGLU.backward(dgate: dgWritten.pointer, dup: duWritten.pointer, dout: dgated.pointer, gate: gate.pointer, up: up.pointer, count: count,
                        accumulate: false)
        assertClose(dgWritten.pointer, dgAdded.toArray().map(Double.init), tolerance: 0, "swiglu dgate")
        assertClose(duWritten.pointer, duAdded.toArray().map(Double.init), tolerance: 0, "swiglu dup")

        let outFeatures = 9, w = buffer(outFeatures * dim), dout = buffer(rows * outFeatures)
        let dinAdded = FloatBuffer(count: count), dinWritten = FloatBuffer(count: count)
        dinWritten.fill(.nan)
        Linear.backward(dinput: dinAdded.pointer, dweight: nil, dbias: nil, dout: dout.pointer, input: x.pointer, weight: w.pointer,
                        rows: rows, inFeatures: dim, outFeatures: outFeatures)
        Linear.backward(dinput: dinWritten.pointer, dweight: nil, dbias: nil, dout: dout.pointer, input: x.pointer, weight: w.pointer,
                        rows: rows, inFeatures: dim, outFeatures: outFeatures, accumulateInput: false)
        assertClose(dinWritten.pointer, dinAdded.toArray().map(Double.init), tolerance: 1e-7, "linear dinput")
    }

    func testFusedCrossEntropyRowMatchesNaive() {
        for count in [1, 15, 16, 17, 1000, 49_152] {
            let z = buffer(count, scale: 8)
            let original = z.toArray().map(Double.init)
            let target = count / 3, lossScale: Float = 0.25
            let loss = CrossEntropy.fusedRowInPlace(z.pointer, count: count, target: target, scale: lossScale)
            let m = original.max()!, sum = original.reduce(0.0) { $0 + Foundation.exp($1 - m) }
            XCTAssertEqual(loss, m + Foundation.log(sum) - original[target], accuracy: 1e-5, "loss, \(count) logits")
            let expected = original.enumerated().map { Double(lossScale) * (Foundation.exp($0.element - m) / sum - ($0.offset == target ? 1 : 0)) }
            assertClose(z.pointer, expected, tolerance: 1e-5, "dlogits, \(count) logits")
        }
    }

    func testLoRATermMatchesNaive() {
        let rows = 5, input = 7, output = 6, rank = 3, scaling: Float = 1.5
        let x = buffer(rows * input), a = buffer(rank * input), b = buffer(output * rank), dout = buffer(rows * output)
        let out = buffer(rows * output), dinput = buffer(rows * input), da = buffer(rank * input), db = buffer(output * rank)
        let out0 = out.toArray().map(Double.init), dinput0 = dinput.toArray().map(Double.init)
        let da0 = da.toArray().map(Double.init), db0 = db.toArray().map(Double.init)
        LoRA.forward(out: out.pointer, input: x.pointer, a: a.pointer, b: b.pointer, rows: rows, inFeatures: input, outFeatures: output,
                     rank: rank, scaling: scaling)
        LoRA.backward(dinput: dinput.pointer, da: da.pointer, db: db.pointer, dout: dout.pointer, input: x.pointer, a: a.pointer, b: b.pointer,
                      rows: rows, inFeatures: input, outFeatures: output, rank: rank, scaling: scaling)
        func X(_ r: Int, _ i: Int) -> Double { Double(x.pointer[r * input + i]) }
        func A(_ j: Int, _ i: Int) -> Double { Double(a.pointer[j * input + i]) }
        func B(_ o: Int, _ j: Int) -> Double { Double(b.pointer[o * rank + j]) }
        func D(_ r: Int, _ o: Int) -> Double { Double(dout.pointer[r * output + o]) }
        let s = Double(scaling)
        var refOut = out0, refDinput = dinput0, refDa = da0, refDb = db0
        for r in 0..<rows {
            let h = (0..<rank).map { j in (0..<input).reduce(0.0) { $0 + X(r, $1) * A(j, $1) } }
            let dh = (0..<rank).map { j in s * (0..<output).reduce(0.0) { $0 + D(r, $1) * B($1, j) } }
            for o in 0..<output { refOut[r * output + o] += s * (0..<rank).reduce(0.0) { $0 + h[$1] * B(o, $1) } }
            for o in 0..<output { for j in 0..<rank { refDb[o * rank + j] += s * D(r, o) * h[j] } }
            for j in 0..<rank { for i in 0..<input { refDa[j * input + i] += dh[j] * X(r, i) } }
            for i in 0..<input { refDinput[r * input + i] += (0..<rank).reduce(0.0) { $0 + dh[$1] * A($1, i) } }
        }
        assertClose(out.pointer, refOut, tolerance: 1e-6, "out")
        assertClose(dinput.pointer, refDinput, tolerance: 1e-6, "dinput")
        assertClose(da.pointer, refDa, tolerance: 1e-6, "dA")
        assertClose(db.pointer, refDb, tolerance: 1e-6, "dB")

        // Merge: W + s·B·A applied to x equals x·Wᵀ + the LoRA term.
        let w = buffer(output * input)
        let direct = (0..<(rows * output)).map { idx -> Double in
            let r = idx / output, o = idx % output
            return (0..<input).reduce(0.0) { $0 + X(r, $1) * Double(w.pointer[o * input + $1]) } + refOut[idx] - out0[idx]
        }
        LoRA.merge(weight: w.pointer, a: a.pointer, b: b.pointer, inFeatures: input, outFeatures: output, rank: rank, scaling: scaling)
        let merged = FloatBuffer(count: rows * output)
        Linear.forward(out: merged.pointer, input: x.pointer, weight: w.pointer, bias: nil, rows: rows, inFeatures: input, outFeatures: output)
        assertClose(merged.pointer, direct, tolerance: 1e-6, "merged weight")
    }
}
