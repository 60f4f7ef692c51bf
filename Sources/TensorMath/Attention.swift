/// Scaled dot-product attention with grouped-query heads.
///
/// Layouts (row-major): q `[T, heads·D]`, k and v `[T, kvHeads·D]`, out `[T, heads·D]`;
/// query head h reads key/value head h / (heads / kvHeads), as transformers' `repeat_kv`.
/// probs `[heads, T, T]` holds softmax(scale·q·kᵀ + mask) — kept because backward needs it.
///
/// Heads run in parallel on our own workers, each head's products as single-threaded sgemms
/// (`BLASRuntime.withSingleThreadedBLAS`): one fork/join per call instead of one per small
/// product. Measured why: per-head products of 128–512 × 64 split over OpenBLAS's two threads
/// cost a thread hand-off each, which on a loaded machine took longer than the arithmetic
/// (0.3–1 GFLOP/s; bench/train_bench.sh PROFILE=1). Causal attention is computed in query
/// blocks of `causalBlockRows`: block [r0, r1) only scores keys 0..<r1, skipping most of the
/// masked upper triangle.
public enum Attention {
    public struct Shape: Sendable {
        public var tokens: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        /// Causal (decoder) masking: token i attends to 0...i. False for the vision encoder.
        public var causal: Bool

        public init(tokens: Int, heads: Int, kvHeads: Int, headDim: Int, causal: Bool) {
            precondition(heads % kvHeads == 0, "Attention: \(heads) heads not a multiple of \(kvHeads) kv heads")
            self.tokens = tokens
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
            self.causal = causal
        }

        var qWidth: Int { heads * headDim }
        var kvWidth: Int { kvHeads * headDim }
        func kvHead(of head: Int) -> Int { head / (heads / kvHeads) }
        public var probsCount: Int { heads * tokens * tokens }
    }

    /// Query rows per block in causal attention ((n+1)/2n of the full products for n blocks).
    public static let causalBlockRows = 128

    /// `body(r0, r1, keys)` for each query block: rows r0..<r1 attend to keys 0..<keys.
    @inline(__always)
    static func forEachQueryBlock(_ shape: Shape, _ body: (Int, Int, Int) -> Void) {
        let t = shape.tokens
        let block = shape.causal ? causalBlockRows : t
        var r0 = 0
        while r0 < t {
            let r1 = min(t, r0 + block)
            body(r0, r1, shape.causal ? r1 : t)
            r0 = r1
        }
    }

    /// Keys row i's block scores (causal: up to the end of its query block; else all).
    @inline(__always)
    static func scoredKeys(row i: Int, _ shape: Shape) -> Int {
        shape.causal ? min(shape.tokens, (i / causalBlockRows + 1) * causalBlockRows) : shape.tokens
    }

    public static func forward(
        out: UnsafeMutablePointer<Float>,
        probs: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        shape: Shape, scale: Float
    ) {
        OpProfile.measure("attention.forward") {
            let t = shape.tokens, d = shape.headDim, qw = shape.qWidth, kw = shape.kvWidth
            BLASRuntime.withSingleThreadedBLAS {
                Parallel.forEachChunk(shape.heads) { _, heads in
                    for h in heads {
                        let g = shape.kvHead(of: h)
                        let p = probs + h * t * t
                        // scores [T, T] = scale · q_h [T, D] · k_g [T, D]ᵀ, block by block of query rows.
                        forEachQueryBlock(shape) { r0, r1, keys in
                            BLAS.gemm(.none, .transpose, m: r1 - r0, n: keys, k: d, alpha: scale,
                                      a: q + r0 * qw + h * d, lda: qw, b: k + g * d, ldb: kw, c: p + r0 * t, ldc: t)
                        }
                        for i in 0..<t {
                            let row = p + i * t
                            let valid = shape.causal ? i + 1 : t
                            Softmax.softmaxRow(out: row, input: row, count: valid)
                            if valid < t { (row + valid).update(repeating: 0, count: t - valid) }
                        }
                        // out_h [T, D] = probs_h [T, T] · v_g [T, D] (row block r0..<r1 has no weight past key r1).
                        forEachQueryBlock(shape) { r0, r1, keys in
                            BLAS.gemm(.none, .none, m: r1 - r0, n: d, k: keys,
                                      a: p + r0 * t, lda: t, b: v + g * d, ldb: kw, c: out + r0 * qw + h * d, ldc: qw)
                        }
                    }
                }
            }
        }
    }

