import Foundation

/// One quality check. `check` returns the reason a sample is rejected, or nil when it passes.
public protocol QualityFilter: Sendable {
    /// Stable snake_case name, stored with every rejection.
    var name: String { get }
    func check(_ sample: QualitySample) -> String?
}

/// What the filter stage applies, and with which limits.
public struct FilterConfig: Sendable, Equatable {
    public static let allRules = ["source_leak", "refusal", "format", "length", "unanswered", "language", "count_mismatch",
                                  "cut_at_max_tokens", "repetition"]

    public var rules: [String] = FilterConfig.allRules
    /// Word limits on a sample's answers (all gpt turns together).
    public var minWords = 3
    public var maxWords = 1000
    /// Per-type overrides of the word limits.
    public var perTypeMinWords: [String: Int] = [:]
    public var perTypeMaxWords: [String: Int] = [:]
    /// "en" checks that English was written; "any" turns the language check off.
    public var language = "en"

    public init() {}

    public func makeFilters() -> [QualityFilter] {
        rules.compactMap { rule -> QualityFilter? in
            switch rule {
            case "source_leak": return SourceLeakFilter()
            case "refusal": return RefusalFilter()
            case "format": return FormatFilter()
            case "length": return LengthFilter(minWords: minWords, maxWords: maxWords, perTypeMin: perTypeMinWords, perTypeMax: perTypeMaxWords)
            case "unanswered": return UnansweredFilter()
            case "language": return language == "any" ? nil : EnglishFilter()
            case "count_mismatch": return CountConsistencyFilter()
            case "cut_at_max_tokens": return CutAtMaxTokensFilter()
            case "repetition": return RepetitionFilter()
            default: return nil
            }
        }
    }
}

/// The response gives away that it was written from text: it mentions captions, "the
/// description(s) given", bounding boxes, coordinates, annotations, or prints a coordinate list
/// like `[0.12, 0.4, 0.5, 0.9]`.
public struct SourceLeakFilter: QualityFilter {
    public let name = "source_leak"
    static let matcher = PhraseMatcher([
        ("caption", false), ("bounding box", false), ("coordinate", false), ("annotation", false),
        ("the description given", true), ("the descriptions given", true), ("the given description", false),
        ("the provided description", false), ("the description provided", true), ("the descriptions provided", true),
        ("descriptions mentioned", true), ("based on the description", false), ("according to the description", false),
        ("as described in the text", true), ("the text description", false),
    ])
    static let coordinateList = try! NSRegularExpression(
        pattern: #"\[\s*-?\d*\.?\d+\s*(?:,\s*-?\d*\.?\d+\s*){1,}\]"#)

    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        for (k, turn) in sample.turns.enumerated() {
            let bytes = PhraseMatcher.prepared(turn.value)
            if let m = Self.matcher.firstMatch(in: bytes) {
                return "turn \(k + 1) mentions \"\(m.label)\": \(m.excerpt)"
            }
            let ns = turn.value as NSString
            if let r = Self.coordinateList.firstMatch(in: turn.value, range: NSRange(location: 0, length: ns.length)) {
                let literal = ns.substring(with: r.range)
                if literal.contains(".") { return "turn \(k + 1) contains a coordinate list \(literal)" }
            }
        }
        return nil
    }
}

/// Refusals and apologies: "I'm sorry", "as an AI", "I cannot", …
public struct RefusalFilter: QualityFilter {
    public let name = "refusal"
    static let matcher = PhraseMatcher([
        ("i'm sorry", true), ("i am sorry", true), ("i apologize", false), ("my apologies", true),
        ("as an ai", true), ("as a language model", true), ("as an artificial intelligence", true),
        ("i cannot", true), ("i can't", true), ("i can not", true), ("i'm unable", true), ("i am unable", true),
        ("i'm not able to", true), ("i am not able to", true), ("i do not have access", true), ("i don't have access", true),
    ])

    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        for (k, turn) in sample.turns.enumerated() where turn.from == "gpt" {
            if let m = Self.matcher.firstMatch(in: PhraseMatcher.prepared(turn.value)) {
                return "turn \(k + 1) refuses or apologizes (\"\(m.label)\"): \(m.excerpt)"
            }
        }
        return nil
    }
}

/// LLaVA's layout: human/gpt turns alternating from a human turn, `<image>` exactly once and in
/// the first human turn, one pair for description and single_qa types, no leftover
/// `Question:`/`Answer:` labels or `===` separators.
public struct FormatFilter: QualityFilter {
    public let name = "format"
    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        let t = sample.turns
        guard !t.isEmpty else { return "no turns" }
        for (k, turn) in t.enumerated() {
            let expected = k % 2 == 0 ? "human" : "gpt"
            if turn.from != expected { return "turn \(k + 1) is from \"\(turn.from)\", expected \"\(expected)\" (turns must alternate human, gpt)" }
        }
        let images = t.reduce(0) { $0 + $1.value.components(separatedBy: "<image>").count - 1 }
        if images != 1 { return "\(images) <image> tokens (expected exactly 1)" }
        if !t[0].value.contains("<image>") { return "<image> is not in the first human turn" }
        if sample.format == "description" || sample.format == "single_qa", t.count != 2 {
            return "\(t.count / 2) question/answer pairs in a \(sample.format) sample (expected 1)"
        }
        for (k, turn) in t.enumerated() {
            for line in turn.value.split(whereSeparator: \.isNewline) {
                let l = line.trimmingCharacters(in: .whitespaces).lowercased()
                if l.hasPrefix("question:") || l.hasPrefix("answer:") || l == "===" || l.hasPrefix("### question") {
                    return "turn \(k + 1) still holds a layout label: \"\(line.prefix(40))\""
                }
            }
        }
        return nil
    }
}

