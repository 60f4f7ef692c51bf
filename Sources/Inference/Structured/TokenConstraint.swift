import Dispatch
import ForgeCore
import Foundation

/// Compiles `ResponseFormat`s against one tokenizer's vocabulary and makes per-request
/// constraints. Compiled grammars are cached by schema text (a server sees the same few schemas
/// again and again). Thread-safe.
public final class JSONConstraintCompiler: @unchecked Sendable {
    public let vocabulary: TokenVocabulary
    /// Whitespace bytes allowed in a row between JSON tokens: enough for `": "` and a newline
    /// with a little indentation, too little for a small model to loop on.
    public let maxWhitespaceRun: Int
    private let lock = NSLock()
    private var cache: [String: JSONGrammar] = [:]

    public init(vocabulary: TokenVocabulary, maxWhitespaceRun: Int = 4) {
        self.vocabulary = vocabulary
        self.maxWhitespaceRun = maxWhitespaceRun
    }

    /// The grammar of `format` (nil for `.text`); an unsupported schema throws a `.badInput`
    /// `ForgeError` naming the keyword and where it is (the server answers 400).
    public func grammar(for format: ResponseFormat) throws -> JSONGrammar? {
        let key: String
        switch format {
        case .text: return nil
        case .jsonObject: key = "json_object"
        case .jsonSchema(_, let schema, _): key = "schema:" + schema
        }
        lock.lock()
        if let g = cache[key] { lock.unlock(); return g }
        lock.unlock()
        let g: JSONGrammar
        switch format {
        case .jsonSchema(_, let schema, _): g = try JSONSchemaCompiler.compile(schemaText: schema, maxWhitespaceRun: maxWhitespaceRun)
        default: g = JSONGrammar.anyJSONObject(maxWhitespaceRun: maxWhitespaceRun)
        }
        lock.lock()
        if cache.count >= 64 { cache.removeAll() }
        cache[key] = g
        lock.unlock()
        return g
    }

    /// A fresh constraint for one request (nil for `.text`). `stopTokenIDs` are the ids that end
    /// generation; they are the only tokens allowed once the JSON value is complete.
    public func makeConstraint(for format: ResponseFormat, stopTokenIDs: Set<Int>) throws -> TokenConstraint? {
        guard let g = try grammar(for: format) else { return nil }
        guard !stopTokenIDs.isEmpty else {
            throw ForgeError(.usage, "structured output needs an end-of-sequence token id to end the JSON value with")
        }
        return TokenConstraint(grammar: g, vocabulary: vocabulary, stopTokenIDs: stopTokenIDs)
    }
}

/// The state of one constrained generation: which tokens may come next (`allowedMask`,
/// `mask(_:)`), and `accept` to advance past the chosen one. Not thread-safe (one per request).
public final class TokenConstraint {
    public let vocabulary: TokenVocabulary
    let automaton: JSONAutomaton
    let stopTokenIDs: [Int]
    /// The live stacks (bottom → top); several while an anyOf is undecided.
    var stacks: [[JSONFrame]]
    var mask: [UInt64]
    private let maxStacks = 16
    private let scratch: UnsafeMutablePointer<Int32>
    private let levelTops: UnsafeMutablePointer<Int32>
    private let levelCount: UnsafeMutablePointer<Int>
    private let levelMark: UnsafeMutablePointer<Int>

    /// Time spent computing masks, and how many were computed.
    public private(set) var maskSeconds = 0.0
    public private(set) var maskCount = 0
    /// A token outside the mask was accepted: only the stop tokens are allowed from then on.
    public private(set) var isBroken = false

    /// Tokens the caller can still generate, counting the one about to be chosen (nil: no
    /// limit). Set it before every mask: when only just enough are left to finish the value (and
    /// one more for the stop token), the mask allows only the next token of the value's shortest
    /// completion (see TokenBudget.swift).
    public var remainingTokens: Int?
    /// The value was closed early because the budget ran out: it is complete JSON, but the field
    /// being written when closing began was cut short.
    public internal(set) var closedAtTokenBudget = false
    var budget = BudgetState()

