/// Shortest completions of `JSONAutomaton` states, for closing a JSON value when the token budget
/// runs out (`TokenConstraint.remainingTokens`).
///
/// Breadth-first over bytes from every live stack at once (so an undecided anyOf picks the
/// alternative that finishes first), in the search's own arena. States are deduplicated by their
/// content — a stack is identified by its top frame and the identity of the stack below it — so
/// the frontier stays small: every plain character of a string leads to the same next state.
///
/// The bytes tried are a reduced alphabet that still reaches a shortest completion of every
/// state: the structural bytes, number bytes, `.` as the one string filler (every plain ASCII
/// character moves a string the same way; escapes, whitespace and multi-byte characters only
/// add bytes), the bytes of the grammar's keys and literals, and continuation bytes to finish a
/// UTF-8 character already begun. Ties go to the earlier byte of
/// that list, so completions read like `."}]}` rather than arbitrary bytes.
final class CompletionSearch {
    let automaton: JSONAutomaton
    let alphabet: [UInt8]
    /// States visited before giving up (the schema demands a very long completion).
    let maxStates: Int
    private let scratch: UnsafeMutablePointer<Int32>
    private static let scratchCount = 64
    /// Canonical id per arena slot (-1: not computed).
    private let canonical: UnsafeMutablePointer<Int32>
    private var ids: [Key: Int32] = [:]
    private var visited: [Bool] = []
    private var chain: [Int32] = []
    /// Stacks one state's expansion produced by replacing its top (most bytes inside a string
    /// give the same one): recognized by a frame comparison before any hashing.
    private var recent: [(frame: JSONFrame, below: Int32)] = []

    struct Key: Hashable {
        var frame: JSONFrame
        var below: Int32
    }

    init(grammar: JSONGrammar, maxStates: Int = 2048) {
        self.maxStates = maxStates
        // Each kept state adds at most a few frames; duplicates and rejections are rewound.
        let capacity = maxStates * 4 + 2048
        automaton = JSONAutomaton(grammar: grammar, capacity: capacity)
        scratch = .allocate(capacity: Self.scratchCount)
        canonical = .allocate(capacity: capacity)
        alphabet = Self.alphabet(for: grammar)
    }

    deinit {
        scratch.deallocate()
        canonical.deallocate()
    }

    static func alphabet(for grammar: JSONGrammar) -> [UInt8] {
        var order = Array("\".}],:{[0123456789-eE+".utf8)
        var seen = Set(order)
        // Then one continuation byte for each range a partial UTF-8 character can need next.
        for b in grammar.bytes + [0x80, 0x90, 0xA0] where !seen.contains(b) {
            order.append(b)
            seen.insert(b)
        }
        return order
    }

    /// The shortest bytes that complete a value from `stacks` (each bottom → top) after `prefix`
    /// has been fed to them: empty when the value can already end; nil when `prefix` is
    /// rejected or the search bound is hit.
    func shortest(from stacks: [[JSONFrame]], after prefix: [UInt8] = []) -> [UInt8]? {
        let a = automaton
        a.count = 0
        var tops: [Int32] = []
        for s in stacks {
            let t = a.load(s)
            if t >= 0 { tops.append(t) }
        }
        for c in prefix {
            var next: [Int32] = []
            for t in tops {
                var out = StepOutput(tops: scratch, limit: Self.scratchCount)
                a.step(t, c, &out)
                for k in 0..<out.count { next.append(out.tops[k]) }
            }
            tops = Array(next.prefix(16))  // the constraint keeps at most 16 live stacks too
            if tops.isEmpty { return nil }
        }
        return search(from: tops)
    }

    private func search(from starts: [Int32]) -> [UInt8]? {
        let a = automaton
        ids.removeAll(keepingCapacity: true)
        visited.removeAll(keepingCapacity: true)
        for i in 0..<a.count { canonical[i] = -1 }
        // The states in visiting order: top in the arena, the state it came from, the byte.
        var tops: [Int32] = [], from: [Int32] = [], via: [UInt8] = []
        for t in starts {
            let id = canonicalID(t)
            if visited[Int(id)] { continue }
            visited[Int(id)] = true
            if a.canEnd(t) { return [] }
            tops.append(t); from.append(-1); via.append(0)
        }
        var head = 0
        while head < tops.count {
            let s = tops[head]
            recent.removeAll(keepingCapacity: true)
            for c in alphabet {
                guard tops.count < maxStates, a.count + 64 < a.capacity else { return nil }
                let mark = a.count
                var out = StepOutput(tops: scratch, limit: Self.scratchCount)
                a.step(s, c, &out)
                for i in mark..<a.count { canonical[i] = -1 }  // fresh slots
                var kept = false
                for k in 0..<out.count {
                    let r = out.tops[k]
                    if Int(r) >= mark {
                        let f = a.frames[Int(r)], below = a.parents[Int(r)]
                        if Int(below) < mark {
                            if recent.contains(where: { $0.below == below && $0.frame == f }) { continue }
                            recent.append((f, below))
                        }
                    }
                    let id = canonicalID(r)
                    if visited[Int(id)] { continue }
                    visited[Int(id)] = true
                    kept = true
                    tops.append(r); from.append(Int32(head)); via.append(c)
                    // Levels are visited in order, so the first complete state is a shortest one.
                    if a.canEnd(r) { return path(to: tops.count - 1, from: from, via: via) }
                }
                if !kept { a.count = mark }
            }
            head += 1
        }
        return nil
    }

    private func path(to state: Int, from: [Int32], via: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        var k = state
        while from[k] >= 0 {
            bytes.append(via[k])
            k = Int(from[k])
        }
        return bytes.reversed()
    }

