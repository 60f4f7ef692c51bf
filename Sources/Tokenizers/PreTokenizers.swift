import ForgeCore

/// A `tokenizer.json` pre-tokenizer: splits every word of the buffer into smaller words (and may
/// rewrite them, as ByteLevel and Metaspace do). Words never merge across stages.
protocol PreTokenizer: Sendable {
    func preTokenize(_ input: PieceBuffer) -> PieceBuffer
}

enum PreTokenizerFactory {
    static func make(_ json: JSONValue?, file: String?, field: String = "pre_tokenizer") throws -> PreTokenizer? {
        guard let json, !json.isNull else { return nil }
        guard let type = json["type"]?.string else {
            throw ForgeError(.badInput, "pre-tokenizer without a \"type\"", file: file, location: field)
        }
        switch type {
        case "Sequence":
            guard let items = json["pretokenizers"]?.array else {
                throw ForgeError(.badInput, "Sequence pre-tokenizer without \"pretokenizers\"", file: file, location: field)
            }
            var stages: [PreTokenizer] = []
            for (i, item) in items.enumerated() {
                if let stage = try make(item, file: file, field: "\(field).pretokenizers[\(i)]") { stages.append(stage) }
            }
            return SequencePreTokenizer(stages: stages)
        case "ByteLevel":
            return ByteLevelPreTokenizer(addPrefixSpace: json["add_prefix_space"]?.bool ?? true,
                                         useRegex: json["use_regex"]?.bool ?? true)
        case "Split":
            let pattern = try PatternSpec.parse(json["pattern"], file: file, field: "\(field).pattern")
            let behaviorName = json["behavior"]?.string ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw ForgeError(.badInput, "unknown split behavior \"\(behaviorName)\"", file: file, location: "\(field).behavior")
            }
            return SplitPreTokenizer(pattern: pattern, behavior: behavior, invert: json["invert"]?.bool ?? false)
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "\u{2581}"
            guard let r = replacement.unicodeScalars.first, replacement.unicodeScalars.count == 1 else {
                throw ForgeError(.badInput, "Metaspace replacement must be one character", file: file, location: "\(field).replacement")
            }
            let scheme: MetaspacePrependScheme
            if let name = json["prepend_scheme"]?.string {
                guard let s = MetaspacePrependScheme(rawValue: name) else {
                    throw ForgeError(.badInput, "unknown prepend_scheme \"\(name)\"", file: file, location: "\(field).prepend_scheme")
                }
                scheme = s
            } else {
                // Older files: add_prefix_space (default true) means "always".
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            return MetaspacePreTokenizer(replacement: r.value, prependScheme: scheme, split: json["split"]?.bool ?? true)
        case "Digits":
            return DigitsPreTokenizer(individualDigits: json["individual_digits"]?.bool ?? false)
        case "WhitespaceSplit":
            return WhitespaceSplitPreTokenizer()
        case "Whitespace":
            return SplitPreTokenizer(pattern: WordOrPunctuationPattern(), behavior: .isolated, invert: false, dropWhitespace: true)
        case "Punctuation":
            let behaviorName = json["behavior"]?.string ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw ForgeError(.badInput, "unknown split behavior \"\(behaviorName)\"", file: file, location: "\(field).behavior")
            }
            return SplitPreTokenizer(pattern: PunctuationPattern(), behavior: behavior, invert: false)
        default:
            throw ForgeError(.badInput, "unsupported pre-tokenizer type \"\(type)\"", file: file, location: "\(field).type")
        }
    }
}

struct SequencePreTokenizer: PreTokenizer {
    var stages: [PreTokenizer]
    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var current = input
        for stage in stages { current = stage.preTokenize(current) }
        return current
    }
}

/// GPT-2's byte-level pre-tokenizer: optional leading space, the GPT-2 regex split (`use_regex`),
/// then each word's UTF-8 bytes spelled in the byte-level alphabet.
struct ByteLevelPreTokenizer: PreTokenizer {
    var addPrefixSpace: Bool
    var useRegex: Bool
    private let pattern = GPT2Pattern()

