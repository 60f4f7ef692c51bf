/// One level of the pushdown automaton's stack (plain data, compared and hashed field by field).
struct JSONFrame: Hashable {
    enum Kind: UInt8 {
        /// The bottom: before the value (`phase` 0) or after it (1: only EOS may follow).
        case root
        case object
        case array
        case string
        case literal
        case number
    }
    var kind: Kind
    var phase: UInt8 = 0
    /// Whitespace bytes in the current run (strings: the `\u` surrogate flag).
    var whitespace: UInt8 = 0
    /// Frames below this one.
    var depth: UInt8 = 0
    var node: Int32 = 0
    /// object: the last property written (-1: none); array: items started; string: characters;
    /// literal: first candidate; number: digits in the current part.
    var a: Int32 = 0
    /// object: key offset; literal: one past the last candidate; string: UTF-8 continuation state.
    var b: Int32 = 0
    /// object: the candidate keys (bit k = property k); literal: bytes matched.
    var mask: UInt64 = 0
}

enum ObjectPhase {
    static let afterOpen: UInt8 = 0, inKey: UInt8 = 1, afterKey: UInt8 = 2, afterColon: UInt8 = 3, afterValue: UInt8 = 4, afterComma: UInt8 = 5
}

enum StringPhase {
    static let normal: UInt8 = 0, escape: UInt8 = 1, continuation: UInt8 = 2, hex: UInt8 = 3  // hex + k: k digits read
}

enum NumberPhase {
    static let minus: UInt8 = 0, zero: UInt8 = 1, integer: UInt8 = 2, dot: UInt8 = 3, fraction: UInt8 = 4
    static let exponentMark: UInt8 = 5, exponentSign: UInt8 = 6, exponent: UInt8 = 7
    static func isComplete(_ p: UInt8) -> Bool { p == zero || p == integer || p == fraction || p == exponent }
}

/// The byte-level pushdown automaton over a `JSONGrammar`: stacks of `JSONFrame`s live in an
/// arena as parent-linked frames, so a step copies nothing below the top, and a whole trie walk
/// allocates by bumping `count` and frees by rewinding it. Several stacks exist at once where an
/// `anyOf` has not been decided yet.
///
/// Every state it accepts has a completion (the grammar's unsatisfiable choices were removed, and
/// every repetition — whitespace runs, digits, string lengths, items — is bounded or can stop),
/// so a token whose bytes it accepts never leads to a dead end.
final class JSONAutomaton {
    let grammar: JSONGrammar
    private(set) var frames: UnsafeMutablePointer<JSONFrame>
    private(set) var parents: UnsafeMutablePointer<Int32>
    let capacity: Int
    var count = 0
    /// Stack depth limit (free-form JSON could nest without end).
    static let maximumDepth: UInt8 = 40
    static let maximumDigits: Int32 = 16
    static let maximumExponentDigits: Int32 = 3

    // Grammar tables as raw pointers (stable: the grammar is immutable once compiled).
    private let nodes: UnsafeMutableBufferPointer<JSONGrammar.Node>
    private let properties: UnsafeMutableBufferPointer<JSONGrammar.Property>
    private let literals: UnsafeMutableBufferPointer<JSONGrammar.Literal>
    private let alternatives: UnsafeMutableBufferPointer<Int32>
    private let bytes: UnsafeMutableBufferPointer<UInt8>
    private let maxWhitespace: UInt8

