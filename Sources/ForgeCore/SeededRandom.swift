/// Deterministic PRNG (SplitMix64). Every random choice the data path makes — which instruction a
/// detail sample gets, where `<image>` goes, which images a type samples — draws from one of these,
/// seeded from the run seed and the item's identity, so reruns and resumes make the same choices.
public struct SeededRandom: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator derived from a seed and a string key (e.g. "detail/391895"), independent of order.
    public init(seed: UInt64, key: String) {
        var h: UInt64 = 0xcbf29ce484222325  // FNV-1a over the key, mixed with the seed
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        state = seed ^ h
        _ = next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}
