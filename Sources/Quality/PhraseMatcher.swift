/// Case-insensitive phrase search on word boundaries over lowercased UTF-8 bytes.
/// "caption" as a prefix phrase matches "caption", "captions", "captioned" but not "recaption".
struct PhraseMatcher {
    struct Phrase {
        var bytes: [UInt8]
        /// Match only whole words at the end too (otherwise a prefix of a word is enough).
        var wholeWord: Bool
        var label: String
    }

    var phrases: [Phrase]

    init(_ entries: [(String, Bool)]) {
        phrases = entries.map { Phrase(bytes: Array($0.0.utf8), wholeWord: $0.1, label: $0.0) }
    }

    /// Lowercased bytes with typographic apostrophes (’ ‘) turned into "'".
    static func prepared(_ text: String) -> [UInt8] {
        let t = text.replacingOccurrences(of: "\u{2019}", with: "'").replacingOccurrences(of: "\u{2018}", with: "'")
        return t.utf8.map(TextTokens.lower)
    }

    @inline(__always) static func isLetter(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b >= 0x80 }

    /// The first phrase found in `text`, with the text around it.
    func firstMatch(in text: [UInt8]) -> (label: String, excerpt: String)? {
        let n = text.count
        for p in phrases {
            let m = p.bytes.count
            guard m > 0, m <= n else { continue }
            var i = 0
            let first = p.bytes[0]
            while i + m <= n {
                if text[i] == first, (i == 0 || !Self.isLetter(text[i - 1])) {
                    var j = 1
                    while j < m && text[i + j] == p.bytes[j] { j += 1 }
                    if j == m && (!p.wholeWord || i + m == n || !Self.isLetter(text[i + m])) {
                        return (p.label, Self.excerpt(text, at: i, length: m))
                    }
                }
                i += 1
            }
        }
        return nil
    }

    static func excerpt(_ text: [UInt8], at i: Int, length: Int) -> String {
        var lo = max(0, i - 25), hi = min(text.count, i + length + 25)
        while lo > 0 && text[lo] & 0xC0 == 0x80 { lo -= 1 }
        while hi < text.count && text[hi] & 0xC0 == 0x80 { hi += 1 }
        let s = String(decoding: text[lo..<hi], as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
        return (lo > 0 ? "…" : "") + s + (hi < text.count ? "…" : "")
    }
}