    init(addPrefixSpace: Bool, useRegex: Bool) {
        self.addPrefixSpace = addPrefixSpace
        self.useRegex = useRegex
    }

    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var out = PieceBuffer(capacity: input.scalars.count + input.scalars.count / 4)
        out.ends.reserveCapacity(input.scalars.count / 3 + 1)
        ByteLevelAlphabet.scalarOfByte.withUnsafeBufferPointer { table in
            for w in 0..<input.wordCount {
                let range = input.wordRange(w)
                if addPrefixSpace, input.scalars[range.lowerBound] != 0x20 {
                    let prefixed = [0x20] + input.scalars[range]
                    let prefixedOrigin = [input.origin[range.lowerBound]] + input.origin[range]
                    emit(prefixed, prefixedOrigin, table, &out)
                } else {
                    input.scalars.withUnsafeBufferPointer { all in
                        input.origin.withUnsafeBufferPointer { origins in
                            emitBuffer(UnsafeBufferPointer(rebasing: all[range]), UnsafeBufferPointer(rebasing: origins[range]), table, &out)
                        }
                    }
                }
            }
        }
        return out
    }

    private func emit(_ scalars: [UInt32], _ origin: [Int32], _ table: UnsafeBufferPointer<UInt32>, _ out: inout PieceBuffer) {
        scalars.withUnsafeBufferPointer { s in
            origin.withUnsafeBufferPointer { o in emitBuffer(s, o, table, &out) }
        }
    }

    private func emitBuffer(_ scalars: UnsafeBufferPointer<UInt32>, _ origin: UnsafeBufferPointer<Int32>,
                            _ table: UnsafeBufferPointer<UInt32>, _ out: inout PieceBuffer) {
        guard scalars.count > 0 else { return }
        let matches = useRegex ? pattern.matches(in: scalars) : [0..<scalars.count]
        for m in matches where !m.isEmpty {
            for i in m {
                let v = scalars[i]
                let o = origin[i]
                if v < 0x80 {
                    out.append(table[Int(v)], origin: o)
                } else if v < 0x800 {
                    out.append(table[Int(0xC0 | (v >> 6))], origin: o)
                    out.append(table[Int(0x80 | (v & 0x3F))], origin: o)
                } else if v < 0x10000 {
                    out.append(table[Int(0xE0 | (v >> 12))], origin: o)
                    out.append(table[Int(0x80 | ((v >> 6) & 0x3F))], origin: o)
                    out.append(table[Int(0x80 | (v & 0x3F))], origin: o)
                } else {
                    out.append(table[Int(0xF0 | (v >> 18))], origin: o)
                    out.append(table[Int(0x80 | ((v >> 12) & 0x3F))], origin: o)
                    out.append(table[Int(0x80 | ((v >> 6) & 0x3F))], origin: o)
                    out.append(table[Int(0x80 | (v & 0x3F))], origin: o)
                }
            }
            out.closeWord()
        }
    }
}

/// Split on a pattern with one of HF's five behaviours, optionally inverted.
struct SplitPreTokenizer: PreTokenizer {
    var pattern: SplitPattern
    var behavior: SplitBehavior
    var invert: Bool
    /// The `Whitespace` pre-tokenizer keeps only `\w+|[^\w\s]+` matches.
    var dropWhitespace = false

    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var out = PieceBuffer(capacity: input.scalars.count)
        input.scalars.withUnsafeBufferPointer { all in
            for w in 0..<input.wordCount {
                let range = input.wordRange(w)
                let matches = pattern.matches(in: UnsafeBufferPointer(rebasing: all[range]))
                if dropWhitespace {
                    for m in matches { out.appendWord(from: input, (range.lowerBound + m.lowerBound)..<(range.lowerBound + m.upperBound)) }
                } else {
                    behavior.apply(matches: matches, word: range, of: input, invert: invert, into: &out)
                }
            }
        }
        return out
    }
}

enum MetaspacePrependScheme: String {
    case always, first, never
}

