/// What constrained sampling needs to know about a tokenizer: the bytes every token id adds to
/// the decoded text, computed once per tokenizer, arranged for fast mask computation.
///
/// - a byte trie over all usable tokens in preorder (`depth`, `skip` = one past the subtree), so a
///   walk with the automaton skips a whole subtree at the first rejected byte;
/// - "plain string" tokens — complete UTF-8 without `"`, `\` or control bytes — grouped by their
///   length in characters: inside a JSON string such a token is allowed exactly when it fits the
///   remaining `maxLength`, so those masks are precomputed (`plainUpTo[k]`: every plain token of
///   at most k characters) and only the other tokens are walked (a second, much smaller trie).
public final class TokenVocabulary: @unchecked Sendable {
    /// Ids the logits have (the model's vocabulary may be padded past the tokenizer's).
    public let count: Int
    /// Bytes per id; nil for special/control tokens and ids without text (never allowed in JSON).
    public let tokenBytes: [[UInt8]?]
    let words: Int

    struct Trie {
        var byte: [UInt8] = []
        var depth: [UInt16] = []
        var skip: [Int32] = []
        /// Tokens ending at node i: `tokens[tokenStart[i] ..< tokenStart[i + 1]]`.
        var tokenStart: [Int32] = []
        var tokens: [Int32] = []
        var maxDepth = 0

        init(_ entries: [(bytes: [UInt8], id: Int32)]) {
            let sorted = entries.sorted { a, b in
                a.bytes.lexicographicallyPrecedes(b.bytes) || (a.bytes == b.bytes && a.id < b.id)
            }
            var path: [Int] = []  // node index per depth of the current path
            var previous: [UInt8] = []
            var nodeTokens: [[Int32]] = []
            for e in sorted where !e.bytes.isEmpty {
                var common = 0
                while common < min(previous.count, e.bytes.count), previous[common] == e.bytes[common] { common += 1 }
                path.removeSubrange(common...)
                for d in common..<e.bytes.count {
                    byte.append(e.bytes[d])
                    depth.append(UInt16(d + 1))
                    nodeTokens.append([])
                    path.append(byte.count - 1)
                }
                nodeTokens[path[e.bytes.count - 1]].append(e.id)
                previous = e.bytes
                maxDepth = max(maxDepth, e.bytes.count)
            }
            // skip[i] = the next node whose depth is ≤ depth[i] (end of i's subtree).
            skip = [Int32](repeating: Int32(byte.count), count: byte.count)
            var open: [Int] = []
            for i in 0..<byte.count {
                while let last = open.last, depth[last] >= depth[i] { skip[last] = Int32(i); open.removeLast() }
                open.append(i)
            }
            tokenStart.reserveCapacity(byte.count + 1)
            for t in nodeTokens {
                tokenStart.append(Int32(tokens.count))
                tokens += t
            }
            tokenStart.append(Int32(tokens.count))
        }
    }

    let fullTrie: Trie
    /// Tokens that are not plain string content.
    let nonPlainTrie: Trie
    /// `plainUpTo[k]` (k ≥ 1): bitmask of plain tokens of at most k characters; the last entry
    /// holds every plain token.
    let plainUpTo: [[UInt64]]
    let longestToken: Int
    /// Tokens with a `"` byte: inside a string, the only ones that can leave it (budget checks).
    let quoteTokens: [UInt64]

