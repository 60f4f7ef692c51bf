import ForgeCore
import Foundation

/// A pattern that finds non-overlapping matches, left to right, in a run of Unicode scalars — the
/// `find_iter` of HF `tokenizers`' Oniguruma regexes. Matches are scalar-index ranges; empty
/// matches are allowed (the split behaviours treat them like `tokenizers` does).
protocol SplitPattern: Sendable {
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>]
}

enum Patterns {
    // The well-known pre-tokenizer regexes get hand-written matchers (exact, and far faster than a
    // general regex engine); anything else goes to ICU through NSRegularExpression.
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let gpt2NoTrailing = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"#
    static let llama3 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Adapted = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Adapted = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// A regex pattern as written in tokenizer.json (`{"Regex": …}`) or a llama.cpp pre-tokenizer.
    static func regex(_ pattern: String, file: String?, field: String) throws -> SplitPattern {
        switch pattern {
        case gpt2, gpt2NoTrailing: return GPT2Pattern()
        case llama3, llama3Adapted: return Llama3Pattern(maxDigits: 3)
        case qwen2, qwen2Adapted: return Llama3Pattern(maxDigits: 1)
        case #"\p{N}"#: return ClassRunPattern(classBits: CharClass.number, maxRun: 1)
        case #"\p{N}+"#: return ClassRunPattern(classBits: CharClass.number, maxRun: .max)
        case #"\p{N}{1,3}"#: return ClassRunPattern(classBits: CharClass.number, maxRun: 3)
        case #"\d"#, "[0-9]": return ASCIIDigitPattern(maxRun: 1)
        case #"\d+"#, "[0-9]+": return ASCIIDigitPattern(maxRun: .max)
        case "[0-9][0-9][0-9]": return ASCIIDigitPattern(exactly: 3)
        default: return try ICURegexPattern(pattern, file: file, field: field)
        }
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2, SmolLM, StarCoder).
struct GPT2Pattern: SplitPattern {
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(s.count / 3 + 1)
        let n = s.count
        var i = 0
        while i < n {
            let end = matchAt(s, i, n)
            out.append(i..<end)
            i = end
        }
        return out
    }

    @inline(__always)
    private func matchAt(_ s: UnsafeBufferPointer<UInt32>, _ i: Int, _ n: Int) -> Int {
        let c = s[i]
        if c == 0x27, i + 1 < n { // '
            let c1 = s[i + 1]
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 } // s t m d
            if i + 2 < n {
                let c2 = s[i + 2]
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return i + 3 }
            }
        }
        let start = c == 0x20 ? i + 1 : i
        if start < n {
            let cls = CharClass.of(s[start])
            if cls & CharClass.letter != 0 {
                var j = start + 1
                while j < n, CharClass.of(s[j]) & CharClass.letter != 0 { j += 1 }
                return j
            }
            if cls & CharClass.number != 0 {
                var j = start + 1
                while j < n, CharClass.of(s[j]) & CharClass.number != 0 { j += 1 }
                return j
            }
            if !CharClass.isWhitespace(s[start]) {
                var j = start + 1
                while j < n, CharClass.of(s[j]) & (CharClass.letter | CharClass.number) == 0, !CharClass.isWhitespace(s[j]) { j += 1 }
                return j
            }
        }
        // c is whitespace here (a lone trailing space or any other whitespace).
        var j = i + 1
        while j < n, CharClass.isWhitespace(s[j]) { j += 1 }
        if j == n { return n }
        if j - i >= 2 { return j - 1 }
        return i + 1
    }
}

