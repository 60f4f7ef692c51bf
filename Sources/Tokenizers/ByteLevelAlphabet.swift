/// GPT-2's reversible byte ↔ character map (`bytes_to_unicode`): the printable bytes `!`…`~`,
/// `¡`…`¬`, `®`…`ÿ` stand for themselves; the other 68 bytes (controls, space, DEL, NBSP, soft
/// hyphen, …) map in byte order to U+0100, U+0101, …, so every byte string becomes printable text
/// and BPE never sees a raw space or control character.
enum ByteLevelAlphabet {
    /// byte → scalar value.
    static let scalarOfByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if isSelfMapped(b) { table[b] = UInt32(b) } else { table[b] = next; next += 1 }
        }
        return table
    }()

    /// scalar value (< 512) → byte, or -1 when the scalar is not part of the alphabet.
    static let byteOfScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 512)
        for (b, s) in scalarOfByte.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    @inline(__always) static func isSelfMapped(_ b: Int) -> Bool {
        (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
    }

    /// The bytes a byte-level token stands for, or nil when a character is outside the alphabet
    /// (added tokens such as `<|im_start|>` are plain text and decode to their own UTF-8).
    static func bytes(ofToken token: String, into out: inout [UInt8]) -> Bool {
        let mark = out.count
        for u in token.unicodeScalars {
            let v = Int(u.value)
            guard v < 512, byteOfScalar[v] >= 0 else { out.removeSubrange(mark...); return false }
            out.append(UInt8(byteOfScalar[v]))
        }
        return true
    }
}
