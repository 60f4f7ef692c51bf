/// Shingle sets for near-duplicate detection, as sorted unique 64-bit hashes:
/// word n-grams (default 5) of answers and long questions, character n-grams (default 4) of
/// short questions — a one-line question has too few word 5-grams to compare.
public struct ShingleConfig: Sendable, Equatable {
    public var wordNGram = 5
    public var charNGram = 4
    /// Questions with at most this many words are shingled by characters.
    public var shortQuestionWords = 12

    public init() {}
}

public struct Shingler: Sendable {
    public let config: ShingleConfig
    static let answerTag: UInt64 = 0xA5A5_0001
    static let questionWordTag: UInt64 = 0xA5A5_0002
    static let questionCharTag: UInt64 = 0xA5A5_0003

    public init(config: ShingleConfig = ShingleConfig()) { self.config = config }

    /// The sorted, unique shingle hashes of one sample.
    public func shingles(questions: [String], answers: [String]) -> [UInt64] {
        var out: [UInt64] = []
        out.reserveCapacity(256)
        var wordHashes: [UInt64] = []
        wordHashes.reserveCapacity(256)
        // All answers form one word stream (n-grams may span turns: the order is part of the text).
        for a in answers { appendWordHashes(a, into: &wordHashes) }
        appendWordGrams(wordHashes, tag: Self.answerTag, into: &out)
        for q in questions {
            wordHashes.removeAll(keepingCapacity: true)
            appendWordHashes(q, into: &wordHashes)
            if wordHashes.count <= config.shortQuestionWords {
                appendCharGrams(q, into: &out)
            } else {
                appendWordGrams(wordHashes, tag: Self.questionWordTag, into: &out)
            }
        }
        out.sort()
        return Self.uniqued(out)
    }

    /// Hash of every lowercased word (punctuation dropped).
    func appendWordHashes(_ text: String, into out: inout [UInt64]) {
        var copy = text
        copy.withUTF8 { bytes in
            var h: UInt64 = 0xcbf29ce484222325
            var inWord = false
            for b in bytes {
                if TextTokens.isWordByte(b) {
                    h = (h ^ UInt64(TextTokens.lower(b))) &* 0x100000001b3
                    inWord = true
                } else if inWord {
                    out.append(TextTokens.mix(h)); h = 0xcbf29ce484222325; inWord = false
                }
            }
            if inWord { out.append(TextTokens.mix(h)) }
        }
    }

    func appendWordGrams(_ words: [UInt64], tag: UInt64, into out: inout [UInt64]) {
        let n = config.wordNGram
        guard !words.isEmpty else { return }
        words.withUnsafeBufferPointer { w in
            if w.count < n {
                var h = tag
                for x in w { h = TextTokens.mix(h ^ x) }
                out.append(h)
                return
            }
            for i in 0...(w.count - n) {
                var h = tag
                for j in 0..<n { h = TextTokens.mix(h ^ w[i + j]) }
                out.append(h)
            }
        }
    }

    /// Character n-grams of the normalized question (lowercase, punctuation → one space).
    func appendCharGrams(_ text: String, into out: inout [UInt64]) {
        let norm = Array(TextTokens.normalized(text).utf8)
        let n = config.charNGram
        guard !norm.isEmpty else { return }
        norm.withUnsafeBytes { raw in
            if raw.count <= n {
                out.append(TextTokens.hash64(raw, seed: Self.questionCharTag))
                return
            }
            for i in 0...(raw.count - n) {
                out.append(TextTokens.hash64(UnsafeRawBufferPointer(rebasing: raw[i..<(i + n)]), seed: Self.questionCharTag))
            }
        }
    }

    static func uniqued(_ sorted: [UInt64]) -> [UInt64] {
        guard sorted.count > 1 else { return sorted }
        var out: [UInt64] = []
        out.reserveCapacity(sorted.count)
        var last = sorted[0]
        out.append(last)
        for x in sorted.dropFirst() where x != last { out.append(x); last = x }
        return out
    }

    /// Exact Jaccard similarity |A ∩ B| / |A ∪ B| of two sorted unique sets (1 for two empty sets).
    public static func jaccard(_ a: [UInt64], _ b: [UInt64]) -> Double {
        if a.isEmpty && b.isEmpty { return 1 }
        var i = 0, j = 0, inter = 0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                while i < pa.count && j < pb.count {
                    let x = pa[i], y = pb[j]
                    if x == y { inter += 1; i += 1; j += 1 } else if x < y { i += 1 } else { j += 1 }
                }
            }
        }
        return Double(inter) / Double(a.count + b.count - inter)
    }
}
