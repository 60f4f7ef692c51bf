/// Scaled dot-product attention with grouped-query heads, one sgemm pair per head.
///
/// Layouts (row-major): q `[T, heads·D]`, k and v `[T, kvHeads·D]`, out `[T, heads·D]`;
/// query head h reads key/value head h / (heads / kvHeads), as transformers' `repeat_kv`.
/// probs `[heads, T, T]` holds softmax(scale·q·kᵀ + mask) — kept because backward needs it.
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

    public static func forward(
        out: UnsafeMutablePointer<Float>,
        probs: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        shape: Shape, scale: Float
    ) {
        let t = shape.tokens, d = shape.headDim
        for h in 0..<shape.heads {
            let g = shape.kvHead(of: h)
            let p = probs + h * t * t
            // scores [T, T] = scale · q_h [T, D] · k_g [T, D]ᵀ
            BLAS.gemm(.none, .transpose, m: t, n: t, k: d, alpha: scale,
                      a: q + h * d, lda: shape.qWidth, b: k + g * d, ldb: shape.kvWidth,
                      c: p, ldc: t)
            let causal = shape.causal
            Parallel.forEachRow(t, rowWork: t * 8) { i in
                let row = p + i * t
                let valid = causal ? i + 1 : t
                Softmax.softmaxRow(out: row, input: row, count: valid)
                if valid < t { (row + valid).update(repeating: 0, count: t - valid) }
            }
            // out_h [T, D] = probs_h [T, T] · v_g [T, D]
            BLAS.gemm(.none, .none, m: t, n: d, k: t,
                      a: p, lda: t, b: v + g * d, ldb: shape.kvWidth,
                      c: out + h * d, ldc: shape.qWidth)
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
        let t = shape.tokens, d = shape.headDim
        let scratch = FloatBuffer(count: t * t)  // dscores [T, T] for one head
        // `scratch` must outlive every use of its pointer: without this, an optimized build may free
        // it right after `.pointer` is read (its last use as an object).
        defer { withExtendedLifetime(scratch) {} }
        let ds = scratch.pointer
        for h in 0..<shape.heads {
            let g = shape.kvHead(of: h)
            let p = probs + h * t * t
            let doh = dout + h * d
            // dv_g += p_hᵀ · dout_h
            BLAS.gemm(.transpose, .none, m: t, n: d, k: t, a: p, lda: t, b: doh, ldb: shape.qWidth,
                      beta: 1, c: dv + g * d, ldc: shape.kvWidth)
            // dprobs = dout_h · v_gᵀ
            BLAS.gemm(.none, .transpose, m: t, n: t, k: d, a: doh, lda: shape.qWidth, b: v + g * d, ldb: shape.kvWidth,
                      c: ds, ldc: t)
            // dscores = p ⊙ (dprobs − Σ dprobs·p); masked entries have p = 0 and stay 0.
            Parallel.forEachRow(t, rowWork: t * 4) { i in
                let pr = p + i * t, dr = ds + i * t
                var dot: Float = 0
                for j in 0..<t { dot += pr[j] * dr[j] }
                for j in 0..<t { dr[j] = pr[j] * (dr[j] - dot) }
            }
            // dq_h += scale · dscores · k_g ; dk_g += scale · dscoresᵀ · q_h
            BLAS.gemm(.none, .none, m: t, n: d, k: t, alpha: scale, a: ds, lda: t, b: k + g * d, ldb: shape.kvWidth,
                      beta: 1, c: dq + h * d, ldc: shape.qWidth)
            BLAS.gemm(.transpose, .none, m: t, n: d, k: t, alpha: scale, a: ds, lda: t, b: q + h * d, ldb: shape.qWidth,
                      beta: 1, c: dk + g * d, ldc: shape.kvWidth)
        }
    }
}
