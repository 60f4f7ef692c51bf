import Foundation
import ForgeCore
#if canImport(Glibc)
import Glibc
#endif

/// Writes safetensors files (the trainer's checkpoint format).
///
/// Header keys are sorted (`__metadata__` first, then tensor names in byte order), tensor data
/// follows in the same order, and the header is padded with spaces to a multiple of 8 bytes as
/// the reference implementation does, so F32 data starts aligned. The file is written to a
/// temporary name in the same folder, synced, then renamed: a crash never leaves a half file
/// under the final name.
public enum SafeTensorsWriter {
    /// One tensor to write from memory the caller owns (a slot of a flat parameter buffer, for
    /// example), so a checkpoint save does not copy the model into arrays first.
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        /// Row-major values; must stay valid for the duration of `write`.
        public var values: UnsafeBufferPointer<Float>

        public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
            self.name = name
            self.shape = shape
            self.values = values
        }
    }

    /// Writes `tensors` (values as Float32, stored as `dtype`: F32, F16 or BF16).
    public static func write(_ tensors: [(name: String, shape: [Int], data: [Float])], dtype: TensorDType = .f32,
                             metadata: [String: String] = [:], to path: String) throws {
        try write(tensors.map { Entry(name: $0.name, shape: $0.shape, source: .array($0.data)) }, dtype: dtype, metadata: metadata, path: path)
    }

    /// Writes tensors whose values live in caller-owned memory.
    public static func write(tensors: [Tensor], dtype: TensorDType = .f32, metadata: [String: String] = [:], to path: String) throws {
        try write(tensors.map { Entry(name: $0.name, shape: $0.shape, source: .pointer($0.values)) }, dtype: dtype, metadata: metadata, path: path)
    }

    private enum Source {
        case array([Float])
        case pointer(UnsafeBufferPointer<Float>)

        var count: Int {
            switch self {
            case .array(let values): return values.count
            case .pointer(let values): return values.count
            }
        }

        func withValues(_ body: (UnsafeBufferPointer<Float>) throws -> Void) rethrows {
            switch self {
            case .array(let values): try values.withUnsafeBufferPointer(body)
            case .pointer(let values): try body(values)
            }
        }
    }

    private struct Entry {
        var name: String
        var shape: [Int]
        var source: Source
    }

    private static func write(_ tensors: [Entry], dtype: TensorDType, metadata: [String: String], path: String) throws {
        let elementBytes: Int
        switch dtype {
        case .f32: elementBytes = 4
        case .f16, .bf16: elementBytes = 2
        default: throw ForgeError(.usage, "SafeTensorsWriter stores F32, F16 or BF16, not \(dtype)", file: path)
        }
        var seen = Set<String>()
        for tensor in tensors {
            let location = "tensor '\(tensor.name)'"
            guard tensor.name != "__metadata__" else { throw ForgeError(.usage, "'__metadata__' is reserved", file: path, location: location) }
            guard seen.insert(tensor.name).inserted else { throw ForgeError(.usage, "duplicate tensor name", file: path, location: location) }
            guard tensor.shape.allSatisfy({ $0 >= 0 }), tensor.shape.reduce(1, *) == tensor.source.count else {
                throw ForgeError(.usage, "shape \(tensor.shape) does not match \(tensor.source.count) values", file: path, location: location)
            }
        }
        let ordered = tensors.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }

        var header = "{"
        var fields: [String] = []
        if !metadata.isEmpty {
            var object = "{"
            object += metadata.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }.map {
                JSONText.quoted($0) + ":" + JSONText.quoted(metadata[$0]!)
            }.joined(separator: ",")
            fields.append(JSONText.quoted("__metadata__") + ":" + object + "}")
        }
        var offset = 0
        for tensor in ordered {
            let end = offset + tensor.source.count * elementBytes
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            fields.append(JSONText.quoted(tensor.name) + ":{\"dtype\":\"\(dtype)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        header += fields.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        let temporary = path + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ForgeError(.io, "cannot create: \(String(cString: strerror(errno)))", file: temporary) }
        var closed = false
        defer { if !closed { close(fd); unlink(temporary) } }

        var length = UInt64(headerBytes.count).littleEndian
        try withUnsafeBytes(of: &length) { try writeAll(fd, $0, path: temporary) }
        try headerBytes.withUnsafeBytes { try writeAll(fd, $0, path: temporary) }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        for tensor in ordered {
            try tensor.source.withValues { values in
                var start = 0
                let perChunk = chunk.count / elementBytes
                while start < values.count {
                    let count = min(perChunk, values.count - start)
                    try chunk.withUnsafeMutableBytes { out in
                        encode(UnsafeBufferPointer(rebasing: values[start..<(start + count)]), as: dtype, into: out)
                        try writeAll(fd, UnsafeRawBufferPointer(rebasing: out[0..<(count * elementBytes)]), path: temporary)
                    }
                    start += count
                }
            }
        }
        guard fsync(fd) == 0 else { throw ForgeError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: temporary) }
        closed = true
        guard close(fd) == 0 else { unlink(temporary); throw ForgeError(.io, "close failed: \(String(cString: strerror(errno)))", file: temporary) }
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ForgeError(.io, "cannot rename \(temporary) into place: \(reason)", file: path)
        }
    }

    /// Little-endian `dtype` encoding of `values` into the front of `out`.
    private static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: TensorDType, into out: UnsafeMutableRawBufferPointer) {
        switch dtype {
        case .f16:
            for i in 0..<values.count { out.storeBytes(of: HalfFloat.f16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .bf16:
            for i in 0..<values.count { out.storeBytes(of: HalfFloat.bf16Bits(values[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        default:
            for i in 0..<values.count { out.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ForgeError(.io, "write failed: \(String(cString: strerror(errno)))", file: path)
            }
            done += n
        }
    }
}
