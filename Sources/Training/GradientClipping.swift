import TensorMath

/// Global-norm clipping as `torch.nn.utils.clip_grad_norm_(params, maxNorm)` (2-norm):
/// total = ‖all gradients‖₂, coefficient = min(1, maxNorm / (total + 1e-6)), gradients ·= coefficient
/// (torch multiplies even when the coefficient clamps to 1, a no-op). Only the slots given are
/// measured and scaled (the trainable ones); sums run in Double.
public enum GradientClipping {
    /// ‖g‖₂ over `slots` of `gradients`.
    public static func globalNorm(_ gradients: ParameterBuffer, slots: [ParameterSlot]) -> Double {
        let g = gradients.storage.pointer
        var total = 0.0
        for slot in slots {
            let partial = UnsafeMutablePointer<Double>.allocate(capacity: Parallel.threadCount)
            defer { partial.deallocate() }
            partial.initialize(repeating: 0, count: Parallel.threadCount)
            let chunk = (slot.count + Parallel.threadCount - 1) / Parallel.threadCount
            Parallel.forEachRange(Parallel.threadCount, grain: slot.count >= 65_536 ? 1 : Parallel.threadCount) { workers in
                for worker in workers {
                    let start = worker * chunk, end = min(slot.count, start + chunk)
                    var sum = 0.0
                    if start < end { for i in start..<end { let v = Double(g[slot.offset + i]); sum += v * v } }
                    partial[worker] = sum
                }
            }
            for w in 0..<Parallel.threadCount { total += partial[w] }
        }
        return total.squareRoot()
    }

    /// Clips in place; returns the norm before clipping (what torch returns).
    @discardableResult
    public static func clip(_ gradients: ParameterBuffer, slots: [ParameterSlot], maxNorm: Double) -> Double {
        let norm = globalNorm(gradients, slots: slots)
        let coefficient = Float(min(1, maxNorm / (norm + 1e-6)))
        if coefficient < 1 {
            let g = gradients.storage.pointer
            for slot in slots {
                Parallel.forEachRange(slot.count, grain: 65_536) { range in
                    for i in range { g[slot.offset + i] *= coefficient }
                }
            }
        }
        return norm
    }
}
