import Foundation

/// cos/sin tables for rotary position embeddings, `[positions, headDim/2]` each.
/// Computed the way transformers' `LlamaRotaryEmbedding` (rope_type "default") does it in float32:
/// invFreq = 1 / theta^(2i/d), angle = Float(position) · invFreq, then cos/sin of that Float angle.
public final class RotaryTable {
    public let headDim: Int
    public let positions: Int
    public let theta: Double
    public let cos: FloatBuffer
    public let sin: FloatBuffer

    public init(positions: Int, headDim: Int, theta: Double) {
        precondition(headDim % 2 == 0, "RotaryTable: head dim \(headDim) must be even")
        self.headDim = headDim
        self.positions = positions
        self.theta = theta
        let half = headDim / 2
        cos = FloatBuffer(count: positions * half)
        sin = FloatBuffer(count: positions * half)
        var inverseFrequency = [Float](repeating: 0, count: half)
        for i in 0..<half {
            let exponent = Float(2 * i) / Float(headDim)
            inverseFrequency[i] = 1 / Float(Foundation.pow(theta, Double(exponent)))
        }
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(Float(p) * inverseFrequency[i])
                cos.pointer[p * half + i] = Float(Foundation.cos(angle))
                sin.pointer[p * half + i] = Float(Foundation.sin(angle))
            }
        }
    }
}

/// Rotary embedding in transformers' rotate-half layout: within each head, dimension `i` pairs
/// with `i + headDim/2`. (GGUF's interleaved layout is undone when loading, by permuting the
/// q/k projection rows, so this is the only layout the kernels know.)
public enum RoPE {
    /// Rotates x `[tokens, heads·headDim]` in place; token t uses table row `positionOffset + t`.
    /// (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin).
    public static func forward(
        _ x: UnsafeMutablePointer<Float>,
        table: RotaryTable,
        tokens: Int, heads: Int, positionOffset: Int = 0
    ) {
        OpProfile.measure("rope.forward") { rotate(x, table: table, tokens: tokens, heads: heads, positionOffset: positionOffset, sinSign: 1) }
    }

    /// The rotation is orthogonal, so the gradient is the inverse rotation (by −angle), in place
    /// on dx `[tokens, heads·headDim]` (which holds d(rotated) on entry and d(input) on return).
    public static func backward(
        _ dx: UnsafeMutablePointer<Float>,
        table: RotaryTable,
        tokens: Int, heads: Int, positionOffset: Int = 0
    ) {
        OpProfile.measure("rope.backward") { rotate(dx, table: table, tokens: tokens, heads: heads, positionOffset: positionOffset, sinSign: -1) }
    }

    /// Rotation by +angle (`sinSign` 1) or −angle (−1; negating sin is exact, so both directions
    /// round as the two separate loops did).
    private static func rotate(_ x: UnsafeMutablePointer<Float>, table: RotaryTable, tokens: Int, heads: Int, positionOffset: Int, sinSign: Float) {
        let headDim = table.headDim, half = headDim / 2, width = heads * headDim
        precondition(positionOffset + tokens <= table.positions, "RoPE: \(positionOffset + tokens) positions > table \(table.positions)")
        let cosTable = table.cos.pointer, sinTable = table.sin.pointer
        Parallel.forEachRow(tokens, rowWork: width * 4) { t in
            let c = cosTable + (positionOffset + t) * half, s = sinTable + (positionOffset + t) * half
            for h in 0..<heads {
                let v = x + t * width + h * headDim
                for i in 0..<half {
                    let x1 = v[i], x2 = v[i + half], sine = s[i] * sinSign
                    v[i] = x1 * c[i] - x2 * sine
                    v[i + half] = x2 * c[i] + x1 * sine
                }
            }
        }
    }
}