/// SentencePiece-style: spaces become `replacement` (▁), a ▁ is prepended (always, or only to the
/// text's first piece), then words split before each ▁.
struct MetaspacePreTokenizer: PreTokenizer {
    var replacement: UInt32
    var prependScheme: MetaspacePrependScheme
    var split: Bool

    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var out = PieceBuffer(capacity: input.scalars.count + 8)
        for w in 0..<input.wordCount {
            let range = input.wordRange(w)
            let firstIsSpace = input.scalars[range.lowerBound] == 0x20 || input.scalars[range.lowerBound] == replacement
            let prepend: Bool
            switch prependScheme {
            case .always: prepend = !firstIsSpace
            case .first: prepend = !firstIsSpace && input.origin[range.lowerBound] == 0
            case .never: prepend = false
            }
            var word = PieceBuffer(capacity: range.count + 1)
            if prepend { word.append(replacement, origin: input.origin[range.lowerBound]) }
            for i in range {
                let v = input.scalars[i]
                word.append(v == 0x20 ? replacement : v, origin: input.origin[i])
            }
            if split {
                var start = 0
                for i in 0..<word.scalars.count where word.scalars[i] == replacement && i > start {
                    out.appendWord(from: word, start..<i)
                    start = i
                }
                out.appendWord(from: word, start..<word.scalars.count)
            } else {
                out.appendWord(from: word, 0..<word.scalars.count)
            }
        }
        return out
    }
}

/// Splits digits from the rest: each digit alone (`individual_digits`) or runs of digits.
struct DigitsPreTokenizer: PreTokenizer {
    var individualDigits: Bool
    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var out = PieceBuffer(capacity: input.scalars.count)
        for w in 0..<input.wordCount {
            let range = input.wordRange(w)
            var start = range.lowerBound
            var i = range.lowerBound
            while i < range.upperBound {
                // Rust's char::is_numeric: the N* general categories.
                if CharClass.isNumber(input.scalars[i]) {
                    if i > start { out.appendWord(from: input, start..<i) }
                    var j = i + 1
                    if !individualDigits {
                        while j < range.upperBound, CharClass.isNumber(input.scalars[j]) { j += 1 }
                    }
                    out.appendWord(from: input, i..<j)
                    start = j
                    i = j
                } else {
                    i += 1
                }
            }
            if start < range.upperBound { out.appendWord(from: input, start..<range.upperBound) }
        }
        return out
    }
}

/// Splits on whitespace, dropping it.
struct WhitespaceSplitPreTokenizer: PreTokenizer {
    func preTokenize(_ input: PieceBuffer) -> PieceBuffer {
        var out = PieceBuffer(capacity: input.scalars.count)
        for w in 0..<input.wordCount {
            let range = input.wordRange(w)
            var start = range.lowerBound
            for i in range where CharClass.isWhitespace(input.scalars[i]) {
                if i > start { out.appendWord(from: input, start..<i) }
                start = i + 1
            }
            if start < range.upperBound { out.appendWord(from: input, start..<range.upperBound) }
        }
        return out
    }
}

/// `\w+|[^\w\s]+` (the `Whitespace` pre-tokenizer).
struct WordOrPunctuationPattern: SplitPattern {
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let n = s.count
        while i < n {
            if CharClass.isWord(s[i]) {
                var j = i + 1
                while j < n, CharClass.isWord(s[j]) { j += 1 }
                out.append(i..<j); i = j
            } else if !CharClass.isWhitespace(s[i]) {
                var j = i + 1
                while j < n, !CharClass.isWord(s[j]), !CharClass.isWhitespace(s[j]) { j += 1 }
                out.append(i..<j); i = j
            } else {
                i += 1
            }
        }
        return out
    }
}

/// Each punctuation character (Unicode P*, plus ASCII symbols Rust treats as punctuation).
struct PunctuationPattern: SplitPattern {
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for i in 0..<s.count {
            let v = s[i]
            let asciiPunct = v < 0x80 && ((v >= 0x21 && v <= 0x2F) || (v >= 0x3A && v <= 0x40) || (v >= 0x5B && v <= 0x60) || (v >= 0x7B && v <= 0x7E))
            if asciiPunct || CharClass.of(v) & CharClass.punctuation != 0 { out.append(i..<(i + 1)) }
        }
        return out
    }
}
