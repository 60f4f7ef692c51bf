/// A low-rank adapter term on a linear layer (LoRA): `out += scaling · (input · Aᵀ) · Bᵀ` with
/// A `[rank, in]` and B `[out, rank]` (PEFT's `lora_A` / `lora_B` weights), four small sgemms.
/// The `[rows, rank]` intermediate is recomputed in backward rather than kept (rank ≪ in).
public enum LoRA {
    /// out `[rows, out]` += scaling · input `[rows, in]` · Aᵀ · Bᵀ.
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        input: UnsafePointer<Float>,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int, rank: Int, scaling: Float
    ) {
        OpProfile.measure("lora.forward") {
            let hidden = FloatBuffer(count: rows * rank)
            withExtendedLifetime(hidden) {
                // h [rows, r] = input · Aᵀ; out += scaling · h · Bᵀ
                BLAS.gemm(.none, .transpose, m: rows, n: rank, k: inFeatures, a: input, lda: inFeatures, b: a, ldb: inFeatures,
                          c: hidden.pointer, ldc: rank)
                BLAS.gemm(.none, .transpose, m: rows, n: outFeatures, k: rank, alpha: scaling, a: hidden.pointer, lda: rank, b: b, ldb: rank,
                          beta: 1, c: out, ldc: outFeatures)
            }
        }
    }

    /// Accumulates: dA `[rank, in]` += scaling · (dout · B)ᵀ · input; dB `[out, rank]` += scaling ·
    /// doutᵀ · (input · Aᵀ); dinput `[rows, in]` += scaling · dout · B · A (when given).
    public static func backward(
        dinput: UnsafeMutablePointer<Float>?,
        da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>,
        input: UnsafePointer<Float>,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int, rank: Int, scaling: Float
    ) {
        OpProfile.measure("lora.backward") {
            let hidden = FloatBuffer(count: rows * rank), dHidden = FloatBuffer(count: rows * rank)
            withExtendedLifetime((hidden, dHidden)) {
                let h = hidden.pointer, dh = dHidden.pointer
                BLAS.gemm(.none, .transpose, m: rows, n: rank, k: inFeatures, a: input, lda: inFeatures, b: a, ldb: inFeatures,
                          c: h, ldc: rank)
                // dB += scaling · doutᵀ · h ; dh = scaling · dout · B
                BLAS.gemm(.transpose, .none, m: outFeatures, n: rank, k: rows, alpha: scaling, a: dout, lda: outFeatures, b: h, ldb: rank,
                          beta: 1, c: db, ldc: rank)
                BLAS.gemm(.none, .none, m: rows, n: rank, k: outFeatures, alpha: scaling, a: dout, lda: outFeatures, b: b, ldb: rank,
                          c: dh, ldc: rank)
                // dA += dhᵀ · input ; dinput += dh · A
                BLAS.gemm(.transpose, .none, m: rank, n: inFeatures, k: rows, a: dh, lda: rank, b: input, ldb: inFeatures,
                          beta: 1, c: da, ldc: inFeatures)
                if let dinput {
                    BLAS.gemm(.none, .none, m: rows, n: inFeatures, k: rank, a: dh, lda: rank, b: a, ldb: inFeatures,
                              beta: 1, c: dinput, ldc: inFeatures)
                }
            }
        }
    }

    /// weight `[out, in]` += scaling · B · A (merging the adapter into the base weight).
    public static func merge(weight: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             inFeatures: Int, outFeatures: Int, rank: Int, scaling: Float) {
        BLAS.gemm(.none, .none, m: outFeatures, n: inFeatures, k: rank, alpha: scaling, a: b, lda: rank, b: a, ldb: inFeatures,
                  beta: 1, c: weight, ldc: inFeatures)
    }
}
