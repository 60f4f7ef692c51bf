import ForgeCore

/// One memory-mapped `.safetensors` file.
///
/// Layout: u64 little-endian header length N; N bytes of JSON
/// `{"__metadata__": {str: str}?, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …}`;
/// then the data section, which `data_offsets` index (relative to byte 8 + N). Every field and
/// byte range is checked when the file is opened: the header must be UTF-8 JSON, tensors may
/// appear in any order but may not share bytes, and none may reach outside the data section.
public final class SafeTensorsFile: TensorSource {
    public let path: String
    public let tensorNames: [String]
    /// The optional `__metadata__` object (string → string).
    public let metadata: [String: String]
    /// Length of the JSON header; the data section starts at byte `8 + headerLength`.
    public let headerLength: Int

    private let file: MappedFile
    private let entries: [String: Entry]

    private struct Entry {
        var info: TensorInfo
        /// Absolute byte offset in the file.
        var start: Int
    }

    /// Header lengths above this are treated as corruption (real headers are well under 10 MB).
    static let maximumHeaderLength = 100_000_000
    /// More dimensions than this is treated as corruption.
    static let maximumRank = 32

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let bytes = UnsafeRawBufferPointer(file.bytes)
        guard bytes.count >= 8 else {
            throw ForgeError(.badInput, "file is \(bytes.count) bytes, too short for a safetensors header", file: path)
        }
        let declaredLength = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declaredLength <= UInt64(SafeTensorsFile.maximumHeaderLength) else {
            throw ForgeError(.badInput, "header length \(declaredLength) is absurd (limit \(SafeTensorsFile.maximumHeaderLength) bytes); not a safetensors file?",
                             file: path, location: "byte 0")
        }
        headerLength = Int(declaredLength)
        guard 8 + headerLength <= bytes.count else {
            throw ForgeError(.badInput, "header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)",
                             file: path, location: "byte 0")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        // The format requires UTF-8; repairing would silently rename tensors.
        if let bad = SafeTensorsFile.firstInvalidUTF8(headerBytes) {
            throw ForgeError(.badInput, "header is not valid UTF-8", file: path, location: "header byte \(bad) (file byte \(8 + bad))")
        }
        let header: JSONValue
        do {
            header = try JSONParser.parse(headerBytes, options: .checkpoint)
        } catch let error as JSONSyntaxError {
            throw ForgeError(.badInput, "header is not valid JSON: \(error.message)", file: path,
                             location: "header byte \(error.offset) (file byte \(8 + error.offset))")
        }
        guard let fields = header.object else {
            throw ForgeError(.badInput, "header JSON is not an object", file: path, location: "header")
        }
        let dataStart = 8 + headerLength
        let dataCount = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        entries.reserveCapacity(fields.count)
        for (name, value) in fields {
            if name == "__metadata__" {
                metadata = try SafeTensorsFile.parseMetadata(value, path: path)
                continue
            }
            let parsed = try SafeTensorsFile.parseEntry(name: name, value, dataCount: dataCount, path: path)
            entries[name] = Entry(info: parsed.info, start: dataStart + parsed.begin)
        }
        try TensorByteRanges.checkNoOverlap(entries.map { (name: $0.key, start: $0.value.start, count: $0.value.info.byteCount) },
                                           path: path, relativeTo: dataStart)
        self.metadata = metadata
        self.entries = entries
        tensorNames = entries.keys.sorted()
    }

    public func info(_ name: String) -> TensorInfo? { entries[name]?.info }

