import ForgeCore

/// One memory-mapped GGUF file (versions 2 and 3, little-endian).
///
/// Layout (ggml docs/gguf.md): "GGUF"; u32 version; u64 tensor count; u64 metadata count;
/// metadata key/value pairs; tensor infos (name, u32 n_dims, u64 ne[n_dims] with ne[0] the
/// fastest-varying, u32 ggml type, u64 offset); padding to `general.alignment` (default 32);
/// tensor data, each tensor at data start + offset. Everything is validated on open.
public final class GGUFFile: TensorSource {
    public let path: String
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensorNames: [String]
    /// Tensor names in file order.
    public let tensorNamesInFileOrder: [String]
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Absolute file offset of the tensor data section.
    public let dataOffset: Int

    private let file: MappedFile
    private let entries: [String: Entry]

    private struct Entry {
        var info: TensorInfo
        /// Absolute byte offset in the file.
        var start: Int
    }

    static let defaultAlignment = 32
    static let maximumDimensions = 4

    /// `general.architecture` (e.g. "llama", "clip").
    public var architecture: String? { metadata["general.architecture"]?.string }

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var reader = GGUFReader(UnsafeRawBufferPointer(file.bytes))
        func fail(_ message: String, _ location: String) -> ForgeError { ForgeError(.badInput, message, file: path, location: location) }

        guard reader.count >= 8 else { throw fail("file is \(reader.count) bytes, too short for a GGUF header", "byte 0") }
        let magic = try reader.u32()
        guard magic == 0x4655_4747 else {  // "GGUF" read as little-endian u32
            throw fail("not a GGUF file (magic bytes \(GGUFFile.hexBytes(magic)), expected 47 47 55 46 \"GGUF\")", "byte 0")
        }
        let rawVersion = try reader.u32()
        switch rawVersion {
        case 2, 3: version = Int(rawVersion)
        case 1: throw fail("GGUF version 1 is not supported (it used 32-bit counts and lengths); re-convert the model with a current llama.cpp", "version")
        case 0x0200_0000, 0x0300_0000: throw fail("big-endian GGUF is not supported", "version")
        default: throw fail("unsupported GGUF version \(rawVersion) (2 and 3 are supported)", "version")
        }

        let tensorCount: Int
        let metadataCount: Int
        do {
            // Smallest tensor info: name length 8 + n_dims 4 + type 4 + offset 8; smallest pair: key length 8 + type 4 + 1.
            tensorCount = try reader.count(minimumBytesEach: 24, what: "tensor count")
            metadataCount = try reader.count(minimumBytesEach: 13, what: "metadata count")
        } catch let error as GGUFParseError {
            throw fail(error.message, "header (byte \(error.offset))")
        }

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(metadataCount)
        for index in 0..<metadataCount {
            let keyOffset = reader.offset
            var key = "#\(index)"
            do {
                key = try reader.string()
                let valueType = try reader.u32()
                let value = try reader.value(type: valueType)
                guard metadata.updateValue(value, forKey: key) == nil else {
                    throw GGUFParseError("duplicate metadata key", at: keyOffset)
                }
                keys.append(key)
            } catch let error as GGUFParseError {
                throw fail(error.message, "metadata '\(key)' (byte \(error.offset))")
            }
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = GGUFFile.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let number = value.int, number > 0, number & (number - 1) == 0 else {
                throw fail("general.alignment must be a power of two, found \(value)", "metadata 'general.alignment'")
            }
            alignment = number
        }
        self.alignment = alignment

