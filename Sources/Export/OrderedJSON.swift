import ForgeCore

/// A JSON value that keeps object keys in their original order, so stored conversations are
/// re-emitted exactly as written ("from" before "value"), only re-indented.
enum OrderedJSON: Equatable {
    case string(String)
    /// The number's text as it appeared (never re-rounded).
    case number(String)
    case bool(Bool)
    case null
    case array([OrderedJSON])
    case object([(String, OrderedJSON)])

    static func == (a: OrderedJSON, b: OrderedJSON) -> Bool {
        switch (a, b) {
        case let (.string(x), .string(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        case (.null, .null): return true
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    // MARK: parsing

    struct SyntaxError: Error, CustomStringConvertible {
        var offset: Int
        var message: String
        var description: String { "invalid JSON at byte \(offset): \(message)" }
    }

    /// Parses one JSON document (surrounding whitespace allowed).
    static func parse(_ text: String) throws -> OrderedJSON {
        var text = text
        return try text.withUTF8 { buf in
            var p = Parser(bytes: buf)
            p.skipSpace()
            let v = try p.value(depth: 0)
            p.skipSpace()
            guard p.i == buf.count else { throw SyntaxError(offset: p.i, message: "trailing characters") }
            return v
        }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func skipSpace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        func fail(_ message: String) -> SyntaxError { SyntaxError(offset: i, message: message) }

        mutating func value(depth: Int) throws -> OrderedJSON {
            guard depth < 512 else { throw fail("nested too deeply") }
            guard i < bytes.count else { throw fail("unexpected end") }
            switch bytes[i] {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                i += 1
                var items: [OrderedJSON] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated array") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "{"):
                i += 1
                var members: [(String, OrderedJSON)] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    skipSpace()
                    members.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unterminated object") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
            default: throw fail("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { throw fail("unexpected end") }
            let w = word.utf8Start
            for k in 0..<n where bytes[i + k] != w[k] { throw fail("invalid literal") }
            i += n
        }

        mutating func number() throws -> String {
            let start = i
            func digits(_ p: inout Parser) -> Int {
                let s = p.i
                while p.i < p.bytes.count, p.bytes[p.i] >= 0x30, p.bytes[p.i] <= 0x39 { p.i += 1 }
                return p.i - s
            }
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("invalid number") }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits(&self) > 0 else { throw fail("invalid number") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits(&self) > 0 else { throw fail("invalid number") }
            }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                i += 1
            }
            return v
        }

        /// At an opening quote; returns the decoded string and leaves `i` after the closing quote.
        mutating func string() throws -> String {
            i += 1
            let start = i
            // Fast path: no escapes.
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                    i += 1
                    return s
                }
                if c == UInt8(ascii: "\\") { break }
                i += 1
            }
            guard i < bytes.count else { throw fail("unterminated string") }
            var out = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<i]))
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { break }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by \uDC00–\uDFFF; a lone one becomes U+FFFD.
                        if i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                            let save = i
                            i += 2
                            let low = try hex4()
                            if (0xDC00...0xDFFF).contains(low) {
                                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                i = save
                                scalar = 0xFFFD
                            }
                        } else {
                            scalar = 0xFFFD
                        }
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        scalar = 0xFFFD
                    }
                    out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default: throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }
    }

    // MARK: writing

    /// Appends the value laid out like Python's `json.dumps(v, indent=2, ensure_ascii=False)`:
    /// one item per line, items ending in ",", keys followed by ": ", empty containers as `[]` / `{}`.
    /// `level` is the indentation (in spaces) of the line the value starts on.
    func appendPretty(to out: inout String, level: Int, indent: Int = 2) {
        switch self {
        case .array(let items):
            if items.isEmpty { out.append("[]"); return }
            out.append("[\n")
            for (k, v) in items.enumerated() {
                OrderedJSON.spaces(level + indent, to: &out)
                v.appendPretty(to: &out, level: level + indent, indent: indent)
                out.append(k + 1 < items.count ? ",\n" : "\n")
            }
            OrderedJSON.spaces(level, to: &out)
            out.append("]")
        case .object(let members):
            if members.isEmpty { out.append("{}"); return }
            out.append("{\n")
            for (k, m) in members.enumerated() {
                OrderedJSON.spaces(level + indent, to: &out)
                JSONText.appendString(m.0, to: &out)
                out.append(": ")
                m.1.appendPretty(to: &out, level: level + indent, indent: indent)
                out.append(k + 1 < members.count ? ",\n" : "\n")
            }
            OrderedJSON.spaces(level, to: &out)
            out.append("}")
        default:
            appendCompact(to: &out)
        }
    }

    /// Appends the value on one line with no spaces (`separators=(",", ":")`).
    func appendCompact(to out: inout String) {
        switch self {
        case .string(let s): JSONText.appendString(s, to: &out)
        case .number(let n): out.append(n)
        case .bool(let b): out.append(b ? "true" : "false")
        case .null: out.append("null")
        case .array(let items):
            out.append("[")
            for (k, v) in items.enumerated() {
                if k > 0 { out.append(",") }
                v.appendCompact(to: &out)
            }
            out.append("]")
        case .object(let members):
            out.append("{")
            for (k, m) in members.enumerated() {
                if k > 0 { out.append(",") }
                JSONText.appendString(m.0, to: &out)
                out.append(":")
                m.1.appendCompact(to: &out)
            }
            out.append("}")
        }
    }

    func prettyText(indent: Int = 2) -> String {
        var s = ""
        appendPretty(to: &s, level: 0, indent: indent)
        return s
    }

    static func spaces(_ n: Int, to out: inout String) {
        if n > 0 { out.append(String(repeating: " ", count: n)) }
    }

    // MARK: conversations

    /// The turns of a LLaVA conversation: (from, value) for each object with string "from" and "value".
    var turns: [(from: String, value: String)] {
        guard case .array(let items) = self else { return [] }
        var out: [(from: String, value: String)] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .object(let members) = item else { continue }
            var from: String?, value: String?
            for (k, v) in members {
                if k == "from", case .string(let s) = v { from = s }
                if k == "value", case .string(let s) = v { value = s }
            }
            if let from, let value { out.append((from, value)) }
        }
        return out
    }
}
