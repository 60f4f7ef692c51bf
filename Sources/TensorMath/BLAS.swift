import COpenBLAS

/// Whether a matrix operand is used as stored or transposed.
public enum Transpose: Sendable {
    case none, transpose

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Thin, shape-checked wrappers over OpenBLAS single-precision routines. Every matrix is
/// row-major; `lda`/`ldb`/`ldc` are row strides in floats (≥ the stored row length).
public enum BLAS {
    /// `C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C`.
    /// Stored shapes: A is `[m, k]` (or `[k, m]` when transposed), B is `[k, n]` (or `[n, k]`).
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= max(1, transA == .none ? k : m), "gemm: lda \(lda) too small")
        precondition(ldb >= max(1, transB == .none ? n : k), "gemm: ldb \(ldb) too small")
        precondition(ldc >= max(1, n), "gemm: ldc \(ldc) too small")
        if m == 0 || n == 0 { return }
        guard OpProfile.isEnabled else {
            cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                        blasint(m), blasint(n), blasint(k), alpha,
                        a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
            return
        }
        let name = "sgemm \(transA == .none ? "N" : "T")\(transB == .none ? "N" : "T") \(m)×\(n)×\(k)"
        OpProfile.measure(name, flops: 2 * Double(m) * Double(n) * Double(k)) {
            cblas_sgemm(CblasRowMajor, transA.cblas, transB.cblas,
                        blasint(m), blasint(n), blasint(k), alpha,
                        a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
        }
    }

    /// `y[m] = alpha · A[m, n] · x[n] + beta · y` (or `Aᵀ` with `x[m]`, `y[n]` when transposed).
    public static func gemv(
        _ transA: Transpose, m: Int, n: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>,
        beta: Float = 0,
        y: UnsafeMutablePointer<Float>
    ) {
        precondition(m >= 0 && n >= 0 && lda >= max(1, n), "gemv: bad shape m=\(m) n=\(n) lda=\(lda)")
        if m == 0 || n == 0 { return }
        cblas_sgemv(CblasRowMajor, transA.cblas, blasint(m), blasint(n), alpha,
                    a, blasint(lda), x, 1, beta, y, 1)
    }
}
