import ForgeCore
import Foundation

/// Where a run is in its data: saved with every checkpoint so `--resume` continues the same order.
public struct DataOrderState: Codable, Sendable, Equatable {
    /// Optimizer step this state belongs to (the checkpoint's step).
    public var step: Int
    /// Epoch being read (0-based) and micro-batches of it already consumed.
    public var epoch: Int
    public var position: Int
    /// Seed of the per-epoch shuffles.
    public var seed: UInt64
    /// SHA-256 over the encoded sequences' lengths and token ids: a resume on other data is refused.
    public var dataFingerprint: String
    public init(step: Int, epoch: Int, position: Int, seed: UInt64, dataFingerprint: String) {
        self.step = step; self.epoch = epoch; self.position = position; self.seed = seed; self.dataFingerprint = dataFingerprint
    }
}

/// LLaVA's `group_by_modality_length` idea for a token budget: per epoch, image and text-only
/// sequences are shuffled separately (seeded by seed + epoch), cut into mega-batches, each sorted
/// by length (longest first) and packed greedily into batches of at most `batchTokens` tokens (a
/// longer sequence goes alone); then the batches of both modalities are shuffled together. Similar
/// lengths share a batch (the trainer reuses activation buffers per length) and the order is a
/// pure function of (lengths, modality, seed, epoch).
public struct LengthGroupedBatcher: Sendable {
    public let lengths: [Int]
    public let hasImage: [Bool]
    public let batchTokens: Int
    public let seed: UInt64
    /// Batches per mega-batch (LLaVA: world size × per-device batch).
    public var megaBatchBatches = 8

    public init(lengths: [Int], hasImage: [Bool], batchTokens: Int, seed: UInt64) {
        precondition(lengths.count == hasImage.count)
        self.lengths = lengths
        self.hasImage = hasImage
        self.batchTokens = max(1, batchTokens)
        self.seed = seed
    }

    /// The micro-batches of `epoch`, each a list of sequence indices.
    public func batches(epoch: Int) -> [[Int]] {
        var random = SeededRandom(seed: seed, key: "data-order/epoch \(epoch)")
        var all: [[Int]] = []
        for modality in [true, false] {
            var indices = lengths.indices.filter { hasImage[$0] == modality }
            indices.shuffle(using: &random)
            var start = 0
            while start < indices.count {
                // A mega-batch: as many sequences as fill `megaBatchBatches` budgets.
                var end = start, tokens = 0
                while end < indices.count, end == start || tokens + lengths[indices[end]] <= batchTokens * megaBatchBatches {
                    tokens += lengths[indices[end]]
                    end += 1
                }
                let mega = indices[start..<end].sorted { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }
                var batch: [Int] = [], used = 0
                for i in mega {
                    if !batch.isEmpty, used + lengths[i] > batchTokens {
                        all.append(batch)
                        batch = []
                        used = 0
                    }
                    batch.append(i)
                    used += lengths[i]
                }
                if !batch.isEmpty { all.append(batch) }
                start = end
            }
        }
        all.shuffle(using: &random)
        return all
    }
}

/// Reads micro-batches in order across epochs, remembering where it is.
public final class DataCursor {
    public let batcher: LengthGroupedBatcher
    public let gradientAccumulation: Int
    public private(set) var epoch: Int
    public private(set) var position: Int
    private var cached: (epoch: Int, batches: [[Int]])?

    public init(batcher: LengthGroupedBatcher, gradientAccumulation: Int, epoch: Int = 0, position: Int = 0) {
        self.batcher = batcher
        self.gradientAccumulation = max(1, gradientAccumulation)
        self.epoch = epoch
        self.position = position
    }

    func batches(_ e: Int) -> [[Int]] {
        if let cached, cached.epoch == e { return cached.batches }
        let made = batcher.batches(epoch: e)
        cached = (e, made)
        return made
    }

    /// Optimizer steps in one epoch (a step never spans two epochs; the last one may be short).
    public var stepsPerEpoch: Int { (batches(0).count + gradientAccumulation - 1) / gradientAccumulation }

    /// The micro-batches of the next optimizer step.
    public func nextStep() -> (epoch: Int, microBatches: [[Int]]) {
        var list = batches(epoch)
        if position >= list.count {
            epoch += 1
            position = 0
            list = batches(epoch)
        }
        let end = min(list.count, position + gradientAccumulation)
        let taken = Array(list[position..<end])
        let stepEpoch = epoch
        position = end
        return (stepEpoch, taken)
    }
}