    /// `tokenBytes[id]` = the bytes the id decodes to inside a text (nil: special or control);
    /// `count` = the number of logits (≥ `tokenBytes.count`).
    public init(tokenBytes: [[UInt8]?], count: Int? = nil) {
        self.tokenBytes = tokenBytes
        self.count = max(count ?? tokenBytes.count, tokenBytes.count)
        words = (self.count + 63) / 64
        var all: [(bytes: [UInt8], id: Int32)] = []
        var nonPlain: [(bytes: [UInt8], id: Int32)] = []
        var plainLength: [(id: Int, characters: Int)] = []
        var quotes = [UInt64](repeating: 0, count: words)
        for (id, b) in tokenBytes.enumerated() {
            guard let b, !b.isEmpty else { continue }
            if b.contains(0x22) { quotes[id >> 6] |= 1 << UInt64(id & 63) }
            all.append((b, Int32(id)))
            if let n = Self.plainCharacterCount(b) { plainLength.append((id, n)) } else { nonPlain.append((b, Int32(id))) }
        }
        quoteTokens = quotes
        fullTrie = Trie(all)
        nonPlainTrie = Trie(nonPlain)
        longestToken = fullTrie.maxDepth
        let maxCharacters = plainLength.map(\.characters).max() ?? 0
        var table = [[UInt64]](repeating: [UInt64](repeating: 0, count: words), count: maxCharacters + 1)
        for (id, n) in plainLength { table[n][id >> 6] |= 1 << UInt64(id & 63) }
        if maxCharacters >= 1 {
            for k in 1...maxCharacters { for w in 0..<words { table[k][w] |= table[k - 1][w] } }
        }
        plainUpTo = table
    }

    /// `bytes` as token ids by greedy longest exact match over the byte trie, never using an id
    /// in `excluded` (stop tokens); nil when some position starts no usable token. Byte-level
    /// vocabularies have a token for every single byte, so this only fails for foreign ones.
    func greedyTokens(_ bytes: [UInt8], excluding excluded: [Int]) -> [Int]? {
        let t = fullTrie
        let n = t.byte.count
        var out: [Int] = []
        var position = 0
        while position < bytes.count {
            var first = 0  // first node of the sibling run at depth `d`
            var d = 1
            var best = -1, bestLength = 0
            while position + d <= bytes.count {
                let c = bytes[position + d - 1]
                var i = first, found = -1
                while i < n && Int(t.depth[i]) == d {
                    if t.byte[i] == c { found = i; break }
                    i = Int(t.skip[i])
                }
                guard found >= 0 else { break }
                for k in Int(t.tokenStart[found])..<Int(t.tokenStart[found + 1]) where !excluded.contains(Int(t.tokens[k])) {
                    best = Int(t.tokens[k])
                    bestLength = d
                    break
                }
                guard found + 1 < n, Int(t.depth[found + 1]) == d + 1 else { break }
                first = found + 1
                d += 1
            }
            guard best >= 0 else { return nil }
            out.append(best)
            position += bestLength
        }
        return out
    }

    /// Characters of `bytes` when they are plain JSON-string content: strictly valid, complete
    /// UTF-8 with no `"`, `\` or control byte; nil otherwise.
    static func plainCharacterCount(_ bytes: [UInt8]) -> Int? {
        var i = 0, characters = 0
        while i < bytes.count {
            let c = bytes[i]
            if c < 0x80 {
                guard c >= 0x20, c != 0x22, c != 0x5C else { return nil }
                i += 1
            } else {
                guard let lead = utf8Lead(c) else { return nil }
                let length = lead.continuations + 1
                guard i + length <= bytes.count, bytes[i + 1] >= lead.lo, bytes[i + 1] <= lead.hi else { return nil }
                for k in 2..<max(2, length) where !(0x80...0xBF).contains(bytes[i + k]) { return nil }
                i += length
            }
            characters += 1
        }
        return characters
    }
}

/// A strict UTF-8 lead byte: how many continuation bytes follow and the allowed range of the
/// first one (excludes overlong forms, surrogates and code points past U+10FFFF); nil otherwise.
@inline(__always) func utf8Lead(_ c: UInt8) -> (continuations: Int, lo: UInt8, hi: UInt8)? {
    switch c {
    case 0xC2...0xDF: return (1, 0x80, 0xBF)
    case 0xE0: return (2, 0xA0, 0xBF)
    case 0xED: return (2, 0x80, 0x9F)
    case 0xE1...0xEF: return (2, 0x80, 0xBF)
    case 0xF0: return (3, 0x90, 0xBF)
    case 0xF1...0xF3: return (3, 0x80, 0xBF)
    case 0xF4: return (3, 0x80, 0x8F)
    default: return nil
    }
}