    init(grammar: JSONGrammar, vocabulary: TokenVocabulary, stopTokenIDs: Set<Int>) {
        self.vocabulary = vocabulary
        self.stopTokenIDs = stopTokenIDs.sorted()
        let levels = vocabulary.longestToken + 2
        automaton = JSONAutomaton(grammar: grammar, capacity: 4096 + levels * maxStacks * 8)
        scratch = .allocate(capacity: maxStacks * 4)
        levelTops = .allocate(capacity: levels * maxStacks)
        levelCount = .allocate(capacity: levels)
        levelMark = .allocate(capacity: levels)
        mask = [UInt64](repeating: 0, count: vocabulary.words)
        automaton.count = 0
        stacks = [automaton.stack(automaton.start())]
    }

    deinit {
        scratch.deallocate()
        levelTops.deallocate()
        levelCount.deallocate()
        levelMark.deallocate()
    }

    /// The JSON value is complete and nothing may follow it but a stop token.
    public var isComplete: Bool {
        automaton.count = 0
        return stacks.contains { automaton.isFinished(automaton.load($0)) }
    }

    /// Sets the logits of every token not allowed next to -inf (ids past the vocabulary too).
    public func mask(_ logits: inout [Float]) {
        let allowed = allowedMask()
        logits.withUnsafeMutableBufferPointer { l in
            let n = l.count
            for w in 0..<((n + 63) / 64) {
                let bits = w < allowed.count ? allowed[w] : 0
                if bits == ~0 { continue }
                let base = w * 64
                for k in 0..<min(64, n - base) where bits & (1 << UInt64(k)) == 0 { l[base + k] = -.infinity }
            }
        }
    }

