/// Per-code-point character classes used by the pre-tokenizer matchers, normalizers and added-token
/// rules. The classes follow the Unicode general categories (Oniguruma's `\p{L}`, `\p{N}`, … in HF
/// `tokenizers`) and the `White_Space` property (Oniguruma's and Rust's `\s` / `char::is_whitespace`).
///
/// The Basic Multilingual Plane is looked up in a 64 K table built once from the standard library's
/// Unicode data; other planes ask the standard library each time (rare in practice).
enum CharClass {
    static let letter: UInt8 = 1 << 0        // \p{L}
    static let number: UInt8 = 1 << 1        // \p{N}
    static let whitespace: UInt8 = 1 << 2    // \s (White_Space)
    static let decimal: UInt8 = 1 << 3       // \p{Nd}
    static let mark: UInt8 = 1 << 4          // \p{M}
    static let punctuation: UInt8 = 1 << 5   // \p{P}
    static let symbol: UInt8 = 1 << 6        // \p{S}
    static let connector: UInt8 = 1 << 7     // \p{Pc}

    static let bmp: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 { table[v] = compute(UInt32(v)) }
        return table
    }()

    static func compute(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return 0 }
        let p = s.properties
        var bits: UInt8 = 0
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: bits |= letter
        case .decimalNumber: bits |= number | decimal
        case .letterNumber, .otherNumber: bits |= number
        case .nonspacingMark, .spacingMark, .enclosingMark: bits |= mark
        case .connectorPunctuation: bits |= punctuation | connector
        case .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
             .otherPunctuation: bits |= punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol: bits |= symbol
        default: break
        }
        if p.isWhitespace { bits |= whitespace }
        return bits
    }

    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        if v < 0x10000 { return bmp[Int(v)] }
        return compute(v)
    }

    @inline(__always) static func isLetter(_ v: UInt32) -> Bool { of(v) & letter != 0 }
    @inline(__always) static func isNumber(_ v: UInt32) -> Bool { of(v) & number != 0 }
    @inline(__always) static func isWhitespace(_ v: UInt32) -> Bool {
        if v < 0x80 { return v == 0x20 || (v >= 0x09 && v <= 0x0D) }
        return of(v) & whitespace != 0
    }
    /// Regex `\w` (Unicode): letters, marks, decimal digits, connector punctuation.
    @inline(__always) static func isWord(_ v: UInt32) -> Bool { of(v) & (letter | mark | decimal | connector) != 0 }
}

extension Array where Element == UInt32 {
    init(scalarsOf s: String) {
        self.init()
        reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars { append(u.value) }
    }
}

extension String {
    init<C: Collection>(scalarValues: C) where C.Element == UInt32 {
        var out = String.UnicodeScalarView()
        for v in scalarValues { if let u = Unicode.Scalar(v) { out.append(u) } }
        self = String(out)
    }
}

/// UTF-8 encoding of scalar values.
@inline(__always)
func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    if v < 0x80 {
        out.append(UInt8(v))
    } else if v < 0x800 {
        out.append(UInt8(0xC0 | (v >> 6))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else if v < 0x10000 {
        out.append(UInt8(0xE0 | (v >> 12))); out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    } else {
        out.append(UInt8(0xF0 | (v >> 18))); out.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((v >> 6) & 0x3F))); out.append(UInt8(0x80 | (v & 0x3F)))
    }
}
