/// Open-addressing hash map from a token pair (left << 32 | right) to (rank << 32 | merged id):
/// the BPE inner loop's only lookup, several times faster than `Dictionary`'s SipHash.
struct PairRankTable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    private let shift: UInt64
    private(set) var count = 0
    private static let empty = UInt64.max

    init(capacity: Int) {
        var size = 16
        var bits: UInt64 = 4
        while size < capacity * 2 { size <<= 1; bits += 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        shift = 64 - bits
    }

    @inline(__always) private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Inserts or replaces.
    mutating func set(_ key: UInt64, _ value: UInt64) {
        var i = slot(key)
        while true {
            let k = keys[i]
            if k == key { values[i] = value; return }
            if k == Self.empty { keys[i] = key; values[i] = value; count += 1; return }
            i = (i + 1) & mask
        }
    }

    @inline(__always) func get(_ key: UInt64) -> UInt64? {
        keys.withUnsafeBufferPointer { k in
            var i = slot(key)
            while true {
                let stored = k[i]
                if stored == key { return values.withUnsafeBufferPointer { $0[i] } }
                if stored == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }
}
