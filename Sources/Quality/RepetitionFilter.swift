/// Degenerate loops a small model falls into and sampling alone does not stop: counting
/// ("96, 97, 98, … 156"), the same few phrases over and over (a low share of distinct word
/// n-grams in a long text), or one sentence repeated. Checked per turn, so a conversation that
/// asks similar questions in different turns is not affected.
public struct RepetitionFilter: QualityFilter {
    public let name = "repetition"
    /// Numbers in a row (adjacent words) at a constant step that count as a loop.
    public var numberRun = 16  // past a clock face's 1 … 12
    /// The n-gram check applies from this many words on …
    public var minWordsForNgrams = 60
    public var ngram = 3
    /// … and rejects when fewer of the n-grams than this are distinct (prose sits above 0.9).
    public var minDistinctShare = 0.5
    /// A sentence of at least `minSentenceWords` words seen `sentenceRepeats` times, or twice in
    /// a row, is a loop.
    public var minSentenceWords = 4
    public var sentenceRepeats = 3

    public init() {}

    public func check(_ sample: QualitySample) -> String? {
        for (k, turn) in sample.turns.enumerated() {
            let text = QualitySample.stripImageToken(turn.value)
            if let why = loop(in: text) { return "turn \(k + 1) \(why)" }
        }
        return nil
    }

    /// Why `text` is a loop, or nil.
    func loop(in text: String) -> String? {
        let words = TextTokens.words(text)
        if let run = longestNumberRun(words), run.count >= numberRun {
            return "counts \(run.first), \(run.second) … \(run.last) (\(run.count) numbers in a row)"
        }
        if words.count >= minWordsForNgrams && words.count >= ngram {
            var seen = Set<String>()
            let total = words.count - ngram + 1
            for i in 0..<total { seen.insert(words[i..<(i + ngram)].joined(separator: " ")) }
            let share = Double(seen.count) / Double(total)
            if share < minDistinctShare {
                return "repeats itself: only \(Int((share * 100).rounded())) % of its \(ngram)-word sequences are distinct (\(words.count) words)"
            }
        }
        var counts: [String: Int] = [:]
        var previous = ""
        for sentence in Self.sentences(text) {
            let normalized = TextTokens.words(String(sentence))
            guard normalized.count >= minSentenceWords else { previous = ""; continue }
            let key = normalized.joined(separator: " ")
            counts[key, default: 0] += 1
            let n = counts[key]!
            if n >= sentenceRepeats { return "says \"\(key.prefix(60))\" \(n) times" }
            if key == previous { return "says \"\(key.prefix(60))\" twice in a row" }
            previous = key
        }
        return nil
    }

    /// The longest run of adjacent number words at a constant non-zero step.
    func longestNumberRun(_ words: [String]) -> (count: Int, first: Int, second: Int, last: Int)? {
        var best: (count: Int, first: Int, second: Int, last: Int)?
        var start = -1, count = 0, step = 0
        var values: [Int?] = words.map { w in w.count <= 15 && w.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? Int(w) : nil }
        values.append(nil)  // closes the last run
        for i in values.indices {
            guard let v = values[i] else {
                if count >= 2, count > best?.count ?? 0, let f = values[start], let s = values[start + 1], let l = values[i - 1] {
                    best = (count, f, s, l)
                }
                count = 0
                continue
            }
            if count >= 1, let p = values[i - 1], v - p != 0, count == 1 || v - p == step {
                step = v - p
                count += 1
            } else {
                if count >= 2, count > best?.count ?? 0, let f = values[start], let s = values[start + 1], let l = values[i - 1] {
                    best = (count, f, s, l)
                }
                // A broken run may start a new one with its last number.
                if count >= 1, let p = values[i - 1], v - p != 0 {
                    start = i - 1
                    count = 2
                    step = v - p
                } else {
                    start = i
                    count = 1
                }
            }
        }
        return best
    }

    /// Sentences: split at `.`, `!`, `?` and line breaks.
    static func sentences(_ text: String) -> [Substring] {
        text.split(whereSeparator: { $0 == "." || $0 == "!" || $0 == "?" || $0.isNewline })
    }
}
