import ForgeCore
import Foundation

/// The tokens of one word and, per token, the index (within the word) of its first scalar.
struct EncodedWord {
    var ids: [Int32]
    var starts: [Int32]
}

/// Byte-pair encoding over a vocabulary and ranked merges (HF `models.BPE`): a word starts as its
/// characters (or `<0xNN>` byte tokens with `byte_fallback`, or the unknown token), then the
/// lowest-ranked adjacent pair is merged until no merge applies. Results are cached per word.
final class BPEModel: @unchecked Sendable {
    let tokenToId: [String: Int]
    /// id → token string ("" for ids the model does not define).
    let idToToken: [String]
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?

    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: PairRankTable
    /// Single-scalar tokens: scalars below 512 by table, others by dictionary.
    private let smallCharIds: [Int32]
    private let charIds: [UInt32: Int32]
    /// `<0xNN>` ids, -1 where missing.
    private let byteIds: [Int32]
    private let plainCharacters: Bool

    /// SentencePiece text reaches the model as one long word (no pre-tokenizer). When no token
    /// has a ▁ after another character, no merge can cross the start of a ▁ run, so the word is
    /// encoded run by run — exactly the same result, but cacheable and without a huge merge heap.
    private let splitsBeforeMetaspace: Bool
    static let metaspace: UInt32 = 0x2581

    private let cacheLock = NSLock()
    private var cache: [[UInt32]: EncodedWord] = [:]
    static let cacheCapacity = 200_000
    static let maximumCachedWordLength = 256

    init(vocab: [String: Int], merges mergePairs: [(String, String)], unkToken: String?, fuseUnk: Bool,
         byteFallback: Bool, ignoreMerges: Bool, continuingSubwordPrefix: String?, endOfWordSuffix: String?,
         names explicitNames: [String]? = nil, file: String?, field: String = "model") throws {
        tokenToId = vocab
        let maxId = vocab.values.max() ?? -1
        // Ids index dense tables; a stray huge id would allocate gigabytes.
        guard maxId < max(4 * vocab.count, 1 << 20) else {
            throw ForgeError(.badInput, "token id \(maxId) is far beyond the vocabulary size \(vocab.count)", file: file, location: "\(field).vocab")
        }
        var names = [String](repeating: "", count: maxId + 1)
        for (token, id) in vocab {
            guard id >= 0, id <= Int(Int32.max) else {
                throw ForgeError(.badInput, "token \(JSONText.quoted(token)) has invalid id \(id)", file: file, location: "\(field).vocab")
            }
            names[id] = token
        }
        // A GGUF token list may repeat a string; every id still has its own name.
        idToToken = explicitNames ?? names
        if let unkToken {
            // HF accepts an unk_token missing from the vocabulary until it is needed; so do we.
            unkId = vocab[unkToken].map(Int32.init)
        } else {
            unkId = nil
        }
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = (continuingSubwordPrefix?.isEmpty ?? true) ? nil : continuingSubwordPrefix
        self.endOfWordSuffix = (endOfWordSuffix?.isEmpty ?? true) ? nil : endOfWordSuffix
        plainCharacters = self.continuingSubwordPrefix == nil && self.endOfWordSuffix == nil

        var small = [Int32](repeating: -1, count: 512)
        var chars: [UInt32: Int32] = [:]
        for (token, id) in vocab {
            var it = token.unicodeScalars.makeIterator()
            guard let first = it.next(), it.next() == nil else { continue }
            if first.value < 512 { small[Int(first.value)] = Int32(id) } else { chars[first.value] = Int32(id) }
        }
        smallCharIds = small
        charIds = chars
        var bytes = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            let name = "<0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true) + ">"
            if let id = vocab[name] { bytes[b] = Int32(id) }
        }
        byteIds = bytes
        var splittable = !ignoreMerges && plainCharacters && vocab["\u{2581}"] != nil
        if splittable {
            for token in vocab.keys {
                var previous: UInt32 = Self.metaspace
                for u in token.unicodeScalars {
                    if u.value == Self.metaspace, previous != Self.metaspace { splittable = false; break }
                    previous = u.value
                }
                if !splittable { break }
            }
        }
        splitsBeforeMetaspace = splittable