    init(grammar: JSONGrammar, capacity: Int) {
        self.grammar = grammar
        self.capacity = capacity
        frames = .allocate(capacity: capacity)
        parents = .allocate(capacity: capacity)
        func copy<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
            let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, a.count))
            _ = p.initialize(from: a)
            return p
        }
        nodes = copy(grammar.nodes)
        properties = copy(grammar.properties)
        literals = copy(grammar.literals)
        alternatives = copy(grammar.alternatives)
        bytes = copy(grammar.bytes)
        maxWhitespace = UInt8(clamping: grammar.maxWhitespaceRun)
    }

    deinit {
        frames.deallocate()
        parents.deallocate()
        nodes.deallocate()
        properties.deallocate()
        literals.deallocate()
        alternatives.deallocate()
        bytes.deallocate()
    }

    /// A new frame with `parent` below it; -1 when the arena or the depth limit is exhausted.
    @inline(__always) func push(_ frame: JSONFrame, parent: Int32) -> Int32 {
        guard count < capacity else { return -1 }
        var f = frame
        f.depth = parent >= 0 ? frames[Int(parent)].depth &+ 1 : 0
        guard f.depth < Self.maximumDepth else { return -1 }
        frames[count] = f
        parents[count] = parent
        count += 1
        return Int32(count - 1)
    }

    /// The initial stack: the root before any byte.
    func start() -> Int32 { push(JSONFrame(kind: .root, node: grammar.root), parent: -1) }

    /// Loads a stack given bottom → top; returns its top.
    func load(_ stack: [JSONFrame]) -> Int32 {
        var top: Int32 = -1
        for f in stack {
            guard count < capacity else { return -1 }
            frames[count] = f
            parents[count] = top
            count += 1
            top = Int32(count - 1)
        }
        return top
    }

    /// The stack under `top`, bottom → top.
    func stack(_ top: Int32) -> [JSONFrame] {
        var out: [JSONFrame] = []
        var i = top
        while i >= 0 { out.append(frames[Int(i)]); i = parents[Int(i)] }
        return out.reversed()
    }

    /// Whether the text so far is a complete value (EOS may follow).
    func canEnd(_ top: Int32) -> Bool {
        var i = top
        while i >= 0 {
            let f = frames[Int(i)]
            switch f.kind {
            case .root: return f.phase == 1
            case .number: guard NumberPhase.isComplete(f.phase) else { return false }
            case .literal: guard literalComplete(f) else { return false }
            default: return false
            }
            i = parents[Int(i)]
        }
        return false
    }

    /// Whether the value is finished and nothing may follow (generation ends with EOS).
    func isFinished(_ top: Int32) -> Bool {
        top >= 0 && frames[Int(top)].kind == .root && frames[Int(top)].phase == 1
    }

    @inline(__always) func isWhitespace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

    @inline(__always) private func replace(_ s: Int32, _ f: JSONFrame) -> Int32 {
        guard count < capacity else { return -1 }
        frames[count] = f
        parents[count] = parents[Int(s)]
        count += 1
        return Int32(count - 1)
    }

    /// The frame `f` after one more whitespace byte, if its run allows one.
    @inline(__always) private func whitespace(_ s: Int32, _ f: JSONFrame, _ out: inout StepOutput) {
        guard f.whitespace < maxWhitespace else { return }
        var g = f
        g.whitespace += 1
        out.append(replace(s, g))
    }

    /// Every stack `s` can become after byte `c` (appended to `out`; none when `c` is rejected).
    func step(_ s: Int32, _ c: UInt8, _ out: inout StepOutput) {
        let f = frames[Int(s)]
        switch f.kind {
        case .root:
            guard f.phase == 0 else { return }
            if isWhitespace(c) { whitespace(s, f, &out); return }
            var done = f
            done.phase = 1
            done.whitespace = 0
            let r = replace(s, done)
            if r >= 0 { begin(f.node, parent: r, c, &out) }
        case .object: stepObject(s, f, c, &out)
        case .array: stepArray(s, f, c, &out)
        case .string: stepString(s, f, c, &out)
        case .literal: stepLiteral(s, f, c, &out)
        case .number: stepNumber(s, f, c, &out)
        }
    }

    /// A value of `node` whose first byte is `c`, on top of `parent` (already in its after-value phase).
    func begin(_ node: Int32, parent: Int32, _ c: UInt8, _ out: inout StepOutput) {
        guard node >= 0 else { return }
        let n = nodes[Int(node)]
        switch n.kind {
        case .object, .freeObject:
            if c == UInt8(ascii: "{") { out.append(push(JSONFrame(kind: .object, phase: ObjectPhase.afterOpen, node: node, a: -1), parent: parent)) }
        case .array:
            if c == UInt8(ascii: "[") { out.append(push(JSONFrame(kind: .array, phase: 0, node: node), parent: parent)) }
        case .string:
            if c == 0x22 { out.append(push(JSONFrame(kind: .string, phase: StringPhase.normal, node: node), parent: parent)) }
        case .literals:
            let lo = Int(n.a), hi = Int(n.a + n.b)
            var first = -1, last = -1
            for k in lo..<hi where literals[k].length > 0 && bytes[Int(literals[k].start)] == c {
                if first < 0 { first = k }
                last = k
            }
            guard first >= 0 else { return }
            let f = JSONFrame(kind: .literal, node: node, a: Int32(first), b: Int32(last + 1), mask: 1)
            if first == last && literals[first].length == 1 { out.append(parent); return }
            out.append(push(f, parent: parent))
        case .number:
            if c == UInt8(ascii: "-") {
                out.append(push(JSONFrame(kind: .number, phase: NumberPhase.minus, node: node), parent: parent))
            } else if c == UInt8(ascii: "0") {
                out.append(push(JSONFrame(kind: .number, phase: NumberPhase.zero, node: node), parent: parent))
            } else if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") {
                out.append(push(JSONFrame(kind: .number, phase: NumberPhase.integer, node: node, a: 1), parent: parent))
            }
        case .anyOf:
            for k in 0..<Int(n.b) { begin(alternatives[Int(n.a) + k], parent: parent, c, &out) }
        }
    }

    // MARK: - Objects

    /// Candidate keys after property `last` (-1: none yet): the following enabled properties up
    /// to and including the first required one.
    private func candidates(_ n: JSONGrammar.Node, after last: Int32) -> UInt64 {
        let count = Int(n.b)
        let first = Int(last) + 1
        guard first < count else { return 0 }
        let stop = Int(properties[Int(n.a) + first].nextRequired)
        var mask: UInt64 = 0
        for k in first...min(stop, count - 1) where properties[Int(n.a) + k].node >= 0 { mask |= 1 << UInt64(k) }
        return mask
    }

    /// Whether `}` may follow property `last`: no required property after it.
    private func mayClose(_ n: JSONGrammar.Node, after last: Int32) -> Bool {
        let first = Int(last) + 1
        return first >= Int(n.b) || properties[Int(n.a) + first].nextRequired == n.b
    }

    private func stepObject(_ s: Int32, _ f: JSONFrame, _ c: UInt8, _ out: inout StepOutput) {
        let n = nodes[Int(f.node)]
        let free = n.kind == .freeObject
        switch f.phase {
        case ObjectPhase.afterOpen, ObjectPhase.afterComma, ObjectPhase.afterValue, ObjectPhase.afterKey:
            if isWhitespace(c) { whitespace(s, f, &out); return }
            var g = f
            g.whitespace = 0
            switch f.phase {
            case ObjectPhase.afterKey:
                guard c == UInt8(ascii: ":") else { return }
                g.phase = ObjectPhase.afterColon
                out.append(replace(s, g))
            case ObjectPhase.afterValue:
                if c == UInt8(ascii: ",") {
                    guard free || candidates(n, after: f.a) != 0 else { return }
                    g.phase = ObjectPhase.afterComma
                    out.append(replace(s, g))
                } else if c == UInt8(ascii: "}") {
                    if free || mayClose(n, after: f.a) { out.append(parents[Int(s)]) }
                }
            default:  // afterOpen, afterComma: a key (or `}` right after `{`)
                if c == UInt8(ascii: "}") && f.phase == ObjectPhase.afterOpen {
                    if free || mayClose(n, after: -1) { out.append(parents[Int(s)]) }
                    return
                }
                guard c == 0x22 else { return }
                if free {
                    g.phase = ObjectPhase.afterKey
                    let r = replace(s, g)
                    if r >= 0 { out.append(push(JSONFrame(kind: .string, phase: StringPhase.normal, node: grammar.keyStringNode), parent: r)) }
                } else {
                    let mask = candidates(n, after: f.a)
                    guard mask != 0 else { return }
                    g.phase = ObjectPhase.inKey
                    g.mask = mask
                    g.b = 0
                    out.append(replace(s, g))
                }
            }
        case ObjectPhase.inKey:
            var alive: UInt64 = 0
            var completed: Int32 = -1
            var m = f.mask
            let offset = f.b
            while m != 0 {
                let k = m.trailingZeroBitCount
                m &= m - 1
                let p = properties[Int(n.a) + k]
                guard offset < p.keyLength, bytes[Int(p.keyStart + offset)] == c else { continue }
                alive |= 1 << UInt64(k)
                if offset + 1 == p.keyLength { completed = Int32(k) }
            }
            guard alive != 0 else { return }
            var g = f
            if completed >= 0 {  // keys end with their closing quote, so a finished key is the only one left
                g.phase = ObjectPhase.afterKey
                g.a = completed
                g.mask = 0
                g.b = 0
                g.whitespace = 0
            } else {
                g.mask = alive
                g.b = offset + 1
            }
            out.append(replace(s, g))
        case ObjectPhase.afterColon:
            if isWhitespace(c) { whitespace(s, f, &out); return }
            var g = f
            g.phase = ObjectPhase.afterValue
            g.whitespace = 0
            let r = replace(s, g)
            guard r >= 0 else { return }
            begin(free ? n.a : properties[Int(n.a) + Int(f.a)].node, parent: r, c, &out)
        default: return
        }
    }

    // MARK: - Arrays

    private func stepArray(_ s: Int32, _ f: JSONFrame, _ c: UInt8, _ out: inout StepOutput) {
        let n = nodes[Int(f.node)]
        if isWhitespace(c) { whitespace(s, f, &out); return }
        var g = f
        g.whitespace = 0
        switch f.phase {
        case 1:  // after an item
            if c == UInt8(ascii: ",") {
                guard f.a < n.c else { return }
                g.phase = 2
                out.append(replace(s, g))
            } else if c == UInt8(ascii: "]") {
                if f.a >= n.b { out.append(parents[Int(s)]) }
            }
        default:  // 0: after `[`, 2: after `,`
            if c == UInt8(ascii: "]") && f.phase == 0 {
                if n.b == 0 { out.append(parents[Int(s)]) }
                return
            }
            guard f.a < n.c else { return }
            g.phase = 1
            g.a = f.a &+ 1
            let r = replace(s, g)
            if r >= 0 { begin(n.a, parent: r, c, &out) }
        }
    }

    // MARK: - Strings

    private func stepString(_ s: Int32, _ f: JSONFrame, _ c: UInt8, _ out: inout StepOutput) {
        let n = nodes[Int(f.node)]
        var g = f
        switch f.phase {
        case StringPhase.normal:
            if c == 0x22 {
                if f.a >= n.b { out.append(parents[Int(s)]) }
                return
            }
            guard c >= 0x20, f.a < n.c else { return }
            g.a = f.a + 1
            if c == 0x5C {
                g.phase = StringPhase.escape
            } else if c >= 0x80 {
                // UTF-8 lead byte: remaining continuation bytes and the allowed range of the next one.
                guard let lead = utf8Lead(c) else { return }
                g.phase = StringPhase.continuation
                g.b = Int32(lead.continuations) | Int32(lead.lo) << 8 | Int32(lead.hi) << 16
            }
            out.append(replace(s, g))
        case StringPhase.continuation:
            let remaining = f.b & 0xFF, lo = (f.b >> 8) & 0xFF, hi = (f.b >> 16) & 0xFF
            guard Int32(c) >= lo, Int32(c) <= hi else { return }
            if remaining == 1 {
                g.phase = StringPhase.normal
                g.b = 0
            } else {
                g.b = (remaining - 1) | 0x80 << 8 | 0xBF << 16
            }
            out.append(replace(s, g))
        case StringPhase.escape:
            switch c {
            case 0x22, 0x5C, 0x2F, UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                g.phase = StringPhase.normal
            case UInt8(ascii: "u"):
                g.phase = StringPhase.hex
                g.whitespace = 0
            default: return
            }
            out.append(replace(s, g))
        default:  // \u digits; surrogates (D800–DFFF) are refused so every escape stands alone
            let k = f.phase - StringPhase.hex
            let isHex = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
            guard isHex else { return }
            if k == 0 && (c == UInt8(ascii: "d") || c == UInt8(ascii: "D")) { g.whitespace = 1 }
            if k == 1 && f.whitespace == 1 && !(c >= 0x30 && c <= 0x37) { return }
            g.phase = k == 3 ? StringPhase.normal : f.phase + 1
            if k == 3 { g.whitespace = 0 }
            out.append(replace(s, g))
        }
    }

    // MARK: - Literals and numbers

    @inline(__always) private func literalComplete(_ f: JSONFrame) -> Bool {
        literals[Int(f.a)].length == Int32(truncatingIfNeeded: f.mask)
    }

    private func stepLiteral(_ s: Int32, _ f: JSONFrame, _ c: UInt8, _ out: inout StepOutput) {
        let offset = Int32(truncatingIfNeeded: f.mask)
        var first = -1, last = -1
        for k in Int(f.a)..<Int(f.b) {
            let l = literals[k]
            if l.length > offset && bytes[Int(l.start + offset)] == c {
                if first < 0 { first = k }
                last = k
            } else if first >= 0 {
                break  // sorted: the matches are contiguous
            }
        }
        if first < 0 {
            // A finished literal (a number that another candidate extends) hands `c` on.
            if literalComplete(f) { step(parents[Int(s)], c, &out) }
            return
        }
        if first == last && literals[first].length == offset + 1 { out.append(parents[Int(s)]); return }
        var g = f
        g.a = Int32(first)
        g.b = Int32(last + 1)
        g.mask = UInt64(offset + 1)
        out.append(replace(s, g))
    }

    private func stepNumber(_ s: Int32, _ f: JSONFrame, _ c: UInt8, _ out: inout StepOutput) {
        let integerOnly = nodes[Int(f.node)].b == 1
        let digit = c >= 0x30 && c <= 0x39
        var g = f
        func go(_ phase: UInt8, digits: Int32) {
            g.phase = phase
            g.a = digits
            out.append(replace(s, g))
        }
        switch f.phase {
        case NumberPhase.minus:
            if c == 0x30 { go(NumberPhase.zero, digits: 1) } else if digit { go(NumberPhase.integer, digits: 1) }
            return
        case NumberPhase.dot:
            if digit { go(NumberPhase.fraction, digits: 1) }
            return
        case NumberPhase.exponentMark:
            if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") { go(NumberPhase.exponentSign, digits: 0) } else if digit { go(NumberPhase.exponent, digits: 1) }
            return
        case NumberPhase.exponentSign:
            if digit { go(NumberPhase.exponent, digits: 1) }
            return
        case NumberPhase.integer where digit && f.a < Self.maximumDigits:
            go(NumberPhase.integer, digits: f.a + 1)
            return
        case NumberPhase.fraction where digit && f.a < Self.maximumDigits:
            go(NumberPhase.fraction, digits: f.a + 1)
            return
        case NumberPhase.exponent where digit && f.a < Self.maximumExponentDigits:
            go(NumberPhase.exponent, digits: f.a + 1)
            return
        default: break
        }
        if !integerOnly {
            if c == UInt8(ascii: "."), f.phase == NumberPhase.zero || f.phase == NumberPhase.integer { go(NumberPhase.dot, digits: 0); return }
            if c == UInt8(ascii: "e") || c == UInt8(ascii: "E"), f.phase != NumberPhase.exponent { go(NumberPhase.exponentMark, digits: 0); return }
        }
        // The number is over: `c` belongs to what follows it.
        step(parents[Int(s)], c, &out)
    }
}

/// The stacks one step produced (at most `limit`: beyond it, undecided alternatives are dropped,
/// which keeps every accepted prefix valid).
struct StepOutput {
    var tops: UnsafeMutablePointer<Int32>
    var count = 0
    let limit: Int

    @inline(__always) mutating func append(_ top: Int32) {
        guard top >= 0, count < limit else { return }
        tops[count] = top
        count += 1
    }
}
