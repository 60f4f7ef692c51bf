import Foundation

/// How strict to be where RFC 8259 leaves a choice (or real files differ). The defaults are
/// the strict ones; each caller states what its format needs.
public struct JSONParseOptions: Sendable {
    public enum DuplicateKeys: Sendable {
        /// A repeated key is a syntax error at the repeat (safetensors headers, JSON schemas:
        /// a silent overwrite would hide a tensor or a property).
        case reject
        /// Every member is kept in order; lookups see the last (request bodies and tokenizer files,
        /// as Python and serde's maps read them; exports re-emit what was stored).
        case keepAll
    }
    public enum LoneSurrogates: Sendable {
        /// `\ud800` without its low half is a syntax error (request bodies, schemas).
        case reject
        /// It decodes to U+FFFD and the next escape is read on its own (files written by Python,
        /// whose `json.dumps` can emit lone surrogates).
        case replace
    }
    public var duplicateKeys: DuplicateKeys
    public var loneSurrogates: LoneSurrogates
    /// Arrays and objects nested deeper than this are an error (hostile input must not overflow
    /// the stack: the parser recurses once per level).
    public var maximumDepth: Int

    public init(duplicateKeys: DuplicateKeys = .reject, loneSurrogates: LoneSurrogates = .reject, maximumDepth: Int = 128) {
        self.duplicateKeys = duplicateKeys
        self.loneSurrogates = loneSurrogates
        self.maximumDepth = maximumDepth
    }

    public static let strict = JSONParseOptions()
}

/// A JSON syntax error: what, and where (byte offset, 1-based line and byte column).
public struct JSONSyntaxError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var line: Int
    public var column: Int

    public init(message: String, offset: Int, line: Int, column: Int) {
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column
    }

    /// `byte 17 (line 2, column 5)`.
    public var location: String { "byte \(offset) (line \(line), column \(column))" }
    public var description: String { "\(message) at \(location)" }

    /// As a `ForgeError` naming `file` (or, without a file, the `source` in the location).
    public func forgeError(file: String? = nil, source: String? = nil, prefix: String = "invalid JSON") -> ForgeError {
        ForgeError(.badInput, "\(prefix): \(message)", file: file, location: source.map { "\($0), \(location)" } ?? location)
    }
}

/// The RFC 8259 parser: recursive descent over bytes, one pass, no intermediate tokens.
public enum JSONParser {
    /// Parses one JSON value filling `bytes` (surrounding whitespace allowed).
    public static func parse(_ bytes: UnsafeRawBufferPointer, options: JSONParseOptions = .strict) throws -> JSONValue {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count > 0 else {
            throw JSONSyntaxError(message: "empty input, expected a JSON value", offset: 0, line: 1, column: 1)
        }
        var reader = Reader(base: base, count: bytes.count, options: options)
        do {
            reader.skipWhitespace()
            let value = try reader.value(depth: 0)
            reader.skipWhitespace()
            guard reader.position == reader.count else { throw reader.failure("unexpected data after the JSON value") }
            return value
        } catch let failure as Reader.Failure {
            throw reader.syntaxError(failure)
        }
    }

    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, options: JSONParseOptions = .strict) throws -> JSONValue {
        try parse(UnsafeRawBufferPointer(bytes), options: options)
    }

    public static func parse(_ bytes: [UInt8], options: JSONParseOptions = .strict) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, options: options) }
    }

    public static func parse(_ text: String, options: JSONParseOptions = .strict) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0), options: options) }
    }

    /// Parses `bytes` read from `file`; a syntax error is a `ForgeError` naming the file, byte,
    /// line and column.
    public static func parse(_ bytes: [UInt8], file: String, options: JSONParseOptions = .strict) throws -> JSONValue {
        do {
            return try parse(bytes, options: options)
        } catch let error as JSONSyntaxError {
            throw error.forgeError(file: file)
        }
    }

    /// Reads and parses a file; every failure is a `ForgeError` naming `path` (and the byte, line
    /// and column of a syntax error).
    public static func load(path: String, options: JSONParseOptions = .strict) throws -> JSONValue {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ForgeError(.io, "is a directory, expected a JSON file", file: path)
            }
            throw ForgeError(.io, "cannot read file", file: path)
        }
        do {
            return try data.withUnsafeBytes { try parse($0, options: options) }
        } catch let error as JSONSyntaxError {
            throw error.forgeError(file: path)
        }
    }
}

/// The parser's state over one buffer. Failures inside are a message and an offset; the line
/// and column are only counted once, when an error leaves the parser.
private struct Reader {
    struct Failure: Error { var message: String; var offset: Int }

    let base: UnsafePointer<UInt8>
    let count: Int
    let options: JSONParseOptions
    var position = 0
    /// Scratch for strings with escapes, reused across strings.
    var scratch: [UInt8] = []

    init(base: UnsafePointer<UInt8>, count: Int, options: JSONParseOptions) {
        self.base = base
        self.count = count
        self.options = options
    }

