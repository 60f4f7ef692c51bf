import ForgeCore
import Foundation
import TensorMath

/// How the next token is chosen from the logits. Defaults are greedy.
public struct SamplingOptions: Sendable, Equatable {
    /// 0 = greedy (argmax, first on ties); otherwise logits are divided by it.
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int
    /// Nucleus: keep the smallest most-likely set whose probability reaches top_p (1 = off).
    public var topP: Float
    /// Drop tokens below min_p × the top token's probability (0 = off).
    public var minP: Float
    /// CTRL / transformers repetition penalty over the prompt and generated ids (1 = off).
    public var repetitionPenalty: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    public static let greedy = SamplingOptions()

    /// Bad values are a usage error (the server turns it into a 400).
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0 else { throw ForgeError(.usage, "temperature must be ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw ForgeError(.usage, "top_k must be ≥ 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw ForgeError(.usage, "top_p must be in (0, 1], got \(topP)") }
        guard minP >= 0, minP < 1 else { throw ForgeError(.usage, "min_p must be in [0, 1), got \(minP)") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { throw ForgeError(.usage, "repetition_penalty must be > 0, got \(repetitionPenalty)") }
    }
}

/// Draws tokens with a seeded generator: the same seed, logits and options give the same ids.
public struct Sampler {
    public let options: SamplingOptions
    /// Structured output: tokens it does not allow get -inf before any other filter (so greedy
    /// picks the best allowed token), and it advances past every token drawn.
    public let constraint: TokenConstraint?
    private var random: SeededRandom

    public init(_ options: SamplingOptions, constraint: TokenConstraint? = nil) {
        self.options = options
        self.constraint = constraint
        random = SeededRandom(seed: options.seed, key: "sampler")
    }

    /// The next token id. `history` (prompt + generated ids) feeds the repetition penalty.
    public mutating func next(logits input: [Float], history: [Int] = []) -> Int {
        guard let constraint else { return choose(input, history: history) }
        var logits = input
        constraint.mask(&logits)
        let id = choose(logits, history: history)
        constraint.accept(id)
        return id
    }

    private mutating func choose(_ input: [Float], history: [Int]) -> Int {
        var logits = input
        if options.repetitionPenalty != 1 {
            let p = options.repetitionPenalty
            for id in Set(history) where id >= 0 && id < logits.count {
                logits[id] = logits[id] > 0 ? logits[id] / p : logits[id] * p
            }
        }
        if options.temperature == 0 { return Sampler.argmax(logits) }
        return logits.withUnsafeBufferPointer { draw($0) }
    }

    /// Index of the largest value (first on ties, like torch.argmax).
    public static func argmax(_ values: [Float]) -> Int {
        values.withUnsafeBufferPointer { v in
            var best = 0
            for i in 1..<v.count where v[i] > v[best] { best = i }
            return best
        }
    }

    /// Temperature → softmax → top-k / top-p / min-p filters → one draw over what is left.
    private mutating func draw(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let probs = Sampler.softmax(logits, temperature: options.temperature)
        let top = probs.max() ?? 1
        if options.topK == 0 && options.topP >= 1 && options.minP == 0 {
            return pick(probs.indices, probs: probs)
        }
        if options.topK == 0 && options.minP == 0 {  // top-p alone: what OpenAI clients send
            return pick(Sampler.nucleus(probs, mass: options.topP), probs: probs)
        }
        // Candidates, most likely first. Sorting the whole vocabulary each step would cost more than
        // a decode step, so only tokens above a threshold are sorted, and the threshold is lowered
        // until the kept set provably contains everything the filters keep.
        var threshold = top * 1e-3
        var candidates: [Int]
        var complete = false  // the kept set holds every token the top-k / min-p filters keep
        while true {
            candidates = Sampler.descending(probs, atLeast: threshold)
            let enoughForK = options.topK == 0 ? threshold == 0 : candidates.count >= options.topK
            var mass: Float = 0
            for id in candidates { mass += probs[id] }
            let enoughForP = options.topP < 1 && mass >= options.topP
            let enoughForMinP = options.minP > 0 && threshold <= options.minP * top
            complete = enoughForK || enoughForMinP || threshold == 0
            if complete || enoughForP { break }
            threshold = threshold > 1e-12 ? threshold * 1e-3 : 0
        }
        if options.topK > 0, candidates.count > options.topK { candidates.removeSubrange(options.topK...) }
        if options.minP > 0 {
            let floor = options.minP * top
            candidates = candidates.filter { probs[$0] >= floor }
        }
        if options.topP < 1 {
            // transformers applies top-p to the distribution renormalized after top-k / min-p.
            var denominator: Float = 1
            if complete && (options.topK > 0 || options.minP > 0) { denominator = candidates.reduce(0) { $0 + probs[$1] } }
            let target = options.topP * denominator
            var mass: Float = 0
            var keep = 0
            for id in candidates {
                keep += 1
                mass += probs[id]
                if mass >= target { break }
            }
            candidates.removeSubrange(keep...)
        }
        return pick(candidates, probs: probs)
    }

