import Foundation

/// LayerNorm over the last dimension (biased variance, as `torch.nn.LayerNorm`).
public enum LayerNorm {
    /// out `[rows, dim]` = (x − mean)·rstd·weight + bias; mean, rstd `[rows]` saved for backward.
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        mean: UnsafeMutablePointer<Float>?,
        rstd: UnsafeMutablePointer<Float>?,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        Parallel.forEachRow(rows, rowWork: dim * 6) { row in
            let x = input + row * dim, y = out + row * dim
            var sum = 0.0
            for i in 0..<dim { sum += Double(x[i]) }
            let mu = sum / Double(dim)
            var sumSquares = 0.0
            for i in 0..<dim { let d = Double(x[i]) - mu; sumSquares += d * d }
            let r = Float(1 / (sumSquares / Double(dim) + Double(eps)).squareRoot())
            let m = Float(mu)
            for i in 0..<dim { y[i] = (x[i] - m) * r * weight[i] + bias[i] }
            mean?[row] = m
            rstd?[row] = r
        }
    }

    /// Accumulates dinput `[rows, dim]`, dweight and dbias `[dim]`.
    public static func backward(
        dinput: UnsafeMutablePointer<Float>,
        dweight: UnsafeMutablePointer<Float>?,
        dbias: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        mean: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>,
        rows: Int, dim: Int
    ) {
        for row in 0..<rows {
            let x = input + row * dim, dy = dout + row * dim, dx = dinput + row * dim
            let m = mean[row], r = rstd[row]
            // n = (x−mean)·r; g = w·dy; dx = r·(g − mean(g) − n·mean(g·n))
            var sumG = 0.0, sumGN = 0.0
            for i in 0..<dim {
                let g = Double(weight[i] * dy[i])
                sumG += g
                sumGN += g * Double((x[i] - m) * r)
            }
            let meanG = Float(sumG / Double(dim)), meanGN = Float(sumGN / Double(dim))
            for i in 0..<dim {
                let n = (x[i] - m) * r
                dx[i] += r * (weight[i] * dy[i] - meanG - n * meanGN)
                if let dweight { dweight[i] += dy[i] * n }
                if let dbias { dbias[i] += dy[i] }
            }
        }
    }
}
