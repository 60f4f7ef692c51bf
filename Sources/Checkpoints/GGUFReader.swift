/// A bounds-checked little-endian cursor over a GGUF file's header region. Every read checks the
/// remaining length first and throws `GGUFOverrun` instead of touching bytes past the end; the
/// caller turns that into a `ForgeError` naming the field being read.
struct GGUFReader {
    let base: UnsafeRawPointer
    let count: Int
    var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty map has no base address; any read from it overruns before dereferencing.
        base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        count = bytes.count
    }

    var remaining: Int { count - offset }

    @inline(__always)
    mutating func need(_ bytes: Int) throws {
        guard bytes >= 0, bytes <= count - offset else { throw GGUFParseError("truncated: needs \(bytes) more bytes, \(count - offset) left", at: offset) }
    }

    @inline(__always)
    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        let value = T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return value
    }

    mutating func u8() throws -> UInt8 { try read(UInt8.self) }
    mutating func u32() throws -> UInt32 { try read(UInt32.self) }
    mutating func u64() throws -> UInt64 { try read(UInt64.self) }

    /// A u64 count or length that must fit in the remaining bytes at `minimumBytesEach` per item.
    mutating func count(minimumBytesEach: Int, what: String) throws -> Int {
        let start = offset
        let value = try u64()
        guard value <= UInt64(remaining / max(minimumBytesEach, 1)) else {
            throw GGUFParseError("\(what) \(value) cannot fit in the \(remaining) bytes left", at: start)
        }
        return Int(value)
    }

    /// gguf_string: u64 byte length, then UTF-8 bytes (not NUL-terminated). Invalid UTF-8 is
    /// repaired with U+FFFD rather than rejected.
    mutating func string() throws -> String {
        let length = try count(minimumBytesEach: 1, what: "string length")
        let text = String(decoding: UnsafeRawBufferPointer(start: base + offset, count: length), as: UTF8.self)
        offset += length
        return text
    }

    /// Metadata value of GGUF type id `type`.
    mutating func value(type: UInt32, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try read(UInt8.self))
        case 1: return .int8(try read(Int8.self))
        case 2: return .uint16(try read(UInt16.self))
        case 3: return .int16(try read(Int16.self))
        case 4: return .uint32(try read(UInt32.self))
        case 5: return .int32(try read(Int32.self))
        case 6: return .float32(Float(bitPattern: try read(UInt32.self)))
        case 7:
            let start = offset
            let byte = try read(UInt8.self)
            guard byte <= 1 else { throw GGUFParseError("bool value \(byte) is neither 0 nor 1", at: start) }
            return .bool(byte == 1)
        case 8: return .string(try string())
        case 9: return .array(try array(depth: depth))
        case 10: return .uint64(try read(UInt64.self))
        case 11: return .int64(try read(Int64.self))
        case 12: return .float64(Double(bitPattern: try read(UInt64.self)))
        default: throw GGUFParseError("unknown metadata value type \(type)", at: offset - 4)
        }
    }

    /// Smallest encoding of one value of each type id, used to reject impossible array lengths
    /// before allocating anything.
    static func minimumSize(ofType type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        case 9: return 12
        default: return nil
        }
    }

    static let maximumArrayDepth = 8
    /// Elements in one metadata array. Each costs ~24 bytes in memory, so a lying length on a large
    /// file could otherwise demand tens of GB; real files stay far below (vocabularies ≤ ~300k).
    static let maximumArrayLength = 1 << 24

    /// Array: u32 element type, u64 count, elements. Strings (the tokenizer's vocabulary and
    /// merges, ~50k entries) take a tight loop with one bounds check per string.
    mutating func array(depth: Int) throws -> [GGUFValue] {
        guard depth < GGUFReader.maximumArrayDepth else { throw GGUFParseError("arrays nested deeper than \(GGUFReader.maximumArrayDepth)", at: offset) }
        let typeOffset = offset
        let elementType = try u32()
        guard let minimumSize = GGUFReader.minimumSize(ofType: elementType) else {
            throw GGUFParseError("unknown array element type \(elementType)", at: typeOffset)
        }
        let count = try count(minimumBytesEach: minimumSize, what: "array length")
        guard count <= GGUFReader.maximumArrayLength else {
            throw GGUFParseError("array length \(count) exceeds the limit of \(GGUFReader.maximumArrayLength) elements", at: typeOffset + 4)
        }
        var values: [GGUFValue] = []
        values.reserveCapacity(count)
        if elementType == 8 {
            for _ in 0..<count { values.append(.string(try string())) }
        } else {
            for _ in 0..<count { values.append(try value(type: elementType, depth: depth + 1)) }
        }
        return values
    }
}

/// A malformed GGUF header at a byte offset.
struct GGUFParseError: Error {
    var message: String
    var offset: Int
    init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }
}
