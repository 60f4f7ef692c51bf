/// Element types of checkpoint tensors.
///
/// safetensors dtypes are their own cases; GGUF tensor types are `.gguf(GGMLType)`, except that the
/// types both formats share (F32, F16, BF16, I32, I64) always use the shared case, so code that
/// checks `info.dtype == .f32` works for both formats. `ggmlType` maps back.
public enum TensorDType: Equatable, Hashable, Sendable, CustomStringConvertible {
    case f32, f16, bf16, i64, i32, u8, bool
    case gguf(GGMLType)

    /// The shared case for GGML types both formats have, `.gguf(type)` otherwise.
    public init(ggml type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .i32: self = .i32
        case .i64: self = .i64
        default: self = .gguf(type)
        }
    }

    /// The safetensors spelling (`F32`, `BF16`, …) or the GGML type name (`Q4_0`, `Q6_K`, …).
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .i64: return "I64"
        case .i32: return "I32"
        case .u8: return "U8"
        case .bool: return "BOOL"
        case .gguf(let type): return type.name
        }
    }

    /// The GGML type with the same storage, when there is one (`.u8`/`.bool` have none).
    public var ggmlType: GGMLType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .i64: return .i64
        case .i32: return .i32
        case .u8, .bool: return nil
        case .gguf(let type): return type
        }
    }

    /// Elements per storage block (1 for plain types, 32 or 256 for GGML quants).
    public var blockSize: Int { ggmlType?.blockSize ?? 1 }
    /// Bytes per storage block.
    public var blockBytes: Int { ggmlType?.typeSize ?? 1 }

    /// Whether `floats(_:)` can convert this type (float types and the dequantizable GGML types).
    public var isConvertibleToFloat: Bool {
        switch self {
        case .f32, .f16, .bf16: return true
        case .i64, .i32, .u8, .bool: return false
        case .gguf(let type): return type.canDequantize
        }
    }

    /// Bytes needed for `elements` values, or nil when `elements` is not a whole number of blocks
    /// or the size overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    /// safetensors dtype names this reader accepts.
    static func safeTensors(named name: String) -> TensorDType? {
        switch name {
        case "F32": return .f32
        case "F16": return .f16
        case "BF16": return .bf16
        case "I64": return .i64
        case "I32": return .i32
        case "U8": return .u8
        case "BOOL": return .bool
        default: return nil
        }
    }

    /// Names the safetensors format defines but this reader does not load (for a clearer error).
    static let knownUnsupportedSafeTensorsNames: Set<String> = [
        "F64", "I16", "I8", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64",
    ]
}

/// GGML tensor types by their on-disk id (ggml.h `enum ggml_type`; ids 4, 5, 31–33, 36–38 were
/// removed upstream and are unknown here). Sizes follow ggml-common.h.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30
    case tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41

    /// The K-quant super-block length (QK_K).
    static let superBlock = 256

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        case .nvfp4: return 64
        case .q1_0: return 128
        default: return GGMLType.superBlock
        }
    }

    /// Bytes per block.
    public var typeSize: Int {
        let k = GGMLType.superBlock
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 2 + 16
        case .q4_1: return 2 + 2 + 16
        case .q5_0: return 2 + 4 + 16
        case .q5_1: return 2 + 2 + 4 + 16
        case .q8_0: return 2 + 32
        case .q8_1: return 2 + 2 + 32  // ggml-common.h: half d, half s, int8 qs[32]
        case .q2_K: return 2 + 2 + k / 16 + k / 4
        case .q3_K: return 2 + k / 4 + k / 8 + 12
        case .q4_K: return 2 + 2 + 12 + k / 2
        case .q5_K: return 2 + 2 + 12 + k / 8 + k / 2
        case .q6_K: return 2 + k / 2 + k / 4 + k / 16
        case .q8_K: return 4 + k + k / 8  // float d, int8 qs[256], int16 bsums[16]
        case .iq2_xxs: return 2 + k / 4
        case .iq2_xs: return 2 + k / 4 + k / 32
        case .iq3_xxs: return 2 + k / 4 + k / 8
        case .iq1_s: return 2 + k / 8 + k / 16
        case .iq4_nl: return 2 + 16
        case .iq3_s: return 2 + k / 4 + k / 8 + k / 32 + 4
        case .iq2_s: return 2 + k / 4 + k / 16
        case .iq4_xs: return 2 + 2 + k / 2 + k / 64
        case .iq1_m: return k / 8 + k / 16 + k / 32
        case .tq1_0: return 2 + 4 * 13
        case .tq2_0: return 2 + 64
        case .mxfp4: return 1 + 16
        case .nvfp4: return 4 + 32
        case .q1_0: return 2 + 16
        }
    }

    /// ggml's spelling: `F32`, `Q4_0`, `Q6_K`, `IQ2_XXS`, …
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_xxs: return "IQ2_XXS"
        case .iq2_xs: return "IQ2_XS"
        case .iq3_xxs: return "IQ3_XXS"
        case .iq1_s: return "IQ1_S"
        case .iq4_nl: return "IQ4_NL"
        case .iq3_s: return "IQ3_S"
        case .iq2_s: return "IQ2_S"
        case .iq4_xs: return "IQ4_XS"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .iq1_m: return "IQ1_M"
        case .bf16: return "BF16"
        case .tq1_0: return "TQ1_0"
        case .tq2_0: return "TQ2_0"
        case .mxfp4: return "MXFP4"
        case .nvfp4: return "NVFP4"
        case .q1_0: return "Q1_0"
        }
    }

    public var description: String { name }

    /// Types `GGMLDequantizer` converts to Float32.
    public var canDequantize: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K:
            return true
        default:
            return false
        }
    }
}

/// One tensor's description, independent of the file format.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: TensorDType
    /// PyTorch/HF order, outermost first (`[out_features, in_features]`). For GGUF this is ggml's
    /// `ne` reversed, so `shape.last` is ne[0], the fastest-varying dimension.
    public var shape: [Int]
    /// Bytes the tensor occupies in the file.
    public var byteCount: Int

    public init(name: String, dtype: TensorDType, shape: [Int], byteCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteCount = byteCount
    }

    /// Product of `shape` (1 for a scalar). Readers verify it does not overflow.
    public var elementCount: Int { shape.reduce(1, *) }
}