    /// softmax(logits / T), 16 lanes at a time (`VectorExp`, within 1 ulp of expf; the scalar
    /// loop over a 49,152-token vocabulary cost ~0.3 ms per sampled token, a tenth of a batched
    /// 8-sequence step per sequence), the sum in Double. Masked (−∞) logits get exactly 0.
    static func softmax(_ logits: UnsafeBufferPointer<Float>, temperature: Float) -> [Float] {
        typealias V = SIMD16<Float>
        let count = logits.count, inverseT = 1 / temperature
        var maxLogit = -Float.infinity
        for v in logits { maxLogit = max(maxLogit, v) }
        var probs = [Float](repeating: 0, count: count)
        var total = 0.0
        probs.withUnsafeMutableBufferPointer { out in
            let source = UnsafeRawPointer(logits.baseAddress!), target = UnsafeMutableRawPointer(out.baseAddress!)
            let shift = V(repeating: maxLogit), factor = V(repeating: inverseT), masked = V(repeating: -.infinity)
            var i = 0
            while i + 16 <= count {
                let x = source.loadUnaligned(fromByteOffset: 4 * i, as: V.self)
                let e = VectorExp.exp((x - shift) * factor).replacing(with: 0, where: x .== masked)
                target.storeBytes(of: e, toByteOffset: 4 * i, as: V.self)
                total += Double(e.sum())
                i += 16
            }
            while i < count {
                let e = logits[i] == -.infinity ? 0 : expf((logits[i] - maxLogit) * inverseT)
                out[i] = e
                total += Double(e)
                i += 1
            }
            let scale = Float(1 / total)
            for j in 0..<count { out[j] *= scale }
        }
        return probs
    }

    /// The top-p set without sorting the vocabulary: the smallest set of most likely ids (ties by
    /// lower id) whose mass reaches `mass` — the ids a full descending sort would keep. One pass
    /// buckets the probabilities by their Float bits (exponent + 3 mantissa bits, so a bucket holds
    /// values within 12.5 % of each other and every id of a higher bucket is more likely than any
    /// of a lower one), a scan from the top finds the bucket where the mass is reached, and only
    /// that bucket is sorted. Order of the result: the buckets above in id order, then the
    /// boundary bucket most likely first (the draw's distribution does not depend on the order).
    /// A flat distribution passed tens of thousands of ids to a full sort per sampled token.
    static func nucleus(_ probs: [Float], mass target: Float) -> [Int] {
        let buckets = 1024  // p ≤ 1: bits >> 20 ≤ 0x3F8
        var bucketMass = [Double](repeating: 0, count: buckets)
        probs.withUnsafeBufferPointer { p in
            for i in 0..<p.count where p[i] > 0 { bucketMass[Int(p[i].bitPattern >> 20)] += Double(p[i]) }
        }
        var above = 0.0, boundary = 0
        for b in stride(from: buckets - 1, through: 0, by: -1) where bucketMass[b] > 0 {
            boundary = b
            if above + bucketMass[b] >= Double(target) { break }
            above += bucketMass[b]
        }
        var kept: [Int] = [], edge: [UInt64] = []
        probs.withUnsafeBufferPointer { p in
            for i in 0..<p.count where p[i] > 0 {
                let b = Int(p[i].bitPattern >> 20)
                if b > boundary { kept.append(i) } else if b == boundary { edge.append(UInt64(p[i].bitPattern) << 32 | UInt64(UInt32.max - UInt32(i))) }
            }
        }
        edge.sort(by: >)
        var total = above
        for key in edge {
            let id = Int(UInt32.max - UInt32(truncatingIfNeeded: key))
            kept.append(id)
            total += Double(probs[id])
            if total >= Double(target) { break }
        }
        return kept
    }

    /// Ids with 0 < p ≥ `threshold`, most likely first, ties by lower id. Sorted as one UInt64 key
    /// per id (a positive Float's bits order like its value; the low half is the inverted id), not
    /// by a comparator reading `probs` twice per comparison: with a flat distribution thousands of
    /// ids pass and that sort was ~5 % of a batched step per sampled sequence.
    static func descending(_ probs: [Float], atLeast threshold: Float) -> [Int] {
        var keys: [UInt64] = []
        probs.withUnsafeBufferPointer { p in
            for i in 0..<p.count where p[i] >= threshold && p[i] > 0 {
                keys.append(UInt64(p[i].bitPattern) << 32 | UInt64(UInt32.max - UInt32(i)))
            }
        }
        keys.sort(by: >)
        return keys.map { Int(UInt32.max - UInt32(truncatingIfNeeded: $0)) }
    }

    /// One draw proportional to `probs` over `ids`.
    private mutating func pick<C: Collection>(_ ids: C, probs: [Float]) -> Int where C.Element == Int {
        var kept: Double = 0
        for id in ids { kept += Double(probs[id]) }
        let u = Double(random.next() >> 11) / Double(1 << 53) * kept
        var cumulative = 0.0
        var last = -1
        for id in ids {
            cumulative += Double(probs[id])
            if probs[id] > 0 { last = id }  // never a masked (zero-probability) token
            if u < cumulative { return id }
        }
        return last >= 0 ? last : (ids.first ?? 0)
    }
}
