import ForgeCore

/// Block bytes → Float32 for every GGML type in `GGMLType.canDequantize`.
///
/// The inference engine can call this on a slice of `rawBytes` (for example one row of an
/// embedding table) instead of converting a whole tensor.
public enum GGMLDequantizer {
    /// Dequantizes the whole blocks in `source` into `output`.
    /// `source.count` must be a multiple of `type.typeSize`, and `output.count` must be
    /// `source.count / type.typeSize * type.blockSize`.
    public static func dequantize(_ type: GGMLType, from source: UnsafeRawBufferPointer,
                                  into output: UnsafeMutableBufferPointer<Float>) throws {
        guard type.canDequantize else {
            throw ForgeError(.badInput, "dequantization of GGML type \(type.name) is not supported")
        }
        guard source.count % type.typeSize == 0 else {
            throw ForgeError(.usage, "\(source.count) bytes is not a whole number of \(type.name) blocks (\(type.typeSize) bytes each)")
        }
        let blocks = source.count / type.typeSize
        guard output.count == blocks * type.blockSize else {
            throw ForgeError(.usage, "\(blocks) \(type.name) blocks hold \(blocks * type.blockSize) values, output has room for \(output.count)")
        }
        guard blocks > 0, let from = source.baseAddress, let to = output.baseAddress else { return }
        run(type, from, blocks: blocks, into: to)
    }

    /// Unchecked kernel dispatch; callers guarantee sizes and `type.canDequantize`.
    static func run(_ type: GGMLType, _ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32: UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: blocks * 4)
        case .f16: HalfFloat.convertF16(source, count: blocks, into: destination)
        case .bf16: HalfFloat.convertBF16(source, count: blocks, into: destination)
        case .f64:
            for i in 0..<blocks {
                destination[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .q4_0: LegacyQuantKernels.q4_0(source, blocks: blocks, into: destination)
        case .q4_1: LegacyQuantKernels.q4_1(source, blocks: blocks, into: destination)
        case .q5_0: LegacyQuantKernels.q5_0(source, blocks: blocks, into: destination)
        case .q5_1: LegacyQuantKernels.q5_1(source, blocks: blocks, into: destination)
        case .q8_0: LegacyQuantKernels.q8_0(source, blocks: blocks, into: destination)
        case .q2_K: KQuantKernels.q2_K(source, blocks: blocks, into: destination)
        case .q3_K: KQuantKernels.q3_K(source, blocks: blocks, into: destination)
        case .q4_K: KQuantKernels.q4_K(source, blocks: blocks, into: destination)
        case .q5_K: KQuantKernels.q5_K(source, blocks: blocks, into: destination)
        case .q6_K: KQuantKernels.q6_K(source, blocks: blocks, into: destination)
        case .q8_K: KQuantKernels.q8_K(source, blocks: blocks, into: destination)
        default: preconditionFailure("GGMLDequantizer.run called for \(type.name)")
        }
    }
}

/// Stored bytes of any `TensorDType` → Float32, with errors that name the file and tensor.
enum FloatConversion {
    static func convert(_ raw: UnsafeRawBufferPointer, info: TensorInfo, into output: UnsafeMutableBufferPointer<Float>,
                        file: String) throws {
        let elements = info.elementCount
        guard output.count == elements else {
            throw ForgeError(.usage, "output buffer holds \(output.count) floats, tensor has \(elements) elements",
                             file: file, location: "tensor '\(info.name)'")
        }
        guard info.dtype.isConvertibleToFloat, let type = info.dtype.ggmlType else {
            let what = isInteger(info.dtype)
                ? "\(info.dtype) is an integer type; only float and quantized tensors convert to Float"
                : "dequantization of \(info.dtype) is not supported"
            throw ForgeError(.badInput, what, file: file, location: "tensor '\(info.name)'")
        }
        let blocks = elements / type.blockSize
        guard raw.count == blocks * type.typeSize else {
            throw ForgeError(.badInput, "holds \(raw.count) bytes, \(elements) × \(info.dtype) needs \(blocks * type.typeSize)",
                             file: file, location: "tensor '\(info.name)'")
        }
        guard blocks > 0, let from = raw.baseAddress, let to = output.baseAddress else { return }
        GGMLDequantizer.run(type, from, blocks: blocks, into: to)
    }

    private static func isInteger(_ dtype: TensorDType) -> Bool {
        switch dtype {
        case .i64, .i32, .u8, .bool, .gguf(.i8), .gguf(.i16): return true
        default: return false
        }
    }
}
