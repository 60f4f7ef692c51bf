import Foundation

/// LLaMA's RMSNorm: `weight · (x · rsqrt(mean(x²) + eps))`, in that order as in transformers'
/// `LlamaRMSNorm` (normalise first, then scale), with the mean of squares accumulated in Double.
/// Rows run in parallel, 8 lanes at a time (Double lanes for the sums).
public enum RMSNorm {
    typealias F = SIMD8<Float>
    typealias D = SIMD8<Double>

    @inline(__always)
    static func widen(_ v: F) -> D { D(Double(v[0]), Double(v[1]), Double(v[2]), Double(v[3]), Double(v[4]), Double(v[5]), Double(v[6]), Double(v[7])) }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> F { UnsafeRawPointer(p + i).loadUnaligned(as: F.self) }

    @inline(__always)
    static func store(_ v: F, _ p: UnsafeMutablePointer<Float>, _ i: Int) { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F.self) }

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
                var lanes = D(repeating: 0)
                var i = 0
                while i + 8 <= dim { let v = widen(load(x, i)); lanes += v * v; i += 8 }
                var sumSquares = lanes.sum()
                while i < dim { let v = Double(x[i]); sumSquares += v * v; i += 1 }
                let meanSquare = Float(sumSquares / Double(dim))
                let r = 1 / (meanSquare + eps).squareRoot()
                i = 0
                while i + 8 <= dim { store(load(weight, i) * (load(x, i) * r), y, i); i += 8 }
                while i < dim { y[i] = weight[i] * (x[i] * r); i += 1 }
                rstd?[row] = r
            }
        }
    }

    /// dinput `[rows, dim]` += (or, `accumulate: false`, =) d(input); dweight `[dim]` += d(weight)
    /// summed over rows. Rows run in parallel in a fixed number of contiguous chunks, each summing
    /// its rows' d(weight) in row order into its own partial; the partials are added in chunk
    /// order, so the result does not depend on thread scheduling.
    public static func backward(
        dinput: UnsafeMutablePointer<Float>,
        dweight: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>,
        input: UnsafePointer<Float>,
        weight: UnsafePointer<Float>,
        rstd: UnsafePointer<Float>,
        rows: Int, dim: Int,
        accumulate: Bool = true
    ) {
        OpProfile.measure("rmsnorm.backward") {
            let chunks = max(1, min(Parallel.threadCount, rows / 16))
            let partials = FloatBuffer(count: dweight == nil ? 0 : chunks * dim)
            withExtendedLifetime(partials) {
                Parallel.forEachChunk(rows, chunks: chunks) { chunk, range in
                    let dw: UnsafeMutablePointer<Float>? = dweight == nil ? nil : partials.pointer + chunk * dim
                    for row in range {
                        backwardRow(dx: dinput + row * dim, dw: dw, dy: dout + row * dim, x: input + row * dim,
                                    weight: weight, r: rstd[row], dim: dim, accumulate: accumulate)
                    }
                }
                guard let dweight else { return }
                for chunk in 0..<chunks {
                    let partial = partials.pointer + chunk * dim
                    var i = 0
                    while i + 8 <= dim { store(load(dweight, i) + load(partial, i), dweight, i); i += 8 }
                    while i < dim { dweight[i] += partial[i]; i += 1 }
                }
            }
        }
    }

    /// n = x·r; g = w·dy; dx (+)= r·(g − n·mean(g·n)); dw += dy·n.
    @inline(__always)
    static func backwardRow(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                            weight: UnsafePointer<Float>, r: Float, dim: Int, accumulate: Bool) {
        var lanes = D(repeating: 0)
        var i = 0
        while i + 8 <= dim { lanes += widen(load(weight, i) * load(dy, i)) * widen(load(x, i) * r); i += 8 }
        var dot = lanes.sum()
        while i < dim { dot += Double(weight[i] * dy[i]) * Double(x[i] * r); i += 1 }
        let meanDot = Float(dot / Double(dim))
        i = 0
        while i + 8 <= dim {
            let n = load(x, i) * r, d = load(dy, i)
            var v = r * (load(weight, i) * d - n * meanDot)
            if accumulate { v = load(dx, i) + v }
            store(v, dx, i)
            if let dw { store(load(dw, i) + d * n, dw, i) }
            i += 8
        }
        while i < dim {
            let n = x[i] * r
            let v = r * (weight[i] * dy[i] - n * meanDot)
            dx[i] = accumulate ? dx[i] + v : v
            if let dw { dw[i] += dy[i] * n }
            i += 1
        }
    }
}
