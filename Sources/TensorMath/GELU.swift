import Foundation

/// Exact GELU `x·Φ(x) = ½x(1 + erf(x/√2))` (transformers' "gelu", the LLaVA projector).
public enum GELU {
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 16_384) { range in
            for i in range { let x = input[i]; out[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752)) }
        }
    }

    /// dinput += dout · (Φ(x) + x·φ(x)).
    public static func backward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 16_384) { range in
            for i in range {
                let x = input[i]
                let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
                let pdf = expf(-0.5 * x * x) * 0.39894228040143268
                dinput[i] += dout[i] * (cdf + x * pdf)
            }
        }
    }
}

/// CLIP's quick GELU `x·σ(1.702x)` (transformers' "quick_gelu").
public enum QuickGELU {
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            VectorExp.blocks(range) { i, lanes in
                let x = VectorExp.load(input, i, lanes: lanes)
                VectorExp.store(x / (1 + VectorExp.exp(-1.702 * x)), out, i, lanes: lanes)
            }
        }
    }

    /// dinput += dout · (σ(1.702x) + 1.702·x·σ·(1 − σ)).
    public static func backward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            VectorExp.blocks(range) { i, lanes in
                let x = VectorExp.load(input, i, lanes: lanes), dy = VectorExp.load(dout, i, lanes: lanes)
                let s = 1 / (1 + VectorExp.exp(-1.702 * x))
                VectorExp.store(VectorExp.load(dinput, i, lanes: lanes) + dy * (s + 1.702 * x * s * (1 - s)), dinput, i, lanes: lanes)
            }
        }
    }
}
