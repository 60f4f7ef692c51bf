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
        let workers = Parallel.threadCount
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: workers)
        defer { partial.deallocate() }
        for slot in slots {
            partial.initialize(repeating: 0, count: workers)
            let chunk = (slot.count + workers - 1) / workers
            Parallel.forEachRange(workers, grain: slot.count >= 65_536 ? 1 : workers) { range in
                for worker in range {
                    let start = worker * chunk, end = min(slot.count, start + chunk)
                    partial[worker] = start < end ? sumOfSquares(g + slot.offset + start, count: end - start) : 0
                }
            }
            for w in 0..<workers { total += partial[w] }
        }
        return total.squareRoot()
    }

    /// Σx² with 8 Float lanes per block of 1024 floats, blocks summed in Double.
    static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var total = 0.0, start = 0
        while start < count {
            let end = min(count, start + 1024)
            var lanes = SIMD8<Float>(repeating: 0)
            var i = start
            while i + 8 <= end {
                let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                lanes += v * v
                i += 8
            }
            var block = Double(lanes.sum())
            while i < end { block += Double(x[i]) * Double(x[i]); i += 1 }
            total += block
            start = end
        }
        return total
    }

    /// torch's clip coefficient min(1, maxNorm / (norm + 1e-6)) as the Float it multiplies by.
    public static func coefficient(norm: Double, maxNorm: Double) -> Float { Float(min(1, maxNorm / (norm + 1e-6))) }

    /// Clips in place; returns the norm before clipping (what torch returns).
    @discardableResult
    public static func clip(_ gradients: ParameterBuffer, slots: [ParameterSlot], maxNorm: Double) -> Double {
        let norm = globalNorm(gradients, slots: slots)
        let coefficient = coefficient(norm: norm, maxNorm: maxNorm)
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
