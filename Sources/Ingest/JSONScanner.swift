import ForgeCore
import Foundation

/// A pull scanner over JSON bytes held in memory (usually a `MappedFile`). It never builds a
/// document tree: callers walk objects key by key, read only the fields they need, and skip the
/// rest (COCO's segmentation polygons are most of instances_*.json) with a tight byte loop.
/// Strings come back as spans into the buffer when they have no escapes, so ingest can bind them
/// to SQLite without copying.
public struct JSONScanner {
    public let base: UnsafePointer<UInt8>
    public let end: Int
    public var pos: Int = 0
    /// For error messages.
    public let file: String

    public init(base: UnsafePointer<UInt8>, count: Int, file: String) {
        self.base = base
        self.end = count
        self.file = file
    }

    /// A string value as it sits in the buffer: `[start, end)` between the quotes.
    public struct StringSpan {
        public var start: Int
        public var end: Int
        public var hasEscapes: Bool
        public var isASCII: Bool
        public var count: Int { end - start }
    }

    // MARK: errors

    /// 1-based line and column of a byte offset (computed only when reporting).
    public func lineColumn(at offset: Int) -> (line: Int, column: Int) {
        var line = 1, lineStart = 0
        var i = 0
        let stop = min(offset, end)
        while i < stop {
            if base[i] == 0x0A { line += 1; lineStart = i + 1 }
            i += 1
        }
        return (line, stop - lineStart + 1)
    }

    public func error(_ message: String, at offset: Int? = nil, record: RecordPath? = nil) -> ForgeError {
        let (line, col) = lineColumn(at: offset ?? pos)
        var loc = "line \(line), column \(col)"
        if let record { loc = "\(record) (\(loc))" }
        return ForgeError(.badInput, message, file: file, location: loc)
    }

    // MARK: primitives

