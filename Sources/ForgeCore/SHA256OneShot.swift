/// SHA-256 of a whole byte array as lowercase hex, in one pass with fixed-size state and no
/// per-byte appends or per-block allocations: what `SHA256.hex` uses (request cache keys — planning
/// hashes 158K bodies of ~6 KB — and fingerprints). The incremental `SHA256` stays for streams.
public enum SHA256OneShot {
    typealias State = (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
    static let initialState: State = (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)

    static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public static func hex(_ bytes: [UInt8]) -> String {
        var state = initialState
        var w = [UInt32](repeating: 0, count: 64)
        var tail = [UInt8](repeating: 0, count: 128)
        let count = bytes.count
        let fullBlocks = count / 64
        k.withUnsafeBufferPointer { kp in
            w.withUnsafeMutableBufferPointer { wp in
                bytes.withUnsafeBufferPointer { src in
                    for block in 0..<fullBlocks {
                        compress(UnsafeBufferPointer(rebasing: src[(block * 64)..<(block * 64 + 64)]), &state, wp, kp)
                    }
                    // Padding: the leftover bytes, 0x80, zeros, the bit length (big-endian) —
                    // one or two more blocks.
                    let left = count - fullBlocks * 64
                    tail.withUnsafeMutableBufferPointer { tp in
                        for i in 0..<left { tp[i] = src[fullBlocks * 64 + i] }
                        tp[left] = 0x80
                        let padded = left + 1 + 8 <= 64 ? 64 : 128
                        let bits = UInt64(count) &* 8
                        for i in 0..<8 { tp[padded - 1 - i] = UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8)) }
                        let done = UnsafeBufferPointer(tp)
                        compress(UnsafeBufferPointer(rebasing: done[0..<64]), &state, wp, kp)
                        if padded == 128 { compress(UnsafeBufferPointer(rebasing: done[64..<128]), &state, wp, kp) }
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: 64)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        withUnsafeBytes(of: state) { raw in
            let words = raw.bindMemory(to: UInt32.self)
            for i in 0..<8 {
                let v = words[i]
                for j in 0..<4 {
                    let byte = UInt8(truncatingIfNeeded: v >> UInt32(24 - 8 * j))
                    out[i * 8 + j * 2] = digits[Int(byte >> 4)]
                    out[i * 8 + j * 2 + 1] = digits[Int(byte & 0xF)]
                }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// One 64-byte block into `state`; `w` is 64 words of scratch. Shared with the streaming `SHA256`.
    static func compress(_ block: UnsafeBufferPointer<UInt8>,
                                 _ state: inout State,
                                 _ w: UnsafeMutableBufferPointer<UInt32>, _ k: UnsafeBufferPointer<UInt32>) {
        for i in 0..<16 {
            w[i] = UInt32(block[4 * i]) << 24 | UInt32(block[4 * i + 1]) << 16 | UInt32(block[4 * i + 2]) << 8 | UInt32(block[4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = state
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = h &+ s1 &+ ch &+ k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            h = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        state = (state.0 &+ a, state.1 &+ b, state.2 &+ c, state.3 &+ d, state.4 &+ e, state.5 &+ f, state.6 &+ g, state.7 &+ h)
    }
}
