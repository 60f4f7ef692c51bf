/// A parsed JSON document (RFC 8259): the one JSON representation of the package, for
/// safetensors headers, config and tokenizer files, stored conversations, JSON schemas and
/// request bodies. `JSONParser` builds it; see docs/ARCHITECTURE.md "JSON".
///
/// - Object members keep their document order (a schema's properties are generated in the
///   order written; exports re-emit conversations key for key).
/// - Numbers keep their exact text (`1.0` is not `1`, integers beyond `Double` stay exact),
///   and `true` is never a number.
/// - Equality is structural and exact: same kinds, same number text, same keys in the same order.
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// An integer number value.
    public static func integer(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }

    public var isNull: Bool { if case .null = self { return true }; return false }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var number: JSONNumber? { if case .number(let n) = self { return n }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: JSONObject? { if case .object(let o) = self { return o }; return nil }

    /// The integer of a number written as one (no fraction, no exponent) that fits `Int`.
    /// `5.0` and `1e3` are not (safetensors shapes and offsets must be written as integers).
    public var int: Int? { number?.int }
    /// Any number whose value is a whole number within ±2^53: `5`, `5.0`, `5e0` (JSON Schema's
    /// notion of an integer; HF configs sometimes write `1.0` for counts).
    public var wholeNumber: Int? { number?.wholeNumber }
    /// The nearest `Double` of any number.
    public var double: Double? { number?.double }

    /// The member `key` of an object (the last one when the key repeats), nil otherwise.
    public subscript(key: String) -> JSONValue? { object?[key] }

    /// Element `index` of an array, nil when out of range or not an array.
    public subscript(index: Int) -> JSONValue? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// OpenAI's / JSON Schema's names: null, boolean, integer (a number written as an integer),
    /// number, string, array, object.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let n): return n.isIntegerLiteral ? "integer" : "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON number as written. Integers that fit `Int` (the vocabularies' and headers' millions of
/// ids and offsets) are stored as the integer, everything else as its text.
public struct JSONNumber: Hashable, Sendable, CustomStringConvertible {
    enum Storage: Hashable, Sendable {
        case integer(Int)      // canonical text: String(value)
        case literal(String)   // fractions, exponents, -0, integers beyond Int
    }
    let storage: Storage

    public init(_ value: Int) { storage = .integer(value) }

    /// A number from its JSON text; nil unless `text` is one RFC 8259 number within `Double`'s range.
    public init?(text: String) {
        guard case .number(let n)? = try? JSONParser.parse(text), n.text == text else { return nil }
        self = n
    }

    init(storage: Storage) { self.storage = storage }

    /// The number exactly as written.
    public var text: String {
        switch storage {
        case .integer(let v): return String(v)
        case .literal(let s): return s
        }
    }

    public var description: String { text }

    /// Written without fraction or exponent.
    public var isIntegerLiteral: Bool {
        switch storage {
        case .integer: return true
        case .literal(let s): return !s.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        }
    }

    /// The value of an integer literal that fits `Int` (`-0` is 0).
    public var int: Int? {
        switch storage {
        case .integer(let v): return v
        case .literal(let s): return isIntegerLiteral ? Int(s) : nil
        }
    }

    /// The nearest `Double` (correctly rounded, like Python's `float()`).
    public var double: Double {
        switch storage {
        case .integer(let v): return Double(v)
        case .literal(let s): return Double(s) ?? .nan  // the parser only admits finite numbers
        }
    }

    /// The value when it is a whole number within ±2^53, however written.
    public var wholeNumber: Int? {
        if let i = int { return i }
        let d = double
        guard d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
        return Int(d)
    }
}

/// A JSON object: members in document order. Keys may repeat only when parsed with
/// `duplicateKeys: .keepAll`; lookups then see the last one (as Python's `json.loads` does).
public struct JSONObject: RandomAccessCollection, Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)
    public var members: [Element]

    public init(_ members: [Element] = []) { self.members = members }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { members = elements.map { (key: $0.0, value: $0.1) } }

    public var startIndex: Int { 0 }
    public var endIndex: Int { members.count }
    public subscript(position: Int) -> Element { members[position] }

    /// The value of `key` (the last member named so), found by a scan from the end: objects are
    /// small, and big ones (vocabularies, weight maps) are iterated, not probed.
    public subscript(key: String) -> JSONValue? {
        var i = members.count - 1
        while i >= 0 {
            if members[i].key == key { return members[i].value }
            i -= 1
        }
        return nil
    }

    public var keys: [String] { members.map(\.key) }

    /// Key → value with the last member winning, for objects probed many times.
    public var dictionary: [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        out.reserveCapacity(members.count)
        for m in members { out[m.key] = m.value }
        return out
    }

    public mutating func append(_ key: String, _ value: JSONValue) { members.append((key, value)) }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
