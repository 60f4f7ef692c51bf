import TensorMath

/// `Linear.forward` for the cached path. A single new row (one decode step) goes through sgemv:
/// OpenBLAS 0.3.21's sgemm with m = 1 still packs the whole weight, measured here 4–6× slower than
/// sgemv on SmolLM2's shapes. Several rows keep the one-GEMM form.
enum DecodeLinear {
    static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, rows: Int, inFeatures: Int, outFeatures: Int) {
        guard rows == 1 else {
            Linear.forward(out: out, input: input, weight: weight, bias: bias, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
            return
        }
        if let bias { out.update(from: bias, count: outFeatures) }
        // y[out] = W[out, in] · x[in] (+ bias)
        BLAS.gemv(.none, m: outFeatures, n: inFeatures, a: weight, lda: inFeatures, x: input, beta: bias == nil ? 0 : 1, y: out)
    }
}