    /// Bit i set = token i may come next. Always holds at least one token (a stop token when the
    /// value is complete, or when the state was broken by a token outside the mask).
    public func allowedMask() -> [UInt64] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            maskSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            maskCount += 1
        }
        if let remaining = remainingTokens, !isBroken, !stacks.isEmpty {
            switch budgetAction(remaining: remaining) {
            case .free: break
            case .force(let id):
                for w in 0..<mask.count { mask[w] = 0 }
                mask[id >> 6] |= 1 << UInt64(id & 63)
                return mask
            case .stopsOnly:
                for w in 0..<mask.count { mask[w] = 0 }
                for id in stopTokenIDs where id >= 0 && id < vocabulary.count { mask[id >> 6] |= 1 << UInt64(id & 63) }
                return mask
            case .filter(let limit, let slack):
                computeMask()
                removeTokensPastBudget(limit: limit, slack: slack)
                return mask
            }
        }
        computeMask()
        return mask
    }

    /// The grammar's mask for the live stacks, into `mask`.
    private func computeMask() {
        for w in 0..<mask.count { mask[w] = 0 }
        var canEnd = isBroken || stacks.isEmpty
        for stack in stacks {
            automaton.count = 0
            let top = automaton.load(stack)
            guard top >= 0 else { continue }
            if automaton.canEnd(top) { canEnd = true }
            let f = automaton.frames[Int(top)]
            let node = automaton.grammar.nodes[Int(f.node)]
            if f.kind == .string && f.phase == StringPhase.normal {
                // Plain content tokens that fit the remaining length come from the table; the
                // rest (quotes, escapes, control bytes, partial UTF-8) are walked.
                let remaining = Int(node.c) - Int(f.a)
                if remaining > 0 {
                    let table = vocabulary.plainUpTo
                    let row = table[min(remaining, table.count - 1)]
                    for w in 0..<mask.count { mask[w] |= row[w] }
                }
                walk(vocabulary.nonPlainTrie, from: top)
            } else {
                walk(vocabulary.fullTrie, from: top)
            }
        }
        if canEnd {
            for id in stopTokenIDs where id >= 0 && id < vocabulary.count { mask[id >> 6] |= 1 << UInt64(id & 63) }
        }
        // Stop ids are never JSON text, whatever their bytes.
        if !canEnd {
            for id in stopTokenIDs where id >= 0 && id < vocabulary.count { mask[id >> 6] &= ~(1 << UInt64(id & 63)) }
        }
        if mask.allSatisfy({ $0 == 0 }) {
            for id in stopTokenIDs where id >= 0 && id < vocabulary.count { mask[id >> 6] |= 1 << UInt64(id & 63) }
        }
    }

    /// Depth-first over the trie in preorder: the state at depth d is the set of stacks after the
    /// first d bytes; a rejected byte skips the node's whole subtree.
    private func walk(_ trie: TokenVocabulary.Trie, from top: Int32) {
        let a = automaton
        levelTops[0] = top
        levelCount[0] = 1
        levelMark[0] = a.count
        let n = trie.byte.count
        trie.byte.withUnsafeBufferPointer { bytes in
        trie.depth.withUnsafeBufferPointer { depth in
        trie.skip.withUnsafeBufferPointer { skip in
        trie.tokenStart.withUnsafeBufferPointer { tokenStart in
        trie.tokens.withUnsafeBufferPointer { tokens in
        mask.withUnsafeMutableBufferPointer { mask in
            var i = 0
            while i < n {
                let d = Int(depth[i])
                a.count = levelMark[d - 1]
                var out = StepOutput(tops: levelTops + d * maxStacks, limit: maxStacks)
                let parentTops = levelTops + (d - 1) * maxStacks
                for k in 0..<levelCount[d - 1] { a.step(parentTops[k], bytes[i], &out) }
                if out.count == 0 {
                    i = Int(skip[i])
                    continue
                }
                levelCount[d] = out.count
                levelMark[d] = a.count
                for t in Int(tokenStart[i])..<Int(tokenStart[i + 1]) {
                    let id = Int(tokens[t])
                    mask[id >> 6] |= 1 << UInt64(id & 63)
                }
                i += 1
            }
        }}}}}}
    }

    /// Advances past token `id` (the one just sampled). A stop token changes nothing; a token
    /// outside the mask breaks the constraint (from then on only stop tokens are allowed).
    public func accept(_ id: Int) {
        guard !stopTokenIDs.contains(id) else { return }
        budgetAccepted(id)
        guard !isBroken, id >= 0, id < vocabulary.tokenBytes.count, let bytes = vocabulary.tokenBytes[id], !bytes.isEmpty,
              advance(bytes) else {
            isBroken = true
            stacks = []
            return
        }
    }

    /// Feeds raw text (tests and benchmarks: is this a valid prefix?); false when it is rejected.
    public func acceptText(_ text: [UInt8]) -> Bool { accept(text: text) }

    func accept(text: [UInt8]) -> Bool {
        budgetAccepted(nil)
        guard !isBroken, advance(text) else { isBroken = true; stacks = []; return false }
        return true
    }

    /// Whether `bytes` would be accepted from here, and whether the value could end after them;
    /// the state is left unchanged (tests compare masks against this brute force).
    func wouldAccept(_ bytes: [UInt8]) -> (accepted: Bool, canEnd: Bool) {
        let saved = stacks
        defer { stacks = saved }
        guard !isBroken, advance(bytes) else { return (false, false) }
        return (true, canEnd)
    }

    /// Steps every live stack through `bytes`, materializing the stacks every 64 bytes so the
    /// arena never fills; duplicates (alternatives that converged) are merged.
    private func advance(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let chunk = bytes[offset..<min(bytes.count, offset + 64)]
            offset += chunk.count
            var next: [[JSONFrame]] = []
            for stack in stacks {
                automaton.count = 0
                var tops = [automaton.load(stack)]
                for c in chunk {
                    var produced: [Int32] = []
                    for t in tops where t >= 0 {
                        var out = StepOutput(tops: scratch, limit: maxStacks * 4)
                        automaton.step(t, c, &out)
                        for k in 0..<out.count { produced.append(out.tops[k]) }
                    }
                    tops = Array(produced.prefix(maxStacks))
                    if tops.isEmpty { break }
                }
                for t in tops {
                    let s = automaton.stack(t)
                    if next.count < maxStacks && !next.contains(s) { next.append(s) }
                }
            }
            stacks = next
            if stacks.isEmpty { return false }
        }
        return true
    }

    /// Whether the text so far is a complete value.
    public var canEnd: Bool {
        stacks.contains { s in
            automaton.count = 0
            return automaton.canEnd(automaton.load(s))
        }
    }
}
