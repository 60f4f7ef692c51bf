import Foundation

/// SiLU (`x·σ(x)`, transformers' "silu") and the LLaMA MLP gate `silu(gate) ⊙ up`, 16 lanes at a
/// time with `VectorExp`, split over the cores.
public enum SiLU {
    public static func forward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            VectorExp.blocks(range) { i, lanes in
                let x = VectorExp.load(input, i, lanes: lanes)
                VectorExp.store(x / (1 + VectorExp.exp(-x)), out, i, lanes: lanes)
            }
        }
    }

    /// dinput += dout · σ(x)·(1 + x·(1 − σ(x))).
    public static func backward(dinput: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 32_768) { range in
            VectorExp.blocks(range) { i, lanes in
                let x = VectorExp.load(input, i, lanes: lanes), dy = VectorExp.load(dout, i, lanes: lanes)
                let s = 1 / (1 + VectorExp.exp(-x))
                let dx = VectorExp.load(dinput, i, lanes: lanes) + dy * s * (1 + x * (1 - s))
                VectorExp.store(dx, dinput, i, lanes: lanes)
            }
        }
    }
}

public enum SwiGLU {
    /// out `[n]` = silu(gate) ⊙ up (n = rows·intermediate).
    public static func forward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        OpProfile.measure("swiglu.forward") {
            Parallel.forEachRange(count, grain: 32_768) { range in
                VectorExp.blocks(range) { i, lanes in
                    let g = VectorExp.load(gate, i, lanes: lanes), u = VectorExp.load(up, i, lanes: lanes)
                    VectorExp.store(g / (1 + VectorExp.exp(-g)) * u, out, i, lanes: lanes)
                }
            }
        }
    }

    /// dgate += dout·up·silu'(gate); dup += dout·silu(gate). `accumulate: false` writes them
    /// instead (no read of the old values, no zeroing pass before).
    public static func backward(
        dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
        accumulate: Bool = true
    ) {
        OpProfile.measure("swiglu.backward") {
            Parallel.forEachRange(count, grain: 32_768) { range in
                VectorExp.blocks(range) { i, lanes in
                    let g = VectorExp.load(gate, i, lanes: lanes), u = VectorExp.load(up, i, lanes: lanes)
                    let dy = VectorExp.load(dout, i, lanes: lanes)
                    let s = 1 / (1 + VectorExp.exp(-g))
                    var dg = dy * u * s * (1 + g * (1 - s)), du = dy * g * s
                    if accumulate {
                        dg = VectorExp.load(dgate, i, lanes: lanes) + dg
                        du = VectorExp.load(dup, i, lanes: lanes) + du
                    }
                    VectorExp.store(dg, dgate, i, lanes: lanes)
                    VectorExp.store(du, dup, i, lanes: lanes)
                }
            }
        }
    }
}