        var table = PairRankTable(capacity: mergePairs.count)
        let prefixLength = self.continuingSubwordPrefix?.count ?? 0
        for (rank, pair) in mergePairs.enumerated() {
            guard let a = vocab[pair.0], let b = vocab[pair.1] else {
                throw ForgeError(.badInput, "merge \(JSONText.quoted(pair.0 + " " + pair.1)) uses a token missing from the vocabulary",
                                 file: file, location: "\(field).merges[\(rank)]")
            }
            var right = pair.1
            if prefixLength > 0, let p = self.continuingSubwordPrefix, right.hasPrefix(p) { right = String(right.dropFirst(prefixLength)) }
            guard let merged = vocab[pair.0 + right] else {
                throw ForgeError(.badInput, "merge \(JSONText.quoted(pair.0 + " " + pair.1)) makes \(JSONText.quoted(pair.0 + right)), which is not in the vocabulary",
                                 file: file, location: "\(field).merges[\(rank)]")
            }
            let key = UInt64(a) << 32 | UInt64(b)
            // A repeated pair keeps its last rank, as HF's map-building does.
            table.set(key, UInt64(rank) << 32 | UInt64(merged))
        }
        merges = table
    }

    var mergeCount: Int { merges.count }

    // MARK: - Encoding

    /// Tokens of one pre-tokenized word.
    func encode(word: UnsafeBufferPointer<UInt32>) -> EncodedWord {
        guard splitsBeforeMetaspace, word.count > 1 else { return encodeWhole(word) }
        var result = EncodedWord(ids: [], starts: [])
        var start = 0
        for i in 1...word.count where i == word.count || (word[i] == Self.metaspace && word[i - 1] != Self.metaspace) {
            let part = encodeWhole(UnsafeBufferPointer(rebasing: word[start..<i]))
            if start == 0, i == word.count { return part }
            result.ids.append(contentsOf: part.ids)
            for s in part.starts { result.starts.append(s + Int32(start)) }
            start = i
        }
        return result
    }

    private func encodeWhole(_ word: UnsafeBufferPointer<UInt32>) -> EncodedWord {
        let cacheable = word.count <= Self.maximumCachedWordLength
        var key: [UInt32] = []
        if cacheable {
            key = Array(word)
            cacheLock.lock()
            let hit = cache[key]
            cacheLock.unlock()
            if let hit { return hit }
        }
        let result = encodeUncached(word)
        if cacheable {
            cacheLock.lock()
            if cache.count < Self.cacheCapacity { cache[key] = result }
            cacheLock.unlock()
        }
        return result
    }

    private func lookupCharacter(_ v: UInt32, first: Bool, last: Bool) -> Int32? {
        if plainCharacters {
            if v < 512 { let id = smallCharIds[Int(v)]; return id >= 0 ? id : nil }
            return charIds[v]
        }
        var s = ""
        if !first, let p = continuingSubwordPrefix { s += p }
        if let u = Unicode.Scalar(v) { s.unicodeScalars.append(u) }
        if last, let e = endOfWordSuffix { s += e }
        return tokenToId[s].map(Int32.init)
    }

    private func encodeUncached(_ word: UnsafeBufferPointer<UInt32>) -> EncodedWord {
        let n = word.count
        if ignoreMerges, let id = tokenToId[String(scalarValues: word)] {
            return EncodedWord(ids: [Int32(id)], starts: [0])
        }
        var ids: [Int32] = []
        var starts: [Int32] = []
        ids.reserveCapacity(n)
        starts.reserveCapacity(n)
        var lastIsUnk = false
        for k in 0..<n {
            let v = word[k]
            if let id = lookupCharacter(v, first: k == 0, last: k == n - 1) {
                ids.append(id); starts.append(Int32(k)); lastIsUnk = false
                continue
            }
            if byteFallback {
                var utf8: [UInt8] = []
                appendUTF8(v, to: &utf8)
                if utf8.allSatisfy({ byteIds[Int($0)] >= 0 }) {
                    for b in utf8 { ids.append(byteIds[Int(b)]); starts.append(Int32(k)) }
                    lastIsUnk = false
                    continue
                }
            }
            if let unk = unkId {
                if fuseUnk, lastIsUnk { continue }
                ids.append(unk); starts.append(Int32(k)); lastIsUnk = true
            }
        }
        if ids.count > 1 {
            if ids.count <= 64 { mergeByScan(&ids, &starts) } else { mergeByHeap(&ids, &starts) }
        }
        return EncodedWord(ids: ids, starts: starts)
    }

    @inline(__always) private func rankAndId(_ a: Int32, _ b: Int32) -> UInt64? {
        merges.get(UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)))
    }

    /// Short words: keep the rank of every adjacent pair, merge the lowest (leftmost on ties),
    /// refresh only the two neighbouring pairs.
    private func mergeByScan(_ ids: inout [Int32], _ starts: inout [Int32]) {
        let none = UInt64.max
        var pairs = [UInt64](repeating: none, count: ids.count - 1)
        for i in 0..<(ids.count - 1) { pairs[i] = rankAndId(ids[i], ids[i + 1]) ?? none }
        while !pairs.isEmpty {
            var best = none
            var at = -1
            for i in 0..<pairs.count where pairs[i] < best { best = pairs[i]; at = i }
            guard at >= 0 else { break }
            // Compare by rank only: the low 32 bits (merged id) never decide, ranks are unique per pair.
            ids[at] = Int32(truncatingIfNeeded: best & 0xFFFF_FFFF)
            ids.remove(at: at + 1)
            starts.remove(at: at + 1)
            pairs.remove(at: at)
            if at > 0 { pairs[at - 1] = rankAndId(ids[at - 1], ids[at]) ?? none }
            if at < pairs.count { pairs[at] = rankAndId(ids[at], ids[at + 1]) ?? none }
        }
    }

    /// Long words: a min-heap of candidate merges over a linked list of symbols (O(n log n)).
    private func mergeByHeap(_ ids: inout [Int32], _ starts: inout [Int32]) {
        let n = ids.count
        var prev = [Int](repeating: -1, count: n)
        var next = [Int](repeating: -1, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1 }
        var heap = CandidateHeap()
        for i in 0..<(n - 1) {
            if let r = rankAndId(ids[i], ids[i + 1]) {
                heap.push(Candidate(rank: UInt32(r >> 32), position: Int32(i), merged: Int32(truncatingIfNeeded: r & 0xFFFF_FFFF)))
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.position)
            guard alive[pos] else { continue }
            let right = next[pos]
            guard right >= 0 else { continue }
            guard let r = rankAndId(ids[pos], ids[right]), Int32(truncatingIfNeeded: r & 0xFFFF_FFFF) == top.merged,
                  UInt32(r >> 32) == top.rank else { continue }
            ids[pos] = top.merged
            alive[right] = false
            let after = next[right]
            next[pos] = after
            if after >= 0 { prev[after] = pos }
            if prev[pos] >= 0, let r = rankAndId(ids[prev[pos]], ids[pos]) {
                heap.push(Candidate(rank: UInt32(r >> 32), position: Int32(prev[pos]), merged: Int32(truncatingIfNeeded: r & 0xFFFF_FFFF)))
            }
            if after >= 0, let r = rankAndId(ids[pos], ids[after]) {
                heap.push(Candidate(rank: UInt32(r >> 32), position: Int32(pos), merged: Int32(truncatingIfNeeded: r & 0xFFFF_FFFF)))
            }
        }
        var outIds: [Int32] = []
        var outStarts: [Int32] = []
        var i = 0
        while i >= 0 {
            outIds.append(ids[i]); outStarts.append(starts[i])
            i = next[i]
        }
        ids = outIds
        starts = outStarts
    }
}

private struct Candidate {
    var rank: UInt32
    var position: Int32
    var merged: Int32
    @inline(__always) static func < (a: Candidate, b: Candidate) -> Bool {
        a.rank != b.rank ? a.rank < b.rank : a.position < b.position
    }
}

private struct CandidateHeap {
    private var items: [Candidate] = []

    mutating func push(_ c: Candidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var smallest = i
                if l < items.count, items[l] < items[smallest] { smallest = l }
                if r < items.count, items[r] < items[smallest] { smallest = r }
                if smallest == i { break }
                items.swapAt(i, smallest)
                i = smallest
            }
        }
        return first
    }
}
