import Foundation

/// SiLU (`x·σ(x)`, transformers' "silu") and the LLaMA MLP gate `silu(gate) ⊙ up`.
public enum SiLU {
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            for i in range { let x = input[i]; out[i] = x / (1 + expf(-x)) }
        }
    }

    /// dinput += dout · σ(x)·(1 + x·(1 − σ(x))).
    public static func backward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            for i in range {
                let x = input[i], s = 1 / (1 + expf(-x))
                dinput[i] += dout[i] * s * (1 + x * (1 - s))
            }
        }
    }
}

public enum SwiGLU {
    /// out `[n]` = silu(gate) ⊙ up (n = rows·intermediate).
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            for i in range { let g = gate[i]; out[i] = (g / (1 + expf(-g))) * up[i] }
        }
    }

    /// dgate += dout·up·silu'(gate); dup += dout·silu(gate).
    public static func backward(
        dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int
    ) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            for i in range {
                let g = gate[i], s = 1 / (1 + expf(-g))
                dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s))
                dup[i] += dout[i] * g * s
            }
        }
    }
}
