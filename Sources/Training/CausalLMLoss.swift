import Foundation
import TensorMath

/// Next-token cross-entropy as transformers' `ForCausalLMLoss`: logits row t predicts
/// `labels[t + 1]`, labels of −100 are ignored, and the batch loss is the sum of token losses
/// divided by the number of counted tokens in the whole (possibly accumulated) batch.
public enum CausalLMLoss {
    public static let ignoreIndex = -100

    /// Tokens that count towards the loss in a sequence's labels (after the shift).
    public static func countedTargets(labels: [Int]) -> Int {
        labels.dropFirst().reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
    }

    /// The result of one sequence's fused loss.
    public struct Result: Sendable {
        /// Σ −log p(target) over counted positions (not divided by anything).
        public var lossSum: Double
        public var counted: Int
    }

    /// Fused forward + backward over logits `[T, V]`, in place: on return the buffer holds
    /// dlogits = scale · (softmax − onehot(target)) on counted rows and 0 elsewhere, where `scale`
    /// is d(batch loss)/d(token loss) — 1/(counted tokens in the batch) for HF's mean.
    /// Rows run in parallel; each row's log-sum-exp is accumulated in Double.
    public static func forwardBackward(
        logitsInPlace logits: UnsafeMutablePointer<Float>,
        labels: [Int], vocab: Int, scale: Float
    ) -> Result {
        OpProfile.measure("loss") { fusedLoss(logits, labels: labels, vocab: vocab, scale: scale) }
    }

    private static func fusedLoss(_ logits: UnsafeMutablePointer<Float>, labels: [Int], vocab: Int, scale: Float) -> Result {
        let t = labels.count
        precondition(labels.allSatisfy { $0 == ignoreIndex || ($0 >= 0 && $0 < vocab) }, "CausalLMLoss: label outside the vocabulary")
        let losses = UnsafeMutablePointer<Double>.allocate(capacity: t)
        defer { losses.deallocate() }
        losses.initialize(repeating: 0, count: t)
        labels.withUnsafeBufferPointer { labelPointer in
            let targets = labelPointer.baseAddress!
            Parallel.forEachRow(t, rowWork: vocab * 6) { row in
                let z = logits + row * vocab
                let target = row + 1 < t ? targets[row + 1] : ignoreIndex
                guard target != ignoreIndex else {
                    z.update(repeating: 0, count: vocab)
                    return
                }
                losses[row] = CrossEntropy.fusedRowInPlace(z, count: vocab, target: target, scale: scale)
            }
        }
        var total = 0.0
        for row in 0..<t { total += losses[row] }
        return Result(lossSum: total, counted: countedTargets(labels: labels))
    }
}