/// The Llama-3 pattern (`maxDigits` 3) and Qwen2's (`maxDigits` 1):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
struct Llama3Pattern: SplitPattern {
    var maxDigits: Int

    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(s.count / 3 + 1)
        let n = s.count
        var i = 0
        while i < n {
            let end = matchAt(s, i, n)
            out.append(i..<end)
            i = end
        }
        return out
    }

    @inline(__always) private static func lower(_ c: UInt32) -> UInt32 {
        if c >= 0x41 && c <= 0x5A { return c + 0x20 }
        if c == 0x17F { return 0x73 } // ſ case-folds to s
        return c
    }

    @inline(__always)
    private func matchAt(_ s: UnsafeBufferPointer<UInt32>, _ i: Int, _ n: Int) -> Int {
        let c = s[i]
        if c == 0x27, i + 1 < n {
            let c1 = Self.lower(s[i + 1])
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return i + 2 }
            if i + 2 < n {
                let c2 = Self.lower(s[i + 2])
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return i + 3 }
            }
        }
        let cls = CharClass.of(c)
        let ws = CharClass.isWhitespace(c)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if cls & CharClass.letter != 0 {
            var j = i + 1
            while j < n, CharClass.of(s[j]) & CharClass.letter != 0 { j += 1 }
            return j
        }
        if c != 0x0D, c != 0x0A, cls & CharClass.number == 0, i + 1 < n, CharClass.of(s[i + 1]) & CharClass.letter != 0 {
            var j = i + 2
            while j < n, CharClass.of(s[j]) & CharClass.letter != 0 { j += 1 }
            return j
        }
        // \p{N}{1,maxDigits}
        if cls & CharClass.number != 0 {
            var j = i + 1
            while j < n, j - i < maxDigits, CharClass.of(s[j]) & CharClass.number != 0 { j += 1 }
            return j
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let start = c == 0x20 ? i + 1 : i
        if start < n, !CharClass.isWhitespace(s[start]), CharClass.of(s[start]) & (CharClass.letter | CharClass.number) == 0 {
            var j = start + 1
            while j < n, CharClass.of(s[j]) & (CharClass.letter | CharClass.number) == 0, !CharClass.isWhitespace(s[j]) { j += 1 }
            while j < n, s[j] == 0x0D || s[j] == 0x0A { j += 1 }
            return j
        }
        guard ws else { return i + 1 } // unreachable: every scalar is L, N, whitespace or other
        var j = i + 1
        while j < n, CharClass.isWhitespace(s[j]) { j += 1 }
        // \s*[\r\n]+ : ends right after the last newline of the whitespace run
        var k = j - 1
        while k >= i {
            if s[k] == 0x0D || s[k] == 0x0A { return k + 1 }
            k -= 1
        }
        // \s+(?!\S) | \s+
        if j == n { return n }
        if j - i >= 2 { return j - 1 }
        return i + 1
    }
}

/// Runs of one character class, each match at most `maxRun` long (`\p{N}`, `\p{N}+`, `\p{N}{1,3}`).
struct ClassRunPattern: SplitPattern {
    var classBits: UInt8
    var maxRun: Int
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let n = s.count
        var i = 0
        while i < n {
            if CharClass.of(s[i]) & classBits != 0 {
                var j = i + 1
                while j < n, j - i < maxRun, CharClass.of(s[j]) & classBits != 0 { j += 1 }
                out.append(i..<j)
                i = j
            } else {
                i += 1
            }
        }
        return out
    }
}

/// ASCII digits: runs of at most `maxRun`, or exactly `exactly` digits.
struct ASCIIDigitPattern: SplitPattern {
    var maxRun: Int = .max
    var exactly: Int? = nil
    init(maxRun: Int) { self.maxRun = maxRun }
    init(exactly: Int) { self.exactly = exactly; self.maxRun = exactly }
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let n = s.count
        var i = 0
        @inline(__always) func digit(_ v: UInt32) -> Bool { v >= 0x30 && v <= 0x39 }
        while i < n {
            if digit(s[i]) {
                var j = i + 1
                while j < n, j - i < maxRun, digit(s[j]) { j += 1 }
                if let e = exactly, j - i != e { i += 1; continue }
                out.append(i..<j)
                i = j
            } else {
                i += 1
            }
        }
        return out
    }
}

/// A literal string (`{"String": …}` patterns): non-overlapping occurrences, left to right.
struct LiteralPattern: SplitPattern {
    var literal: [UInt32]
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        let m = literal.count
        guard m > 0, s.count >= m else { return out }
        let first = literal[0]
        var i = 0
        let n = s.count
        outer: while i + m <= n {
            if s[i] == first {
                var k = 1
                while k < m { if s[i + k] != literal[k] { i += 1; continue outer }; k += 1 }
                out.append(i..<(i + m))
                i += m
            } else {
                i += 1
            }
        }
        return out
    }
}

/// Any other regex, through ICU (NSRegularExpression).
final class ICURegexPattern: SplitPattern, @unchecked Sendable {
    let regex: NSRegularExpression

    init(_ pattern: String, file: String?, field: String) throws {
        do {
            regex = try NSRegularExpression(pattern: pattern, options: [])
        } catch {
            throw ForgeError(.badInput, "unsupported regex pattern \(JSONText.quoted(pattern)): \(error)", file: file, location: field)
        }
    }

    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        // Map UTF-16 offsets back to scalar indices.
        var utf16ToScalar: [Int] = []
        utf16ToScalar.reserveCapacity(s.count + 1)
        for (idx, v) in s.enumerated() {
            utf16ToScalar.append(idx)
            if v >= 0x10000 { utf16ToScalar.append(idx) }
        }
        utf16ToScalar.append(s.count)
        let str = String(scalarValues: s)
        let ns = str as NSString
        var out: [Range<Int>] = []
        for m in regex.matches(in: str, options: [], range: NSRange(location: 0, length: ns.length)) {
            let lo = utf16ToScalar[m.range.location]
            let hi = utf16ToScalar[m.range.location + m.range.length]
            out.append(lo..<hi)
        }
        return out
    }
}
