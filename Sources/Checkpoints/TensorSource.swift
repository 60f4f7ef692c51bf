import ForgeCore

/// A set of named tensors in a memory-mapped checkpoint (safetensors file, sharded safetensors
/// checkpoint, or GGUF file). Readers validate every header field and byte range when opened,
/// so later accessors only fail for missing names or unsupported conversions.
public protocol TensorSource: AnyObject {
    /// The path the source was opened from.
    var path: String { get }
    /// Every tensor name, sorted.
    var tensorNames: [String] { get }
    func info(_ name: String) -> TensorInfo?
    /// The stored bytes (quant blocks as on disk). Valid while the source lives.
    func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer
    /// Converted/dequantized to Float32, row-major in `shape` order.
    func floats(_ name: String) throws -> [Float]
    /// As `floats(_:)`, into a buffer of exactly `info.elementCount` floats.
    func floats(_ name: String, into: UnsafeMutableBufferPointer<Float>) throws
}

extension TensorSource {
    /// `info(name)`, or an error naming the source and the missing tensor.
    public func requireInfo(_ name: String) throws -> TensorInfo {
        guard let info = info(name) else {
            throw ForgeError(.badInput, "no tensor named '\(name)' (\(tensorNames.count) tensors in the checkpoint)",
                             file: path, location: "tensor '\(name)'")
        }
        return info
    }

    public func floats(_ name: String) throws -> [Float] {
        let info = try requireInfo(name)
        let count = info.elementCount
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try floats(name, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
            initialized = count
        }
    }

    public func floats(_ name: String, into output: UnsafeMutableBufferPointer<Float>) throws {
        let info = try requireInfo(name)
        try FloatConversion.convert(try rawBytes(name), info: info, into: output, file: path)
    }

    /// Rows `rows` along the first (outermost) dimension, e.g. a few token embeddings, without
    /// converting the rest. `output` holds exactly `rows.count × (elements per row)` floats.
    public func floats(_ name: String, rows: Range<Int>, into output: UnsafeMutableBufferPointer<Float>) throws {
        let info = try requireInfo(name)
        guard let outer = info.shape.first, outer > 0, rows.lowerBound >= 0, rows.upperBound <= outer else {
            throw ForgeError(.usage, "rows \(rows) out of range for shape \(info.shape)", file: path, location: "tensor '\(name)'")
        }
        let raw = try rawBytes(name)
        guard raw.count % outer == 0, (info.elementCount / outer) % info.dtype.blockSize == 0 else {
            throw ForgeError(.usage, "rows of shape \(info.shape) are not whole \(info.dtype) blocks", file: path, location: "tensor '\(name)'")
        }
        let bytesPerRow = raw.count / outer
        var rowInfo = info
        rowInfo.shape[0] = rows.count
        rowInfo.byteCount = bytesPerRow * rows.count
        let slice = UnsafeRawBufferPointer(rebasing: raw[(rows.lowerBound * bytesPerRow)..<(rows.upperBound * bytesPerRow)])
        try FloatConversion.convert(slice, info: rowInfo, into: output, file: path)
    }

    /// Total element count of all tensors (the parameter count for model weights).
    public var totalParameters: Int {
        tensorNames.reduce(0) { $0 + (info($1)?.elementCount ?? 0) }
    }
}

/// Byte-range validation shared by the readers.
enum TensorByteRanges {
    /// Tensors may not share bytes (safetensors' reference implementation and llama.cpp reject
    /// overlaps too): a header that maps two tensors onto the same bytes is corrupt. `ranges` hold
    /// absolute file offsets; messages give them relative to `base` (the data section start).
    static func checkNoOverlap(_ ranges: [(name: String, start: Int, count: Int)], path: String, relativeTo base: Int) throws {
        let sorted = ranges.filter { $0.count > 0 }.sorted { ($0.start, $0.name) < ($1.start, $1.name) }
        guard sorted.count > 1 else { return }
        for i in 1..<sorted.count {
            let previous = sorted[i - 1], current = sorted[i]
            if current.start < previous.start + previous.count {
                throw ForgeError(.badInput,
                                 "data [\(current.start - base), \(current.start - base + current.count)) overlaps tensor '\(previous.name)' at [\(previous.start - base), \(previous.start - base + previous.count))",
                                 file: path, location: "tensor '\(current.name)'")
            }
        }
    }

}
