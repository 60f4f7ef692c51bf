import Foundation

/// LLaMA's RMSNorm: `weight · (x · rsqrt(mean(x²) + eps))`, in that order as in transformers'
/// `LlamaRMSNorm` (normalise first, then scale), with the mean of squares accumulated in Double.
public enum RMSNorm {
    /// out `[rows, dim]`; rstd `[rows]` (saved for backward, optional) = 1/sqrt(mean(x²)+eps).
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>?,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        OpProfile.measure("rmsnorm.forward") {
            Parallel.forEachRow(rows, rowWork: dim * 4) { row in
                let x = input + row * dim, y = out + row * dim
                var sumSquares = 0.0
                for i in 0..<dim { let v = Double(x[i]); sumSquares += v * v }
                let meanSquare = Float(sumSquares / Double(dim))
                let r = 1 / (meanSquare + eps).squareRoot()
                for i in 0..<dim { y[i] = weight[i] * (x[i] * r) }
                rstd?[row] = r
            }
        }
    }

    /// Accumulates dinput `[rows, dim]` and dweight `[dim]` (dweight summed over rows, serially so
    /// the result does not depend on thread scheduling).
    public static func backward(
        dinput: UnsafeMutablePointer<Float>,
        dweight: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>,
        rows: Int, dim: Int
    ) {
        OpProfile.measure("rmsnorm.backward") {
            for row in 0..<rows {
                let x = input + row * dim, dy = dout + row * dim, dx = dinput + row * dim
                let r = rstd[row]
                // n = x·r; g = w·dy; dx = r·(g − n·mean(g·n))
                var dot = 0.0
                for i in 0..<dim { dot += Double(weight[i] * dy[i]) * Double(x[i] * r) }
                let meanDot = Float(dot / Double(dim))
                for i in 0..<dim {
                    let n = x[i] * r
                    dx[i] += r * (weight[i] * dy[i] - n * meanDot)
                    if let dweight { dweight[i] += dy[i] * n }
                }
            }
        }
    }
}