        var pending: [(info: TensorInfo, offset: Int)] = []
        pending.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            var name = "#\(index)"
            do {
                name = try reader.string()
                pending.append(try GGUFFile.readTensorInfo(&reader, name: name))
            } catch let error as GGUFParseError {
                throw fail(error.message, "tensor '\(name)' (byte \(error.offset))")
            }
        }

        let (aligned, overflow) = reader.offset.addingReportingOverflow((alignment - reader.offset % alignment) % alignment)
        guard !overflow else { throw fail("tensor data offset overflows", "tensor data") }
        dataOffset = aligned
        var entries: [String: Entry] = [:]
        var order: [String] = []
        entries.reserveCapacity(tensorCount)
        order.reserveCapacity(tensorCount)
        for (info, offset) in pending {
            let location = "tensor '\(info.name)'"
            guard entries[info.name] == nil else { throw fail("duplicate tensor name", location) }
            guard offset % alignment == 0 else { throw fail("data offset \(offset) is not a multiple of the alignment \(alignment)", location) }
            guard offset <= reader.count, dataOffset <= reader.count - offset, info.byteCount <= reader.count - dataOffset - offset else {
                throw fail("data [\(offset), +\(info.byteCount)) runs past the end of the file (data section starts at byte \(dataOffset), file is \(reader.count) bytes)", location)
            }
            entries[info.name] = Entry(info: info, start: dataOffset + offset)
            order.append(info.name)
        }
        try TensorByteRanges.checkNoOverlap(order.map { (name: $0, start: entries[$0]!.start, count: entries[$0]!.info.byteCount) },
                                            path: path, relativeTo: dataOffset)
        self.entries = entries
        tensorNamesInFileOrder = order
        tensorNames = order.sorted()
    }

    /// Reads n_dims, ne[], type and offset after a tensor's name, validating shape and type.
    private static func readTensorInfo(_ reader: inout GGUFReader, name: String) throws -> (info: TensorInfo, offset: Int) {
        let dimsOffset = reader.offset
        let dimensionCount = try reader.u32()
        guard dimensionCount <= maximumDimensions else {
            throw GGUFParseError("\(dimensionCount) dimensions (ggml allows at most \(maximumDimensions))", at: dimsOffset)
        }
        var ne: [Int] = []
        var elements = 1
        // The product of the non-zero dimensions is bounded too, so no product of any subset of the
        // dimensions can overflow later, even when another dimension is 0. No GGML type packs more
        // than 8 elements per byte, so more than 8 × (file size) elements cannot be stored.
        var nonZeroProduct = 1
        for _ in 0..<Int(dimensionCount) {
            let at = reader.offset
            let size = try reader.u64()
            guard size <= UInt64(Int.max) else { throw GGUFParseError("dimension \(size) makes an absurd element count", at: at) }
            let (product, overflow) = nonZeroProduct.multipliedReportingOverflow(by: max(Int(size), 1))
            guard !overflow, product <= max(reader.count, 1) * 8 else {
                throw GGUFParseError("dimension \(size) makes an absurd element count", at: at)
            }
            ne.append(Int(size))
            nonZeroProduct = product
            elements *= Int(size)
        }
        let typeOffset = reader.offset
        let typeID = try reader.u32()
        guard let type = GGMLType(rawValue: typeID) else {
            throw GGUFParseError("unknown ggml type id \(typeID)", at: typeOffset)
        }
        let rowLength = ne.first ?? 1
        guard rowLength % type.blockSize == 0 else {
            throw GGUFParseError("row length ne[0] = \(rowLength) is not a multiple of the \(type.name) block size \(type.blockSize)", at: dimsOffset)
        }
        let dtype = TensorDType(ggml: type)
        guard let byteCount = dtype.byteCount(elements: elements) else {
            throw GGUFParseError("\(elements) elements of \(type.name) overflow a byte count", at: dimsOffset)
        }
        let offsetAt = reader.offset
        let offset = try reader.u64()
        guard offset <= UInt64(reader.count) else {
            throw GGUFParseError("data offset \(offset) is past the end of the file", at: offsetAt)
        }
        return (TensorInfo(name: name, dtype: dtype, shape: ne.reversed(), byteCount: byteCount), Int(offset))
    }

    public func info(_ name: String) -> TensorInfo? { entries[name]?.info }

    /// The tensor's blocks as stored (for quantized types, `typeSize`-byte blocks of
    /// `blockSize` elements along ne[0]). Starts at a multiple of `alignment` from the data section.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let entry = entries[name] else { _ = try requireInfo(name); return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard entry.info.byteCount > 0, let base = file.base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(base) + entry.start, count: entry.info.byteCount)
    }

    /// Drop the tensor's resident pages (its bytes were copied into another layout); reading them
    /// again faults them back in from the file.
    public func releasePages(_ name: String) {
        guard let entry = entries[name] else { return }
        file.release(entry.start..<(entry.start + entry.info.byteCount))
    }

    /// The GGML type a tensor is stored in.
    public func ggmlType(_ name: String) -> GGMLType? { entries[name]?.info.dtype.ggmlType }

    private static func hexBytes(_ value: UInt32) -> String {
        (0..<4).map { shift in
            let byte = (value >> (8 * UInt32(shift))) & 0xFF
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: " ")
    }
}
