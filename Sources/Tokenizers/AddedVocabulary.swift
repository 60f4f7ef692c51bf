import ForgeCore

/// One entry of `added_tokens` (or a GGUF control / user-defined token).
public struct AddedToken: Sendable, Equatable {
    public var id: Int
    public var content: String
    public var special: Bool
    public var singleWord: Bool
    public var lstrip: Bool
    public var rstrip: Bool
    /// Matched on normalized text (true) or on the raw input (false).
    public var normalized: Bool

    public init(id: Int, content: String, special: Bool, singleWord: Bool = false, lstrip: Bool = false,
                rstrip: Bool = false, normalized: Bool? = nil) {
        self.id = id
        self.content = content
        self.special = special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.normalized = normalized ?? !special
    }
}

/// Finds added tokens in text before the model sees it: leftmost-longest matches over a trie,
/// with `single_word`, `lstrip` and `rstrip` applied like HF's `AddedVocabulary`.
struct AddedTokenMatcher: Sendable {
    private struct Node {
        var children: [UInt32: Int32] = [:]
        var token: Int32 = -1 // index into `tokens`
    }
    private var nodes: [Node] = [Node()]
    private(set) var tokens: [AddedToken] = []
    /// Quick reject: scalars that can start a token (below 128 by table).
    private var asciiStarts = [Bool](repeating: false, count: 128)
    private var otherStarts: Set<UInt32> = []

    var isEmpty: Bool { tokens.isEmpty }

    /// `patterns[i]` is the scalar sequence to match for `tokens[i]` (normalized content for
    /// normalized tokens).
    init(tokens: [AddedToken], patterns: [[UInt32]]) {
        for (index, token) in tokens.enumerated() {
            let pattern = patterns[index]
            guard let first = pattern.first else { continue }
            var node = 0
            for v in pattern {
                if let child = nodes[node].children[v] {
                    node = Int(child)
                } else {
                    nodes.append(Node())
                    nodes[node].children[v] = Int32(nodes.count - 1)
                    node = nodes.count - 1
                }
            }
            // First definition of a content wins.
            if nodes[node].token < 0 {
                self.tokens.append(token)
                nodes[node].token = Int32(self.tokens.count - 1)
            }
            if first < 128 { asciiStarts[Int(first)] = true } else { otherStarts.insert(first) }
        }
    }

    struct Match {
        var range: Range<Int>
        var id: Int
    }

    /// Non-overlapping matches in `s`, left to right, each range already widened by lstrip/rstrip.
    func matches(in s: UnsafeBufferPointer<UInt32>) -> [Match] {
        guard !tokens.isEmpty else { return [] }
        var out: [Match] = []
        let n = s.count
        var i = 0
        var consumed = 0 // end of the previous match (lstrip never reaches before it)
        while i < n {
            let c = s[i]
            let possible = c < 128 ? asciiStarts[Int(c)] : otherStarts.contains(c)
            guard possible else { i += 1; continue }
            // Longest match starting at i.
            var node = 0
            var best = -1
            var bestEnd = i
            var j = i
            while j < n, let child = nodes[node].children[s[j]] {
                node = Int(child)
                j += 1
                if nodes[node].token >= 0 { best = Int(nodes[node].token); bestEnd = j }
            }
            guard best >= 0 else { i += 1; continue }
            let token = tokens[best]
            if token.singleWord {
                let startOK = i == 0 || !CharClass.isWord(s[i - 1])
                let endOK = bestEnd == n || !CharClass.isWord(s[bestEnd])
                if !(startOK && endOK) { i = bestEnd; continue }
            }
            var start = i
            var end = bestEnd
            if token.lstrip {
                while start > consumed, CharClass.isWhitespace(s[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while end < n, CharClass.isWhitespace(s[end]) { end += 1 }
            }
            out.append(Match(range: start..<end, id: token.id))
            consumed = end
            i = end
        }
        return out
    }
}
