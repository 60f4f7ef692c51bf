import Foundation

/// Token-level cross-entropy over logits, mean over targets that are not `ignoreIndex`
/// (PyTorch's `F.cross_entropy(..., ignore_index=-100)`). Targets are already aligned with the
/// logits rows (the caller shifts labels for next-token prediction).
public enum CrossEntropy {
    public static let ignoreIndex = -100

    /// losses `[rows]` = −log softmax(logits)[target] (0 where ignored); returns the mean over the
    /// counted rows (0 when every row is ignored). Rows run in parallel; the mean is summed in row
    /// order in Double, so the result does not depend on scheduling.
    @discardableResult
    public static func forward(
        losses: UnsafeMutablePointer<Float>,
        logits: UnsafePointer<Float>,
        targets: UnsafeBufferPointer<Int>,
        rows: Int, vocab: Int
    ) -> Float {
        precondition(targets.count == rows, "CrossEntropy: \(targets.count) targets for \(rows) rows")
        for target in targets where target != ignoreIndex {
            precondition(target >= 0 && target < vocab, "CrossEntropy: target \(target) outside 0..<\(vocab)")
        }
        let rowLoss = UnsafeMutablePointer<Double>.allocate(capacity: max(rows, 1))
        defer { rowLoss.deallocate() }
        Parallel.forEachRow(rows, rowWork: vocab * 2) { row in
            let target = targets[row]
            if target == ignoreIndex { losses[row] = 0; rowLoss[row] = 0; return }
            let z = logits + row * vocab
            let (maxValue, logSum) = logSumExpParts(z, count: vocab)
            // log Σ e^z − z_t = (max − z_t) + log Σ e^(z − max): both terms small, no cancellation of large values.
            let loss = Double(maxValue - z[target]) + logSum
            losses[row] = Float(loss)
            rowLoss[row] = loss
        }
        var total = 0.0, counted = 0
        for row in 0..<rows where targets[row] != ignoreIndex {
            total += rowLoss[row]
            counted += 1
        }
        return counted == 0 ? 0 : Float(total / Double(counted))
    }

    /// dlogits `[rows, vocab]` += dloss/counted · (softmax(logits) − onehot(target)); ignored rows get nothing.
    public static func backward(
        dlogits: UnsafeMutablePointer<Float>,
        dloss: Float,
        logits: UnsafePointer<Float>,
        targets: UnsafeBufferPointer<Int>,
        rows: Int, vocab: Int
    ) {
        let counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        if counted == 0 { return }
        let scale = Float(Double(dloss) / Double(counted))
        Parallel.forEachRow(rows, rowWork: vocab * 2) { row in
            let target = targets[row]
            if target == ignoreIndex { return }
            let z = logits + row * vocab, dz = dlogits + row * vocab
            let (maxValue, logSum) = logSumExpParts(z, count: vocab)
            let shift = Float(logSum)
            // p_i = exp((z_i − max) − log Σ e^(z − max)); z_i − max is exact in Float.
            let offset = VectorExp.Vector(repeating: maxValue), logSumVector = VectorExp.Vector(repeating: shift)
            VectorExp.blocks(0..<vocab) { i, lanes in
                let p = VectorExp.exp((VectorExp.load(z, i, lanes: lanes) - offset) - logSumVector)
                VectorExp.store(VectorExp.load(dz, i, lanes: lanes) + scale * p, dz, i, lanes: lanes)
            }
            dz[target] -= scale
        }
    }

    /// Fused forward + backward of one row, in place: returns −log softmax(z)[target] and leaves
    /// `scale · (softmax(z) − onehot(target))` in `z`. One exponential per logit (kept in place,
    /// then scaled), 16 lanes at a time; the sum in Double, as `logSumExpParts`.
    @inline(__always)
    public static func fusedRowInPlace(_ z: UnsafeMutablePointer<Float>, count: Int, target: Int, scale: Float) -> Double {
        let maxValue = maximum(z, count: count)
        let targetLogit = z[target]
        let offset = VectorExp.Vector(repeating: maxValue)
        var sum = 0.0
        VectorExp.blocks(0..<count) { i, lanes in
            let e = VectorExp.exp(VectorExp.load(z, i, lanes: lanes) - offset)
            VectorExp.store(e, z, i, lanes: lanes)
            if lanes == 16 { sum += Double(e.sum()) } else { for j in 0..<lanes { sum += Double(e[j]) } }
        }
        let factor = VectorExp.Vector(repeating: scale * Float(1 / sum))
        VectorExp.blocks(0..<count) { i, lanes in
            VectorExp.store(VectorExp.load(z, i, lanes: lanes) * factor, z, i, lanes: lanes)
        }
        z[target] -= scale
        return Double(maxValue - targetLogit) + log(sum)
    }

    /// max of `count` floats, 16 lanes at a time.
    @inline(__always)
    static func maximum(_ z: UnsafePointer<Float>, count: Int) -> Float {
        var lanes = VectorExp.Vector(repeating: -.infinity)
        var i = 0
        while i + 16 <= count {
            let v = UnsafeRawPointer(z + i).loadUnaligned(as: VectorExp.Vector.self)
            lanes = lanes.replacing(with: v, where: v .> lanes)
            i += 16
        }
        var result = lanes.max()
        while i < count { result = max(result, z[i]); i += 1 }
        return result
    }

    /// (max z, log Σ exp(z − max)) with the sum in Double, so a 49k-entry row keeps full precision.
    static func logSumExpParts(_ z: UnsafePointer<Float>, count: Int) -> (max: Float, logSum: Double) {
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, z[i]) }
        var sum = 0.0
        let offset = VectorExp.Vector(repeating: maxValue)
        VectorExp.blocks(0..<count) { i, lanes in
            let e = VectorExp.exp(VectorExp.load(z, i, lanes: lanes) - offset)
            if lanes == 16 { sum += Double(e.sum()) } else { for j in 0..<lanes { sum += Double(e[j]) } }
        }
        return (maxValue, log(sum))
    }

    static func logSumExpRow(_ z: UnsafePointer<Float>, count: Int) -> Double {
        let (maxValue, logSum) = logSumExpParts(z, count: count)
        return Double(maxValue) + logSum
    }
}
