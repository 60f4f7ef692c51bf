/// MinHash signatures and LSH band hashes.
///
/// Permutation i is h_i(x) = (a_i · x + b_i) mod (2^61 − 1), with a_i, b_i drawn from a fixed
/// seed; the signature keeps min_i over the shingles. `bands × rows` must equal the number of
/// permutations; with 16 × 8 a pair of Jaccard s becomes a candidate with probability
/// 1 − (1 − s^8)^16: ≈ 0.95 at s = 0.8, ≈ 0.998 at 0.9, ≈ 0.06 at 0.5 (threshold ≈ (1/16)^(1/8) ≈ 0.71).
public struct MinHasher: Sendable {
    public static let prime: UInt64 = (1 << 61) - 1
    public let permutations: Int
    public let bands: Int
    public let rows: Int
    let a: [UInt64]
    let b: [UInt64]

    public init(bands: Int = 16, rows: Int = 8, seed: UInt64 = 0x4d696e48617368) {
        precondition(bands > 0 && rows > 0)
        self.bands = bands
        self.rows = rows
        permutations = bands * rows
        var state = seed
        func next() -> UInt64 { state &+= 0x9e3779b97f4a7c15; return TextTokens.mix(state) }
        var a: [UInt64] = [], b: [UInt64] = []
        for _ in 0..<permutations {
            a.append(next() % (MinHasher.prime - 1) + 1)
            b.append(next() % MinHasher.prime)
        }
        self.a = a
        self.b = b
    }

    /// x mod (2^61 − 1) for any 64-bit x.
    @inline(__always) static func reduce(_ x: UInt64) -> UInt64 {
        let r = (x & prime) &+ (x >> 61)
        return r >= prime ? r - prime : r
    }

    /// (a · x) mod (2^61 − 1) for a, x < 2^61.
    @inline(__always) static func mulMod(_ a: UInt64, _ x: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: x)
        let r = (lo & prime) &+ ((lo >> 61) | (hi << 3))
        return r >= prime ? r - prime : r
    }

    /// Fills `signature` (count = permutations) with the MinHash of `shingles`.
    public func signature(of shingles: UnsafeBufferPointer<UInt64>, into signature: UnsafeMutableBufferPointer<UInt64>) {
        let p = permutations
        for i in 0..<p { signature[i] = UInt64.max }
        guard !shingles.isEmpty else { return }
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for s in shingles {
                    let x = Self.reduce(s)
                    for i in 0..<p {
                        var v = Self.mulMod(pa[i], x) &+ pb[i]
                        if v >= Self.prime { v -= Self.prime }
                        if v < signature[i] { signature[i] = v }
                    }
                }
            }
        }
    }

    /// One hash per band of `rows` consecutive signature values.
    public func bandHashes(of signature: UnsafeBufferPointer<UInt64>, into out: UnsafeMutableBufferPointer<UInt64>) {
        for band in 0..<bands {
            var h = UInt64(band) &* 0x9e3779b97f4a7c15
            for r in 0..<rows { h = TextTokens.mix(h ^ signature[band * rows + r]) }
            out[band] = h
        }
    }

    /// Convenience: band hashes of a shingle set.
    public func bandHashes(of shingles: [UInt64]) -> [UInt64] {
        var sig = [UInt64](repeating: 0, count: permutations)
        var out = [UInt64](repeating: 0, count: bands)
        shingles.withUnsafeBufferPointer { s in
            sig.withUnsafeMutableBufferPointer { sg in
                signature(of: s, into: sg)
                out.withUnsafeMutableBufferPointer { o in bandHashes(of: UnsafeBufferPointer(sg), into: o) }
            }
        }
        return out
    }
}