/// Answers (all gpt turns together) shorter or longer than the configured word counts.
public struct LengthFilter: QualityFilter {
    public let name = "length"
    public var minWords: Int
    public var maxWords: Int
    public var perTypeMin: [String: Int]
    public var perTypeMax: [String: Int]

    public init(minWords: Int, maxWords: Int, perTypeMin: [String: Int] = [:], perTypeMax: [String: Int] = [:]) {
        self.minWords = minWords; self.maxWords = maxWords; self.perTypeMin = perTypeMin; self.perTypeMax = perTypeMax
    }

    public func check(_ sample: QualitySample) -> String? {
        let words = sample.answers.reduce(0) { $0 + TextTokens.words($1).count }
        let lo = perTypeMin[sample.type] ?? minWords, hi = perTypeMax[sample.type] ?? maxWords
        if words < lo { return "answers are \(words) words (minimum \(lo))" }
        if words > hi { return "answers are \(words) words (maximum \(hi))" }
        return nil
    }
}

/// A question left without an answer: a last human turn, an empty question or answer, or an
/// "answer" that only asks a question back.
public struct UnansweredFilter: QualityFilter {
    public let name = "unanswered"
    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        let t = sample.turns
        for (k, turn) in t.enumerated() {
            let text = QualitySample.stripImageToken(turn.value)
            if turn.from == "human" {
                if text.isEmpty && sample.format != "description" { return "turn \(k + 1) is an empty question" }
                if k == t.count - 1 { return "turn \(k + 1) is a question with no answer after it" }
            } else if turn.from == "gpt" {
                if text.isEmpty { return "turn \(k + 1) is an empty answer" }
                if text.hasSuffix("?") && !Self.hasStatement(text) {
                    return "turn \(k + 1) answers with a question: \"\(text.prefix(60))\""
                }
            }
        }
        return nil
    }

    /// True when some sentence of `text` ends with "." or "!" (not only questions).
    static func hasStatement(_ text: String) -> Bool {
        text.contains(". ") || text.contains("! ") || text.contains(".\n") || text.contains("!\n")
    }
}

/// "Non-English when English was asked": a cheap script + stopword heuristic. Rejects text whose
/// letters are mostly outside ASCII, or (from 8 words on) where common English function words
/// make up less than 12 % of the words — English prose sits around 35–50 %.
public struct EnglishFilter: QualityFilter {
    public let name = "language"
    static let stopwords: Set<String> = [
        "the", "a", "an", "is", "are", "was", "were", "be", "been", "of", "and", "or", "in", "on", "at", "to", "with",
        "for", "from", "by", "it", "its", "this", "that", "these", "those", "there", "here", "they", "their", "them",
        "he", "she", "his", "her", "you", "your", "we", "our", "i", "as", "which", "who", "what", "where", "when", "how",
        "can", "could", "would", "should", "will", "may", "might", "not", "no", "has", "have", "had", "do", "does",
        "some", "any", "all", "also", "while", "near", "next", "into", "up", "out", "other", "than", "more", "one", "two",
    ]

    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        let text = sample.turns.map { QualitySample.stripImageToken($0.value) }.joined(separator: " ")
        var ascii = 0, other = 0
        for u in text.unicodeScalars where u.properties.isAlphabetic {
            if u.isASCII { ascii += 1 } else { other += 1 }
        }
        if ascii + other >= 20 && Double(other) / Double(ascii + other) > 0.3 {
            return String(format: "%.0f%% of the letters are not Latin (English was asked)", 100 * Double(other) / Double(ascii + other))
        }
        let words = TextTokens.words(text)
        if words.count >= 8 {
            let hits = words.reduce(0) { $0 + (Self.stopwords.contains($1) ? 1 : 0) }
            let ratio = Double(hits) / Double(words.count)
            if ratio < 0.12 {
                return String(format: "only %.0f%% of the words are common English words (English was asked)", 100 * ratio)
            }
        }
        return nil
    }
}

/// The request ended at its token budget (finish_reason "length"). Such a sample can only be ok
/// when it was structured output the server closed early: complete JSON whose last field was cut
/// mid-thought. It parsed (the parse rate counts it), but it does not go into the data set.
public struct CutAtMaxTokensFilter: QualityFilter {
    public let name = "cut_at_max_tokens"
    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        guard sample.finishReason == "length" else { return nil }
        return "the response ended at max_tokens (finish_reason=length): the JSON was closed early and its last field is cut"
    }
}
