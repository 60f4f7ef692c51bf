import Foundation

/// LSH buckets: for every band, band hash → chain of items. Chains are flat arrays (no array
/// per bucket), so 158K items × 16 bands are a few tens of MB.
public final class LSHIndex {
    public let bands: Int
    private var heads: [[UInt64: Int32]]
    private var nextEntry: [Int32] = []
    private var entryItem: [Int64] = []
    public private(set) var count = 0

    public init(bands: Int) {
        self.bands = bands
        heads = Array(repeating: [:], count: bands)
    }

    public func insert(id: Int64, bandHashes: UnsafeBufferPointer<UInt64>) {
        precondition(bandHashes.count == bands)
        for band in 0..<bands {
            let e = Int32(entryItem.count)
            entryItem.append(id)
            nextEntry.append(heads[band][bandHashes[band]] ?? -1)
            heads[band][bandHashes[band]] = e
        }
        count += 1
    }

    /// Ids sharing at least one band with `bandHashes`, each once, in first-seen order.
    public func candidates(_ bandHashes: UnsafeBufferPointer<UInt64>) -> [Int64] {
        var out: [Int64] = []
        for band in 0..<bands {
            var e = heads[band][bandHashes[band]] ?? -1
            while e >= 0 {
                let id = entryItem[Int(e)]
                if !out.contains(id) { out.append(id) }
                e = nextEntry[Int(e)]
            }
        }
        return out
    }
}

public struct NearDuplicateConfig: Sendable, Equatable {
    public var shingles = ShingleConfig()
    public var bands = 16
    public var rows = 8
    /// A candidate is a duplicate only if the exact Jaccard of the shingle sets is ≥ this.
    public var threshold = 0.7
    public init() {}
}

/// The texts one sample contributes to dedup.
public struct DedupText: Sendable {
    public var id: Int64
    public var questions: [String]
    public var answers: [String]
    public init(id: Int64, questions: [String], answers: [String]) { self.id = id; self.questions = questions; self.answers = answers }
}

public enum DedupVerdict: Equatable, Sendable {
    case kept
    case duplicate(of: Int64, jaccard: Double)
}

/// MinHash-LSH near-duplicate detection with exact confirmation: band hashes are computed on all
/// cores; then items are decided in the order given (earlier items win): an item whose LSH
/// candidates include one with exact shingle Jaccard ≥ threshold is a duplicate of the most
/// similar one (lowest id on ties), otherwise it is kept and indexed.
public final class NearDuplicateDetector {
    public let config: NearDuplicateConfig
    public let hasher: MinHasher
    public let shingler: Shingler
    public let index: LSHIndex
    /// Shingle sets of indexed items, kept only when an item was needed for a confirmation.
    private var shingleCache: [Int64: [UInt64]] = [:]
    /// Candidate pairs checked by exact Jaccard, and how many were confirmed.
    public private(set) var candidatesChecked = 0
    public private(set) var confirmed = 0

    public init(config: NearDuplicateConfig = NearDuplicateConfig()) {
        self.config = config
        hasher = MinHasher(bands: config.bands, rows: config.rows)
        shingler = Shingler(config: config.shingles)
        index = LSHIndex(bands: config.bands)
    }

    /// Registers an item kept earlier (e.g. a previous run's, with its stored band hashes).
    public func addKnown(id: Int64, bandHashes: [UInt64]) {
        bandHashes.withUnsafeBufferPointer { index.insert(id: id, bandHashes: $0) }
    }

    /// Band hashes of every item (`items.count × bands`, row-major), computed on all cores.
    public func bandHashes(_ items: [DedupText]) -> [UInt64] {
        let n = items.count, nb = config.bands, np = hasher.permutations
        var out = [UInt64](repeating: 0, count: n * nb)
        guard n > 0 else { return out }
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, (n + 63) / 64))
        out.withUnsafeMutableBufferPointer { dst in
            let base = dst.baseAddress!
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let sig = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: np)
                defer { sig.deallocate() }
                var i = w
                while i < n {
                    let sh = shingler.shingles(questions: items[i].questions, answers: items[i].answers)
                    sh.withUnsafeBufferPointer { hasher.signature(of: $0, into: sig) }
                    hasher.bandHashes(of: UnsafeBufferPointer(sig), into: UnsafeMutableBufferPointer(start: base + i * nb, count: nb))
                    i += workers
                }
            }
        }
        return out
    }

    /// Decides `items` in order against everything indexed so far and each other.
    /// `textOf` returns an already indexed item's texts (for confirming against earlier runs).
    public func decide(_ items: [DedupText], bandHashes: [UInt64], textOf: (Int64) -> DedupText?) -> [DedupVerdict] {
        let nb = config.bands
        precondition(bandHashes.count == items.count * nb)
        var verdicts: [DedupVerdict] = []
        verdicts.reserveCapacity(items.count)
        var current: [Int64: DedupText] = [:]
        bandHashes.withUnsafeBufferPointer { all in
            for (k, item) in items.enumerated() {
                let bands = UnsafeBufferPointer(rebasing: all[(k * nb)..<((k + 1) * nb)])
                let cands = index.candidates(bands)
                var best: (id: Int64, j: Double)?
                if !cands.isEmpty {
                    let mine = shingler.shingles(questions: item.questions, answers: item.answers)
                    for c in cands {
                        guard let theirs = shingles(of: c, current: current, textOf: textOf) else { continue }
                        candidatesChecked += 1
                        let j = Shingler.jaccard(mine, theirs)
                        if j >= config.threshold, best == nil || j > best!.j || (j == best!.j && c < best!.id) { best = (c, j) }
                    }
                }
                if let best {
                    confirmed += 1
                    verdicts.append(.duplicate(of: best.id, jaccard: best.j))
                } else {
                    index.insert(id: item.id, bandHashes: bands)
                    current[item.id] = item
                    verdicts.append(.kept)
                }
            }
        }
        return verdicts
    }

    private func shingles(of id: Int64, current: [Int64: DedupText], textOf: (Int64) -> DedupText?) -> [UInt64]? {
        if let s = shingleCache[id] { return s }
        guard let t = current[id] ?? textOf(id) else { return nil }
        let s = shingler.shingles(questions: t.questions, answers: t.answers)
        shingleCache[id] = s
        return s
    }
}
