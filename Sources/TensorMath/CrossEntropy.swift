import Foundation

/// Token-level cross-entropy over logits, mean over targets that are not `ignoreIndex`
/// (PyTorch's `F.cross_entropy(..., ignore_index=-100)`). Targets are already aligned with the
/// logits rows (the caller shifts labels for next-token prediction).
public enum CrossEntropy {
    public static let ignoreIndex = -100

    /// losses `[rows]` = −log softmax(logits)[target] (0 where ignored); returns the mean over the
    /// counted rows (0 when every row is ignored).
    @discardableResult
    public static func forward(
        losses: UnsafeMutablePointer<Float>,
        logits: UnsafePointer<Float>,
        targets: UnsafeBufferPointer<Int>,
        rows: Int, vocab: Int
    ) -> Float {
        precondition(targets.count == rows, "CrossEntropy: \(targets.count) targets for \(rows) rows")
        var total = 0.0, counted = 0
        for row in 0..<rows {
            let target = targets[row]
            if target == ignoreIndex { losses[row] = 0; continue }
            precondition(target >= 0 && target < vocab, "CrossEntropy: target \(target) outside 0..<\(vocab)")
            let z = logits + row * vocab
            let logSumExp = logSumExpRow(z, count: vocab)
            let loss = logSumExp - Double(z[target])
            losses[row] = Float(loss)
            total += loss
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
        let scale = Double(dloss) / Double(counted)
        for row in 0..<rows {
            let target = targets[row]
            if target == ignoreIndex { continue }
            let z = logits + row * vocab, dz = dlogits + row * vocab
            let logSumExp = logSumExpRow(z, count: vocab)
            for i in 0..<vocab {
                let p = exp(Double(z[i]) - logSumExp)
                dz[i] += Float(scale * (p - (i == target ? 1 : 0)))
            }
        }
    }

    static func logSumExpRow(_ z: UnsafePointer<Float>, count: Int) -> Double {
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, z[i]) }
        var sum = 0.0
        for i in 0..<count { sum += Double(expf(z[i] - maxValue)) }
        return Double(maxValue) + log(sum)
    }
}