    /// The id of the stack whose top is arena slot `i` (equal stacks, equal ids).
    private func canonicalID(_ i: Int32) -> Int32 {
        let a = automaton
        chain.removeAll(keepingCapacity: true)
        var j = i
        while j >= 0 && canonical[Int(j)] < 0 {
            chain.append(j)
            j = a.parents[Int(j)]
        }
        var below: Int32 = j >= 0 ? canonical[Int(j)] : -1
        for k in chain.reversed() {
            let key = Key(frame: a.frames[Int(k)], below: below)
            let id: Int32
            if let known = ids[key] {
                id = known
            } else {
                id = Int32(visited.count)
                ids[key] = id
                visited.append(false)
            }
            canonical[Int(k)] = id
            below = id
        }
        return canonical[Int(i)]
    }

    /// About how much one token can lengthen the shortest completion, in tokens: the longest
    /// minimal text an optional part of the grammar commits to at once (one more array item, an
    /// optional property, the costlier alternative of an anyOf), tokenized by `tokens` (nil:
    /// counted in bytes, an upper bound), plus a margin for escapes, partial UTF-8, numbers and
    /// tokenization. Clamped to [3, 48].
    static func lookahead(for g: JSONGrammar, tokens: ([UInt8]) -> Int? = { _ in nil }) -> Int {
        let infinite = 1 << 20  // anything longer is far past the clamp; keeps the sums below from overflowing
        var minimal = [Int](repeating: infinite, count: g.nodes.count)
        func value(_ node: Int32) -> Int { node >= 0 ? minimal[Int(node)] : infinite }
        var changed = true
        while changed {
            changed = false
            for (i, n) in g.nodes.enumerated() {
                var m = infinite
                switch n.kind {
                case .string: m = 2 + Int(n.b)
                case .number: m = 1
                case .freeObject: m = 2
                case .literals: m = (0..<Int(n.b)).map { Int(g.literals[Int(n.a) + $0].length) }.min() ?? infinite
                case .array: m = n.b == 0 ? 2 : min(infinite, 2 + Int(n.b) * value(n.a) + Int(n.b) - 1)
                case .anyOf: m = (0..<Int(n.b)).map { value(g.alternatives[Int(n.a) + $0]) }.min() ?? infinite
                case .object:
                    var total = 2, required = 0
                    for k in 0..<Int(n.b) {
                        let p = g.properties[Int(n.a) + k]
                        guard p.required else { continue }
                        total = min(infinite, total + 2 + Int(p.keyLength) + value(p.node))
                        required += 1
                    }
                    m = total + max(0, required - 1)
                }
                if m < minimal[i] { minimal[i] = m; changed = true }
            }
        }
        // The minimal text of a node, following the choices the lengths above made.
        func text(_ node: Int32, _ depth: Int = 0) -> [UInt8] {
            guard node >= 0, depth < 64 else { return [] }
            let n = g.nodes[Int(node)]
            switch n.kind {
            case .string: return [0x22] + [UInt8](repeating: UInt8(ascii: "."), count: Int(n.b)) + [0x22]
            case .number: return Array("0".utf8)
            case .freeObject: return Array("{}".utf8)
            case .literals:
                guard let best = (0..<Int(n.b)).min(by: { g.literals[Int(n.a) + $0].length < g.literals[Int(n.a) + $1].length }) else { return [] }
                let l = g.literals[Int(n.a) + best]
                return Array(g.bytes[Int(l.start)..<Int(l.start + l.length)])
            case .array:
                var out: [UInt8] = [UInt8(ascii: "[")]
                for k in 0..<Int(n.b) { out += (k > 0 ? [UInt8(ascii: ",")] : []) + text(n.a, depth + 1) }
                return out + [UInt8(ascii: "]")]
            case .anyOf:
                guard let best = (0..<Int(n.b)).min(by: { value(g.alternatives[Int(n.a) + $0]) < value(g.alternatives[Int(n.a) + $1]) }) else { return [] }
                return text(g.alternatives[Int(n.a) + best], depth + 1)
            case .object:
                var out: [UInt8] = [UInt8(ascii: "{")]
                for k in 0..<Int(n.b) {
                    let p = g.properties[Int(n.a) + k]
                    guard p.required else { continue }
                    if out.count > 1 { out.append(UInt8(ascii: ",")) }
                    out += [0x22] + g.bytes[Int(p.keyStart)..<Int(p.keyStart + p.keyLength)] + [UInt8(ascii: ":")] + text(p.node, depth + 1)
                }
                return out + [UInt8(ascii: "}")]
            }
        }
        func cost(_ node: Int32, prefix: [UInt8]) -> Int {
            let length = prefix.count + value(node)
            guard length <= 256 else { return length }
            let t = prefix + text(node)
            return tokens(t) ?? t.count
        }
        var widest = 0
        for n in g.nodes {
            switch n.kind {
            case .array where n.c > n.b: widest = max(widest, cost(n.a, prefix: Array(",".utf8)))
            case .freeObject: widest = max(widest, cost(n.a, prefix: Array(#","":"#.utf8)))
            case .anyOf: for k in 0..<Int(n.b) { widest = max(widest, cost(g.alternatives[Int(n.a) + k], prefix: [])) }
            case .object:
                for k in 0..<Int(n.b) {
                    let p = g.properties[Int(n.a) + k]
                    if !p.required && p.node >= 0 {
                        widest = max(widest, cost(p.node, prefix: [UInt8(ascii: ","), 0x22] + g.bytes[Int(p.keyStart)..<Int(p.keyStart + p.keyLength)] + [UInt8(ascii: ":")]))
                    }
                }
            default: break
            }
        }
        return min(48, max(3, widest + 3))
    }
}
