import ForgeCore

/// A JSON-schema subset compiled into flat tables the byte automaton (`JSONAutomaton`) walks:
/// nodes (object / free object / array / string / literal set / number / anyOf), the properties
/// of objects, the bytes of keys and literals. Plain value types only, so a step never retains.
public final class JSONGrammar: @unchecked Sendable {
    enum Kind: UInt8 {
        /// Properties in schema order; `a` = first row in `properties`, `b` = count.
        case object
        /// Any keys (strings) with values of node `a` (json_object mode).
        case freeObject
        /// Items of node `a`, `b`...`c` items.
        case array
        /// `b`...`c` characters (code points).
        case string
        /// One of the literal JSON texts `literals[a ..< a + b]`, sorted bytewise.
        case literals
        /// A JSON number; `b` = 1 for integers (no fraction or exponent).
        case number
        /// Any of the nodes `alternatives[a ..< a + b]`.
        case anyOf
    }

    struct Node {
        var kind: Kind
        var a: Int32 = 0
        var b: Int32 = 0
        var c: Int32 = 0
    }

    struct Property {
        /// Into `bytes`: the key's JSON text after the opening quote, closing quote included.
        var keyStart: Int32
        var keyLength: Int32
        var node: Int32
        var required: Bool
        /// Index (within its object) of the first required property at or after this one, or the count.
        var nextRequired: Int32
    }

    struct Literal {
        var start: Int32
        var length: Int32
    }

    static let unbounded = Int32.max

    var nodes: [Node] = []
    var properties: [Property] = []
    var literals: [Literal] = []
    var alternatives: [Int32] = []
    var bytes: [UInt8] = []
    /// Node of the whole value.
    public internal(set) var root: Int32 = 0
    /// Whitespace bytes allowed in a row at one place (between tokens of the JSON text).
    public let maxWhitespaceRun: Int

    init(maxWhitespaceRun: Int) {
        self.maxWhitespaceRun = maxWhitespaceRun
    }

    func add(_ node: Node) -> Int32 {
        nodes.append(node)
        return Int32(nodes.count - 1)
    }

    /// A node for a set of literal JSON texts (deduplicated, sorted so that texts sharing a
    /// prefix are adjacent and a prefix comes before its extensions).
    func addLiterals(_ texts: [[UInt8]]) -> Int32 {
        let sorted = Array(Set(texts.map { $0 })).sorted { $0.lexicographicallyPrecedes($1) }
        let first = Int32(literals.count)
        for t in sorted {
            literals.append(Literal(start: Int32(bytes.count), length: Int32(t.count)))
            bytes += t
        }
        return add(Node(kind: .literals, a: first, b: Int32(sorted.count)))
    }

    /// The grammar of `{"type": "json_object"}`: an object whose values are any JSON value.
    static func anyJSONObject(maxWhitespaceRun: Int) -> JSONGrammar {
        let g = JSONGrammar(maxWhitespaceRun: maxWhitespaceRun)
        let value = g.add(Node(kind: .anyOf))  // filled below (it refers to itself through containers)
        let object = g.add(Node(kind: .freeObject, a: value))
        let array = g.add(Node(kind: .array, a: value, b: 0, c: unbounded))
        let string = g.add(Node(kind: .string, a: 0, b: 0, c: unbounded))
        let number = g.add(Node(kind: .number, b: 0))
        let words = g.addLiterals([Array("true".utf8), Array("false".utf8), Array("null".utf8)])
        let first = Int32(g.alternatives.count)
        g.alternatives += [object, array, string, number, words]
        g.nodes[Int(value)] = Node(kind: .anyOf, a: first, b: 5)
        g.keyStringNode = string
        g.root = object
        return g
    }

    /// The string node used for the keys of free objects.
    var keyStringNode: Int32 = -1
}
