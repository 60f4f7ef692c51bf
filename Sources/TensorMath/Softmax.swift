import Foundation

/// Row-wise softmax, max-subtracted for stability.
public enum Softmax {
    /// out `[rows, cols]` = softmax over each row of input (may alias out).
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int, cols: Int) {
        Parallel.forEachRow(rows, rowWork: cols * 8) { row in
            softmaxRow(out: out + row * cols, input: input + row * cols, count: cols)
        }
    }

    /// dinput `[rows, cols]` += y ⊙ (dy − Σ dy·y), using the forward output y.
    public static func backward(
        dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>,
        rows: Int, cols: Int
    ) {
        Parallel.forEachRow(rows, rowWork: cols * 4) { row in
            let y = out + row * cols, dy = dout + row * cols, dx = dinput + row * cols
            var dot = 0.0
            for i in 0..<cols { dot += Double(dy[i]) * Double(y[i]) }
            let d = Float(dot)
            for i in 0..<cols { dx[i] += y[i] * (dy[i] - d) }
        }
    }

    /// Softmax of `count` floats (may alias). Exponentials 16 lanes at a time; the sum is
    /// accumulated in Double (per-block float sums of ≤ 16 values ≤ 1) so long rows (a 49k
    /// vocabulary) keep full float precision.
    @inline(__always)
    static func softmaxRow(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let maxValue = CrossEntropy.maximum(input, count: count)
        let shift = VectorExp.Vector(repeating: maxValue)
        var sum = 0.0
        VectorExp.blocks(0..<count) { i, lanes in
            let e = VectorExp.exp(VectorExp.load(input, i, lanes: lanes) - shift)
            VectorExp.store(e, out, i, lanes: lanes)
            // Missing lanes loaded as 0 give e^(−max) ≠ 0: sum only the real ones.
            if lanes == 16 { sum += Double(e.sum()) } else { for j in 0..<lanes { sum += Double(e[j]) } }
        }
        let scale = Float(1 / sum)
        for i in 0..<count { out[i] *= scale }
    }
}