    func failure(_ message: String, at offset: Int? = nil) -> Failure { Failure(message: message, offset: offset ?? position) }

    func syntaxError(_ f: Failure) -> JSONSyntaxError {
        var line = 1, lineStart = 0
        let end = min(f.offset, count)
        var i = 0
        while i < end {
            if base[i] == 0x0A { line += 1; lineStart = i + 1 }
            i += 1
        }
        return JSONSyntaxError(message: f.message, offset: f.offset, line: line, column: f.offset - lineStart + 1)
    }

    @inline(__always) mutating func skipWhitespace() {
        while position < count {
            let b = base[position]
            guard b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 else { return }
            position += 1
        }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard position < count else { throw failure("unexpected end of JSON, expected a value") }
        switch base[position] {
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case let b: throw failure("unexpected \(Reader.describe(b)), expected a value")
        }
    }

    static func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "character '\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        let w = word.utf8Start
        for k in 0..<n where position + k >= count || base[position + k] != w[k] {
            throw failure("invalid literal, expected \(word)", at: position)
        }
        position += n
    }

    func checkDepth(_ depth: Int) throws {
        guard depth <= options.maximumDepth else { throw failure("nested deeper than \(options.maximumDepth) levels") }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        try checkDepth(depth)
        position += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth))
            skipWhitespace()
            guard position < count else { throw failure("unexpected end of JSON in an array, expected ',' or ']'") }
            switch base[position] {
            case UInt8(ascii: ","):
                position += 1
                skipWhitespace()
                if position < count, base[position] == UInt8(ascii: "]") { throw failure("trailing comma in an array") }
            case UInt8(ascii: "]"):
                position += 1
                return .array(items)
            default: throw failure("expected ',' or ']' in an array")
            }
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        try checkDepth(depth)
        position += 1
        var members: [JSONObject.Element] = []
        var seen: Set<String>?  // built once an object outgrows a linear duplicate scan
        let rejectDuplicates = options.duplicateKeys == .reject
        skipWhitespace()
        if position < count, base[position] == UInt8(ascii: "}") { position += 1; return .object(JSONObject(members)) }
        while true {
            skipWhitespace()
            guard position < count, base[position] == UInt8(ascii: "\"") else {
                throw failure(position < count && base[position] == UInt8(ascii: "}") ? "trailing comma in an object" : "expected a string key")
            }
            let keyOffset = position
            let key = try string()
            if rejectDuplicates {
                let repeated: Bool
                if seen != nil {
                    repeated = !seen!.insert(key).inserted
                } else if members.count < 16 {
                    repeated = members.contains { $0.key == key }
                } else {
                    seen = Set(members.map(\.key))
                    repeated = !seen!.insert(key).inserted
                }
                if repeated { throw failure("duplicate key \(JSONText.quoted(key))", at: keyOffset) }
            }
            skipWhitespace()
            guard position < count, base[position] == UInt8(ascii: ":") else { throw failure("expected ':' after an object key") }
            position += 1
            skipWhitespace()
            members.append((key, try value(depth: depth)))
            skipWhitespace()
            guard position < count else { throw failure("unexpected end of JSON in an object, expected ',' or '}'") }
            switch base[position] {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"):
                position += 1
                return .object(JSONObject(members))
            default: throw failure("expected ',' or '}' in an object")
            }
        }
    }

    // MARK: numbers

    @inline(__always) func isDigit(_ i: Int) -> Bool { i < count && base[i] &- 0x30 < 10 }

    mutating func number() throws -> JSONNumber {
        let start = position
        var negative = false
        if base[position] == UInt8(ascii: "-") { negative = true; position += 1 }
        guard isDigit(position) else { throw failure("invalid number: expected a digit") }
        let digitsStart = position
        if base[position] == UInt8(ascii: "0") {
            position += 1
            if isDigit(position) { throw failure("invalid number: leading zero", at: start) }
        } else {
            while isDigit(position) { position += 1 }
        }
        let integerDigits = position - digitsStart
        var isInteger = true
        if position < count, base[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard isDigit(position) else { throw failure("invalid number: expected a digit after '.'") }
            while isDigit(position) { position += 1 }
        }
        if position < count, base[position] | 0x20 == UInt8(ascii: "e") {
            isInteger = false
            position += 1
            if position < count, base[position] == UInt8(ascii: "+") || base[position] == UInt8(ascii: "-") { position += 1 }
            guard isDigit(position) else { throw failure("invalid number: expected exponent digits") }
            while isDigit(position) { position += 1 }
        }
        // Up to 18 digits cannot overflow Int64; "-0" keeps its text.
        if isInteger, integerDigits <= 18, !(negative && base[digitsStart] == UInt8(ascii: "0")) {
            var v = 0
            var i = digitsStart
            while i < position { v = v &* 10 &+ Int(base[i] &- 0x30); i += 1 }
            return JSONNumber(storage: .integer(negative ? -v : v))
        }
        let text = String(decoding: UnsafeBufferPointer(start: base + start, count: position - start), as: UTF8.self)
        if isInteger, text != "-0", let v = Int(text) { return JSONNumber(storage: .integer(v)) }
        guard let d = Double(text), d.isFinite else { throw failure("number \(text) is out of range", at: start) }
        return JSONNumber(storage: .literal(text))
    }

    // MARK: strings

    /// At the opening quote; returns the decoded string with `position` after the closing quote.
    mutating func string() throws -> String {
        position += 1
        let start = position
        // Fast path: a run without escapes or controls is the string's bytes.
        while position < count {
            let b = base[position]
            if b == UInt8(ascii: "\"") {
                let text = try utf8(UnsafeBufferPointer(start: base + start, count: position - start), offset: start)
                position += 1
                return text
            }
            if b == UInt8(ascii: "\\") || b < 0x20 { break }
            position += 1
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: base + start, count: position - start))
        while true {
            guard position < count else { throw failure("unterminated string", at: start - 1) }
            let b = base[position]
            if b == UInt8(ascii: "\"") {
                position += 1
                return try scratch.withUnsafeBufferPointer { try utf8($0, offset: start) }
            }
            if b < 0x20 { throw failure("control character \(Reader.describe(b)) in a string (escape it)") }
            if b != UInt8(ascii: "\\") {
                scratch.append(b)
                position += 1
                continue
            }
            let escapeOffset = position
            position += 1
            guard position < count else { throw failure("unterminated string", at: start - 1) }
            let e = base[position]
            position += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scratch.append(e)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"): appendScalar(try unicodeEscape(at: escapeOffset))
            default: throw failure("invalid escape '\\\(Reader.describe(e))'", at: escapeOffset)
            }
        }
    }

    /// After `\u`: the scalar of one escape, or of a surrogate pair.
    mutating func unicodeEscape(at escapeOffset: Int) throws -> UInt32 {
        let code = try hex4()
        let lone: Bool
        if (0xD800..<0xDC00).contains(code) {
            if position + 6 <= count, base[position] == UInt8(ascii: "\\"), base[position + 1] == UInt8(ascii: "u") {
                let save = position
                position += 2
                let low = try hex4()
                if (0xDC00..<0xE000).contains(low) { return 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) }
                position = save  // the next escape is read on its own
            }
            lone = true
        } else {
            lone = (0xDC00..<0xE000).contains(code)
        }
        if lone {
            guard options.loneSurrogates == .replace else {
                throw failure("unpaired surrogate \\u\(String(code, radix: 16, uppercase: true)) in a string", at: escapeOffset)
            }
            return 0xFFFD
        }
        return code
    }

    mutating func hex4() throws -> UInt32 {
        guard position + 4 <= count else { throw failure("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = base[position]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw failure("invalid hex digit in a \\u escape")
            }
            v = v << 4 | d
            position += 1
        }
        return v
    }

    mutating func appendScalar(_ v: UInt32) {
        switch v {
        case 0..<0x80: scratch.append(UInt8(v))
        case 0x80..<0x800: scratch += [UInt8(0xC0 | v >> 6), UInt8(0x80 | v & 0x3F)]
        case 0x800..<0x10000: scratch += [UInt8(0xE0 | v >> 12), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        default: scratch += [UInt8(0xF0 | v >> 18), UInt8(0x80 | v >> 12 & 0x3F), UInt8(0x80 | v >> 6 & 0x3F), UInt8(0x80 | v & 0x3F)]
        }
    }

    /// The bytes as a String; invalid UTF-8 is an error at its first bad byte (RFC 8259 §8.1:
    /// repairing would silently rename keys and tokens).
    func utf8(_ buffer: UnsafeBufferPointer<UInt8>, offset: Int) throws -> String {
        if buffer.isEmpty { return "" }
        if let s = String(validating: buffer, as: UTF8.self) { return s }
        throw failure("invalid UTF-8 in a string", at: offset + Reader.firstInvalidUTF8(buffer))
    }

    /// Offset of the first byte of the first invalid sequence (escapes decode to valid UTF-8, so
    /// for the scratch buffer this is approximate in the escaped-string case only).
    static func firstInvalidUTF8(_ buffer: UnsafeBufferPointer<UInt8>) -> Int {
        var decoder = UTF8()
        var iterator = buffer.makeIterator()
        var consumed = 0
        var index = 0
        while true {
            let before = consumed
            var counting = CountingIterator(base: iterator, count: 0)
            let result = decoder.decode(&counting)
            iterator = counting.base
            consumed += counting.count
            switch result {
            case .scalarValue: index = consumed; continue
            case .emptyInput: return index
            case .error: return before
            }
        }
    }

    struct CountingIterator: IteratorProtocol {
        var base: UnsafeBufferPointer<UInt8>.Iterator
        var count: Int
        mutating func next() -> UInt8? {
            guard let b = base.next() else { return nil }
            count += 1
            return b
        }
    }
}