    @inline(__always) public mutating func skipWhitespace() {
        while pos < end {
            let c = base[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    @inline(__always) public mutating func peek() -> UInt8? {
        skipWhitespace()
        return pos < end ? base[pos] : nil
    }

    public mutating func expect(_ byte: UInt8, record: RecordPath? = nil) throws {
        skipWhitespace()
        guard pos < end else { throw error("unexpected end of file, expected '\(Character(UnicodeScalar(byte)))'", record: record) }
        guard base[pos] == byte else {
            throw error("expected '\(Character(UnicodeScalar(byte)))' but found \(describeByte(base[pos]))", record: record)
        }
        pos += 1
    }

    func describeByte(_ b: UInt8) -> String {
        if b >= 0x20 && b < 0x7F { return "'\(Character(UnicodeScalar(b)))'" }
        return String(format: "byte 0x%02X", b)
    }

    /// Reads a string token; `pos` must be at the opening quote (after whitespace).
    public mutating func readStringSpan(record: RecordPath? = nil) throws -> StringSpan {
        skipWhitespace()
        guard pos < end, base[pos] == 0x22 else {
            throw error(pos < end ? "expected a string but found \(describeByte(base[pos]))" : "unexpected end of file, expected a string", record: record)
        }
        pos += 1
        let start = pos
        var escapes = false
        var ascii = true
        while pos < end {
            let c = base[pos]
            if c == 0x22 {
                let span = StringSpan(start: start, end: pos, hasEscapes: escapes, isASCII: ascii)
                pos += 1
                return span
            }
            if c == 0x5C { escapes = true; pos += 2; continue }
            if c < 0x20 { throw error("control character in string", at: pos, record: record) }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        throw error("unterminated string", at: start - 1, record: record)
    }

    /// Decodes a span to a Swift String: escapes resolved, UTF-8 validated.
    public func decode(_ span: StringSpan, record: RecordPath? = nil) throws -> String {
        let raw = UnsafeBufferPointer(start: base + span.start, count: span.count)
        if !span.hasEscapes {
            if span.isASCII { return String(decoding: raw, as: UTF8.self) }
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw error("string is not valid UTF-8", at: span.start, record: record)
            }
            return s
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(span.count)
        var i = span.start
        while i < span.end {
            let c = base[i]
            if c != 0x5C { bytes.append(c); i += 1; continue }
            i += 1
            guard i < span.end else { throw error("bad escape", at: i, record: record) }
            switch base[i] {
            case 0x22: bytes.append(0x22)
            case 0x5C: bytes.append(0x5C)
            case 0x2F: bytes.append(0x2F)
            case 0x62: bytes.append(0x08)
            case 0x66: bytes.append(0x0C)
            case 0x6E: bytes.append(0x0A)
            case 0x72: bytes.append(0x0D)
            case 0x74: bytes.append(0x09)
            case 0x75:
                var code = try hex4(at: i + 1, record: record)
                i += 4
                if (0xD800..<0xDC00).contains(code) {
                    // A surrogate pair: \uD83D\uDE00
                    guard i + 6 < span.end + 1, base[i + 1] == 0x5C, base[i + 2] == 0x75 else {
                        throw error("unpaired surrogate in \\u escape", at: i, record: record)
                    }
                    let low = try hex4(at: i + 3, record: record)
                    guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate", at: i, record: record) }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                } else if (0xDC00..<0xE000).contains(code) {
                    throw error("unpaired low surrogate in \\u escape", at: i, record: record)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape", at: i, record: record) }
                bytes.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw error("invalid escape \\\(Character(UnicodeScalar(base[i])))", at: i, record: record)
            }
            i += 1
        }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw error("string is not valid UTF-8", at: span.start, record: record)
        }
        return s
    }

    private func hex4(at i: Int, record: RecordPath?) throws -> UInt32 {
        guard i + 4 <= end else { throw error("truncated \\u escape", at: i, record: record) }
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = base[i + k]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw error("bad hex digit in \\u escape", at: i + k, record: record)
            }
            v = v << 4 | d
        }
        return v
    }

    public mutating func readString(record: RecordPath? = nil) throws -> String {
        let span = try readStringSpan(record: record)
        return try decode(span, record: record)
    }

    /// Compares a span with an ASCII key without allocating.
    @inline(__always) public func span(_ span: StringSpan, equals key: StaticString) -> Bool {
        guard span.count == key.utf8CodeUnitCount, !span.hasEscapes else { return false }
        return memcmp(base + span.start, key.utf8Start, span.count) == 0
    }

    /// Reads a number. Integers take a fast path; short decimals an exact one (`exactShortDecimal`);
    /// anything else goes through strtod, which rounds correctly (bbox values must match Python's
    /// float parse, and both fast paths return exactly strtod's double).
    public mutating func readNumber(record: RecordPath? = nil) throws -> Double {
        skipWhitespace()
        let start = pos
        var isInteger = true
        var negative = false
        var intValue: Int64 = 0
        if pos < end && base[pos] == 0x2D { negative = true; pos += 1 }
        let digitsStart = pos
        while pos < end {
            let c = base[pos]
            if c >= 0x30 && c <= 0x39 {
                if intValue < 100_000_000_000_000 { intValue = intValue * 10 + Int64(c - 0x30) } else { isInteger = false }
                pos += 1
            } else if c == 0x2E || c == 0x65 || c == 0x45 || c == 0x2B || c == 0x2D {
                isInteger = false; pos += 1
            } else { break }
        }
        guard pos > digitsStart else {
            if pos < end, base[pos] == 0x6E /* n */ { throw error("expected a number but found null", at: start, record: record) }
            throw error(pos < end ? "expected a number but found \(describeByte(base[pos]))" : "unexpected end of file, expected a number", at: start, record: record)
        }
        if isInteger { return Double(negative ? -intValue : intValue) }
        if let v = Self.exactShortDecimal(base + start, count: pos - start) { return v }
        let length = pos - start
        guard length < 64 else { throw error("number too long", at: start, record: record) }
        return try withUnsafeTemporaryAllocation(of: CChar.self, capacity: 65) { buf in
            memcpy(buf.baseAddress!, base + start, length)
            buf[length] = 0
            var endPtr: UnsafeMutablePointer<CChar>? = nil
            let v = strtod(buf.baseAddress!, &endPtr)
            guard let endPtr, endPtr - buf.baseAddress! == length, v.isFinite else {
                throw error("malformed number '\(String(cString: buf.baseAddress!))'", at: start, record: record)
            }
            return v
        }
    }

    /// Exact powers of ten: every 10^k for k ≤ 22 is a double (5^22 < 2^53).
    private static let exactPowersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { acc, _ in acc * 10 } }

    /// The double strtod gives for `-?digits(.digits)?([eE][+-]?digits)?` when that is cheap to get
    /// exactly, else nil (the caller falls back to strtod, which also reports malformed tokens).
    ///
    /// Clinger's fast path: with at most 19 digits the digits form an exact integer m; when
    /// m ≤ 2^53 it is an exact double, and so is 10^k for k ≤ 22, so m / 10^k (or m · 10^k) is a
    /// single IEEE operation on exact operands — correctly rounded, which is exactly what a
    /// correctly rounding strtod returns. COCO's bbox values ("473.07", "0.5") all take it.
    @inline(__always)
    static func exactShortDecimal(_ p: UnsafePointer<UInt8>, count n: Int) -> Double? {
        var i = 0
        var negative = false
        if i < n, p[i] == 0x2D { negative = true; i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        let intStart = i
        while i < n, p[i] &- 0x30 < 10 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 0x30); digits += 1; i += 1 }
        guard i > intStart else { return nil }
        var exponent = 0
        if i < n, p[i] == 0x2E {
            i += 1
            let fracStart = i
            while i < n, p[i] &- 0x30 < 10 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 0x30); digits += 1; i += 1 }
            guard i > fracStart else { return nil }
            exponent = fracStart - i
        }
        if i < n, p[i] | 0x20 == 0x65 {  // e or E
            i += 1
            var expNegative = false
            if i < n, p[i] == 0x2D || p[i] == 0x2B { expNegative = p[i] == 0x2D; i += 1 }
            let expStart = i
            var e = 0
            while i < n, p[i] &- 0x30 < 10 { if e < 10_000 { e = e * 10 + Int(p[i] &- 0x30) }; i += 1 }
            guard i > expStart else { return nil }
            exponent += expNegative ? -e : e
        }
        guard i == n, digits <= 19, mantissa <= 1 << 53, exponent >= -22, exponent <= 22 else { return nil }
        let m = Double(mantissa)
        let v = exponent < 0 ? m / exactPowersOfTen[-exponent] : m * exactPowersOfTen[exponent]
        return negative ? -v : v
    }

    /// Reads an integer-valued number (ids, sizes); rejects fractions.
    public mutating func readInt(record: RecordPath? = nil) throws -> Int64 {
        let start = pos
        let v = try readNumber(record: record)
        guard v == v.rounded(), abs(v) < 9.0e15 else { throw error("expected an integer, found \(v)", at: start, record: record) }
        return Int64(v)
    }

    public mutating func readBool(record: RecordPath? = nil) throws -> Bool {
        skipWhitespace()
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw error("expected true or false", record: record)
    }

    @inline(__always) mutating func matchLiteral(_ lit: StaticString) -> Bool {
        let n = lit.utf8CodeUnitCount
        guard pos + n <= end, memcmp(base + pos, lit.utf8Start, n) == 0 else { return false }
        pos += n
        return true
    }

    public mutating func isNull() -> Bool {
        skipWhitespace()
        return matchLiteral("null")
    }

    /// Skips any value. Strings are scanned for their closing quote; containers by depth. This is
    /// the loop that eats segmentation polygons, so it only looks at the bytes that matter.
    public mutating func skipValue(record: RecordPath? = nil) throws {
        skipWhitespace()
        guard pos < end else { throw error("unexpected end of file, expected a value", record: record) }
        let c = base[pos]
        switch c {
        case 0x22: _ = try readStringSpan(record: record)
        case 0x7B, 0x5B:
            let open = pos
            var depth = 0
            while pos < end {
                // 8 bytes at a time (one UInt64, SWAR) over runs with no quote and no bracket —
                // the numbers of a polygon. `x | 0x20` folds '[' ']' onto '{' '}'; a word holds
                // byte c iff `hasZeroByte(x ^ c·0x0101…)`. (Swift's SIMD16 types were ~35× slower
                // here than this; measured on the instances file.)
                if pos + 8 <= end {
                    let x = UInt64(littleEndian: UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self))
                    let folded = x | 0x2020_2020_2020_2020
                    if Self.hasZeroByte(folded ^ 0x7B7B_7B7B_7B7B_7B7B) | Self.hasZeroByte(folded ^ 0x7D7D_7D7D_7D7D_7D7D)
                        | Self.hasZeroByte(x ^ 0x2222_2222_2222_2222) == 0 {
                        pos += 8
                        continue
                    }
                }
                // Byte by byte through the word that holds one (or the tail of the buffer).
                let stop = min(pos + 8, end)
                while pos < stop {
                    let b = base[pos]
                    if b == 0x22 {
                        _ = try readStringSpan(record: record)
                        continue
                    }
                    if b == 0x7B || b == 0x5B { depth += 1 } else if b == 0x7D || b == 0x5D {
                        depth -= 1
                        if depth == 0 { pos += 1; return }
                    }
                    pos += 1
                }
            }
            throw error("unterminated \(c == 0x7B ? "object" : "array")", at: open, record: record)
        case 0x74: if !matchLiteral("true") { throw error("invalid literal", record: record) }
        case 0x66: if !matchLiteral("false") { throw error("invalid literal", record: record) }
        case 0x6E: if !matchLiteral("null") { throw error("invalid literal", record: record) }
        default: _ = try readNumber(record: record)
        }
    }

    /// Nonzero iff some byte of `v` is zero (exact as a yes/no answer).
    @inline(__always) static func hasZeroByte(_ v: UInt64) -> UInt64 {
        (v &- 0x0101_0101_0101_0101) & ~v & 0x8080_8080_8080_8080
    }

    // MARK: containers

    /// Iterates an object's members: `body(keySpan)` must consume the value.
    public mutating func forEachMember(record: RecordPath? = nil, _ body: (inout JSONScanner, StringSpan) throws -> Void) throws {
        try expect(0x7B, record: record)
        if peek() == 0x7D { pos += 1; return }
        while true {
            let key = try readStringSpan(record: record)
            try expect(0x3A, record: record)
            try body(&self, key)
            guard let c = peek() else { throw error("unexpected end of file inside an object", record: record) }
            pos += 1
            if c == 0x2C { continue }
            if c == 0x7D { return }
            throw error("expected ',' or '}' but found \(describeByte(c))", at: pos - 1, record: record)
        }
    }

    /// Iterates an array's elements: `body(index)` must consume the element.
    public mutating func forEachElement(record: RecordPath? = nil, _ body: (inout JSONScanner, Int) throws -> Void) throws {
        try expect(0x5B, record: record)
        if peek() == 0x5D { pos += 1; return }
        var index = 0
        while true {
            try body(&self, index)
            index += 1
            guard let c = peek() else { throw error("unexpected end of file inside an array", record: record) }
            pos += 1
            if c == 0x2C { continue }
            if c == 0x5D { return }
            throw error("expected ',' or ']' but found \(describeByte(c))", at: pos - 1, record: record)
        }
    }
}