    /// The tensor's bytes inside the map. safetensors does not align tensors, so read with
    /// `loadUnaligned`.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let entry = entries[name] else { _ = try requireInfo(name); return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard entry.info.byteCount > 0, let base = file.base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(base) + entry.start, count: entry.info.byteCount)
    }

    /// Byte offset (approximate: the decoder may look ahead a byte or two) of the first invalid
    /// UTF-8 sequence, or nil when every byte is valid UTF-8.
    static func firstInvalidUTF8(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var decoder = UTF8()
        var iterator = CountingIterator(base: bytes.makeIterator(), count: 0)
        while true {
            let start = iterator.count
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return nil
            case .error: return start
            }
        }
    }

    /// An iterator that counts the bytes handed out.
    struct CountingIterator: IteratorProtocol {
        var base: UnsafeRawBufferPointer.Iterator
        var count: Int
        mutating func next() -> UInt8? {
            guard let byte = base.next() else { return nil }
            count += 1
            return byte
        }
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        guard let object = value.object else {
            throw ForgeError(.badInput, "__metadata__ is not an object", file: path, location: "__metadata__")
        }
        var metadata: [String: String] = [:]
        for (key, item) in object {
            guard let text = item.string else {
                throw ForgeError(.badInput, "metadata values must be strings, found \(item.summaryText)",
                                 file: path, location: "__metadata__.\(key)")
            }
            metadata[key] = text
        }
        return metadata
    }

    private static func parseEntry(name: String, _ value: JSONValue, dataCount: Int, path: String) throws -> (info: TensorInfo, begin: Int) {
        let location = "tensor '\(name)'"
        func fail(_ message: String) -> ForgeError { ForgeError(.badInput, message, file: path, location: location) }
        guard let fields = value.object else { throw fail("entry is not an object") }
        guard let dtypeName = fields["dtype"]?.string else { throw fail("missing or non-string \"dtype\"") }
        guard let dtype = TensorDType.safeTensors(named: dtypeName) else {
            if TensorDType.knownUnsupportedSafeTensorsNames.contains(dtypeName) {
                throw fail("dtype \(dtypeName) is not supported (F32, F16, BF16, I64, I32, U8, BOOL are)")
            }
            throw fail("unknown dtype '\(dtypeName)'")
        }
        guard let shapeValues = fields["shape"]?.array else { throw fail("missing or non-array \"shape\"") }
        guard shapeValues.count <= maximumRank else { throw fail("shape has \(shapeValues.count) dimensions (limit \(maximumRank))") }
        var shape: [Int] = []
        var elements = 1
        // Product of the non-zero dimensions: bounded too, so that no later product of any subset of
        // the dimensions (in any order) can overflow, even when another dimension is 0.
        var nonZeroProduct = 1
        for dimension in shapeValues {
            guard let size = dimension.int, size >= 0 else {
                throw fail("shape \(JSONValue.array(shapeValues).summaryText) has a dimension that is not a non-negative integer")
            }
            let (product, overflow) = nonZeroProduct.multipliedReportingOverflow(by: max(size, 1))
            // Every element takes at least one byte, so a product above the data size is corrupt.
            guard !overflow, product <= max(dataCount, 1) else {
                throw fail("shape \(JSONValue.array(shapeValues).summaryText) is absurd: more elements than the file has bytes")
            }
            nonZeroProduct = product
            elements *= size
            shape.append(size)
        }
        guard let offsets = fields["data_offsets"]?.array, offsets.count == 2,
              let begin = offsets[0].int, let end = offsets[1].int else {
            throw fail("\"data_offsets\" must be [begin, end] integers")
        }
        guard begin >= 0, end >= begin else { throw fail("data_offsets [\(begin), \(end)] are not an increasing pair of offsets") }
        guard end <= dataCount else {
            throw fail("data_offsets [\(begin), \(end)] run past the end of the data section (\(dataCount) bytes)")
        }
        guard let expected = dtype.byteCount(elements: elements), expected == end - begin else {
            throw fail("data_offsets [\(begin), \(end)] span \(end - begin) bytes, shape \(shape) of \(dtype) needs \(elements * dtype.blockBytes)")
        }
        return (TensorInfo(name: name, dtype: dtype, shape: shape, byteCount: expected), begin)
    }
}

extension JSONParseOptions {
    /// safetensors headers, shard indexes and config.json: a repeated key is an error (it would
    /// hide a tensor); lone surrogates become U+FFFD, as Python-written files may contain them.
    static let checkpoint = JSONParseOptions(duplicateKeys: .reject, loneSurrogates: .replace)
}

extension JSONValue {
    /// A short rendering for reports: strings unquoted, numbers as written.
    var summaryText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let n): return n.text
        case .string(let s): return s
        case .array(let a): return "[" + a.map(\.summaryText).joined(separator: ", ") + "]"
        case .object(let o): return "{\(o.count) keys}"
        }
    }
}
