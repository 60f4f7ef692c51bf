/// A fully connected layer in PyTorch's convention: `weight` is `[out, in]` (row-major), so the
/// forward pass is `input · weightᵀ + bias`, one sgemm.
public enum Linear {
    /// out `[rows, outFeatures]` = input `[rows, inFeatures]` · weight `[outFeatures, inFeatures]`ᵀ + bias `[outFeatures]`.
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?,
        rows: Int, inFeatures: Int, outFeatures: Int
    ) {
        OpProfile.measure("linear.forward") {
            var beta: Float = 0
            if let bias {
                for row in 0..<rows { (out + row * outFeatures).update(from: bias, count: outFeatures) }
                beta = 1
            }
            BLAS.gemm(.none, .transpose, m: rows, n: outFeatures, k: inFeatures,
                      a: input, lda: inFeatures, b: weight, ldb: inFeatures,
                      beta: beta, c: out, ldc: outFeatures)
        }
    }

    /// Accumulates: dinput `[rows, in]` += dout · weight; dweight `[out, in]` += doutᵀ · input;
    /// dbias `[out]` += column sums of dout. Pass `nil` for gradients that are not wanted.
    /// `accumulateInput: false` writes dinput = dout · weight instead (the product's own β = 0:
    /// no zeroing pass before it).
    public static func backward(
        dinput: UnsafeMutablePointer<Float>?,
        dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        rows: Int, inFeatures: Int, outFeatures: Int,
        accumulateInput: Bool = true
    ) {
        OpProfile.measure("linear.backward") {
            if let dinput {
                BLAS.gemm(.none, .none, m: rows, n: inFeatures, k: outFeatures,
                          a: dout, lda: outFeatures, b: weight, ldb: inFeatures,
                          beta: accumulateInput ? 1 : 0, c: dinput, ldc: inFeatures)
            }
            if let dweight {
                BLAS.gemm(.transpose, .none, m: outFeatures, n: inFeatures, k: rows,
                          a: dout, lda: outFeatures, b: input, ldb: inFeatures,
                          beta: 1, c: dweight, ldc: inFeatures)
            }
            if let dbias {
                for row in 0..<rows {
                    let d = dout + row * outFeatures
                    for o in 0..<outFeatures { dbias[o] += d[o] }
                }
            }
        }
    }
}
