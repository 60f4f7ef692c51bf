/// Byte-level text helpers shared by the filters and dedup: lowercase ASCII words (non-ASCII
/// bytes stay inside words, so UTF-8 letters are never split), 64-bit hashing, normalization.
public enum TextTokens {
    /// True for bytes that belong to a word: ASCII letters and digits, and every non-ASCII byte.
    @inline(__always) static func isWordByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b >= 0x80
    }

    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b }

    /// Lowercased words, punctuation dropped ("Isn't it?" → ["isn", "t", "it"]).
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var current: [UInt8] = []
        for b in text.utf8 {
            if isWordByte(b) { current.append(lower(b)) } else if !current.isEmpty {
                out.append(String(decoding: current, as: UTF8.self)); current.removeAll(keepingCapacity: true)
            }
        }
        if !current.isEmpty { out.append(String(decoding: current, as: UTF8.self)) }
        return out
    }

    /// The form used for exact-duplicate hashing: lowercase, punctuation stripped, whitespace
    /// collapsed to single spaces, trimmed.
    public static func normalized(_ text: String) -> String { words(text).joined(separator: " ") }

    /// 64-bit finalizer (SplitMix64's): a bijection with full avalanche.
    @inline(__always) public static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e3779b97f4a7c15
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }

    /// 64-bit hash of bytes, seeded (8 bytes at a time, then the tail).
    public static func hash64(_ bytes: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        var h = mix(seed ^ UInt64(bytes.count))
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = mix(h ^ w) &* 0x2127599bf4325c37
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(bytes[i]) << shift; shift += 8; i += 1 }
        return mix(h ^ tail ^ 0x880355f21e6d1965)
    }

    public static func hash64(_ s: String, seed: UInt64 = 0) -> UInt64 {
        var copy = s
        return copy.withUTF8 { hash64(UnsafeRawBufferPointer($0), seed: seed) }
    }

    /// 128-bit hex digest of the normalized text (two differently seeded and multiplied 64-bit
    /// hashes), streamed over the bytes: no intermediate strings.
    public static func normalizedHash(_ text: String) -> String {
        var a: UInt64 = 0xcbf29ce484222325, b: UInt64 = 0x6a09e667f3bcc908
        var copy = text
        copy.withUTF8 { bytes in
            var pendingSpace = false
            var started = false
            for byte in bytes {
                if isWordByte(byte) {
                    if pendingSpace && started {
                        a = (a ^ 0x20) &* 0x100000001b3; b = (b ^ 0x20) &* 0x9E3779B97F4A7C15
                    }
                    pendingSpace = false
                    started = true
                    let l = UInt64(lower(byte))
                    a = (a ^ l) &* 0x100000001b3
                    b = (b ^ l) &* 0x9E3779B97F4A7C15
                } else {
                    pendingSpace = true
                }
            }
        }
        return hex(mix(a)) + hex(mix(b ^ 0x5157_4c41_5641_0002))
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