    /// Accumulates dq `[T, heads·D]`, dk and dv `[T, kvHeads·D]` from dout `[T, heads·D]`.
    public static func backward(
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>,
        probs: UnsafePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        shape: Shape, scale: Float
    ) {
        OpProfile.measure("attention.backward") {
            let t = shape.tokens, d = shape.headDim, qw = shape.qWidth, kw = shape.kvWidth
            let workers = min(Parallel.threadCount, shape.heads)
            // Per worker: dscores [T, T] for one head, and private dk/dv (heads of one kv group may
            // land on different workers), summed into dk/dv after the join.
            let scratch = FloatBuffer(count: workers * t * t)
            let privateDk = FloatBuffer(count: workers * t * kw), privateDv = FloatBuffer(count: workers * t * kw)
            withExtendedLifetime((scratch, privateDk, privateDv)) {
                BLASRuntime.withSingleThreadedBLAS {
                    Parallel.forEachChunk(shape.heads, chunks: workers) { worker, heads in
                        let ds = scratch.pointer + worker * t * t
                        let dkw = privateDk.pointer + worker * t * kw, dvw = privateDv.pointer + worker * t * kw
                        for h in heads {
                            let g = shape.kvHead(of: h)
                            let p = probs + h * t * t
                            let doh = dout + h * d
                            forEachQueryBlock(shape) { r0, r1, keys in
                                // dv_g[0..<keys] += p_h[r0..<r1, 0..<keys]ᵀ · dout_h[r0..<r1]
                                BLAS.gemm(.transpose, .none, m: keys, n: d, k: r1 - r0, a: p + r0 * t, lda: t, b: doh + r0 * qw, ldb: qw,
                                          beta: 1, c: dvw + g * d, ldc: kw)
                                // dprobs[r0..<r1, 0..<keys] = dout_h · v_gᵀ
                                BLAS.gemm(.none, .transpose, m: r1 - r0, n: keys, k: d, a: doh + r0 * qw, lda: qw, b: v + g * d, ldb: kw,
                                          c: ds + r0 * t, ldc: t)
                            }
                            // dscores = p ⊙ (dprobs − Σ dprobs·p) over the valid keys; the rest of the scored block is 0.
                            for i in 0..<t {
                                let valid = shape.causal ? i + 1 : t
                                softmaxBackwardRow(ds + i * t, probs: p + i * t, count: valid)
                                let keys = scoredKeys(row: i, shape)
                                if valid < keys { (ds + i * t + valid).update(repeating: 0, count: keys - valid) }
                            }
                            forEachQueryBlock(shape) { r0, r1, keys in
                                // dq_h[r0..<r1] += scale · dscores · k_g ; dk_g[0..<keys] += scale · dscoresᵀ · q_h[r0..<r1]
                                BLAS.gemm(.none, .none, m: r1 - r0, n: d, k: keys, alpha: scale, a: ds + r0 * t, lda: t, b: k + g * d, ldb: kw,
                                          beta: 1, c: dq + r0 * qw + h * d, ldc: qw)
                                BLAS.gemm(.transpose, .none, m: keys, n: d, k: r1 - r0, alpha: scale, a: ds + r0 * t, lda: t,
                                          b: q + r0 * qw + h * d, ldb: qw, beta: 1, c: dkw + g * d, ldc: kw)
                            }
                        }
                    }
                }
                // dk += Σ workers' dk, dv likewise (in worker order: deterministic).
                Parallel.forEachRange(t * kw, grain: 65_536) { range in
                    for worker in 0..<workers {
                        let sk = privateDk.pointer + worker * t * kw, sv = privateDv.pointer + worker * t * kw
                        for i in range { dk[i] += sk[i]; dv[i] += sv[i] }
                    }
                }
            }
        }
    }

    /// In place on dprobs `[count]`: p ⊙ (dprobs − Σ dprobs·p), 16 lanes at a time.
    @inline(__always)
    static func softmaxBackwardRow(_ dr: UnsafeMutablePointer<Float>, probs pr: UnsafePointer<Float>, count: Int) {
        typealias V = SIMD16<Float>
        var lanes = V(repeating: 0)
        var j = 0
        while j + 16 <= count {
            lanes += UnsafeRawPointer(pr + j).loadUnaligned(as: V.self) * UnsafeRawPointer(dr + j).loadUnaligned(as: V.self)
            j += 16
        }
        var dot = lanes.sum()
        while j < count { dot += pr[j] * dr[j]; j += 1 }
        let dotVector = V(repeating: dot)
        j = 0
        while j + 16 <= count {
            let pv = UnsafeRawPointer(pr + j).loadUnaligned(as: V.self), dv = UnsafeRawPointer(dr + j).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dr + j).storeBytes(of: pv * (dv - dotVector), as: V.self)
            j += 16
        }
        while j < count { dr[j] = pr[j] * (dr[j] - dot); j += 1 }
    }
}
