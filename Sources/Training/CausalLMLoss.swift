import Foundation
import TensorMath

/// Next-token cross-entropy as transformers' `ForCausalLMLoss`: logits row t predicts
/// `labels[t + 1]`, labels of −100 are ignored, and the batch loss is the sum of token losses
/// divided by the number of counted tokens in the whole (possibly accumulated) batch.
public enum CausalLMLoss {
    public static let ignoreIndex = -100

    /// Positions whose next-token label counts (t with labels[t + 1] ≠ −100): the only rows that
    /// need logits. Ascending.
    public static func predictingPositions(labels: [Int]) -> [Int] {
        labels.count < 2 ? [] : (0..<(labels.count - 1)).filter { labels[$0 + 1] != ignoreIndex }
    }

    /// Fused forward + backward over compact logits `[R, V]`, row r predicting `targets[r]` (every
    /// row counted): on return the buffer holds scale · (softmax − onehot). Rows run in parallel.
    public static func forwardBackward(logitsInPlace logits: UnsafeMutablePointer<Float>, targets: [Int], vocab: Int, scale: Float) -> Result {
        OpProfile.measure("loss") {
            precondition(targets.allSatisfy { $0 >= 0 && $0 < vocab }, "CausalLMLoss: target outside the vocabulary")
            let rows = targets.count
            let losses = UnsafeMutablePointer<Double>.allocate(capacity: max(1, rows))
            defer { losses.deallocate() }
            targets.withUnsafeBufferPointer { t in
                Parallel.forEachRow(rows, rowWork: vocab * 6) { row in
                    losses[row] = CrossEntropy.fusedRowInPlace(logits + row * vocab, count: vocab, target: t[row], scale: scale)
                }
            }
            var total = 0.0
            for row in 0..<rows { total += losses[row] }
            return Result(lossSum: total, counted: rows)
        }
    }

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
