import Checkpoints
import ForgeCore

/// Float32 → Q4_0 / Q4_1 / Q8_0 blocks with ggml's reference rounding (quantize_row_*_ref), for
/// tests and for quantizing a float model in memory. Rows of `columns` (a multiple of 32) floats.
public enum BlockQuantizer {
    /// The blocks of a `[rows, columns]` matrix, as a `WeightMatrix` (`products: false`: only read
    /// row by row, no interleaved copy).
    public static func matrix(_ type: GGMLType, name: String, values: UnsafePointer<Float>, rows: Int, columns: Int,
                              products: Bool = true) throws -> WeightMatrix {
        guard WeightMatrix.directTypes.contains(type), columns % 32 == 0 else {
            throw ForgeError(.usage, "\(name): cannot quantize \(columns) columns to \(type.name)")
        }
        let blocks = rows * columns / 32
        let bytes = OwnedBytes(count: blocks * type.typeSize)
        for b in 0..<blocks { quantize(type, values + b * 32, into: bytes.pointer + b * type.typeSize) }
        return WeightMatrix(name: name, rows: rows, columns: columns, storage: .blocks(type, UnsafeRawPointer(bytes.pointer)), owner: bytes,
                            products: products)
    }

    static func storeHalf(_ value: Float, _ to: UnsafeMutableRawPointer) {
        to.storeBytes(of: Float16(value).bitPattern.littleEndian, as: UInt16.self)
    }

    /// One block of 32 values.
    static func quantize(_ type: GGMLType, _ x: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        switch type {
        case .q4_0:
            var extreme: Float = 0, amax: Float = 0
            for i in 0..<32 where abs(x[i]) > amax { amax = abs(x[i]); extreme = x[i] }
            let d = extreme / -8, id = d != 0 ? 1 / d : 0
            storeHalf(d, block)
            for j in 0..<16 {
                let a = UInt8(min(15, Int8(x[j] * id + 8.5))), b = UInt8(min(15, Int8(x[j + 16] * id + 8.5)))
                block.storeBytes(of: a | (b << 4), toByteOffset: 2 + j, as: UInt8.self)
            }
        case .q4_1:
            var lo = Float.infinity, hi = -Float.infinity
            for i in 0..<32 { lo = min(lo, x[i]); hi = max(hi, x[i]) }
            let d = (hi - lo) / 15, id = d != 0 ? 1 / d : 0
            storeHalf(d, block)
            storeHalf(lo, block + 2)
            for j in 0..<16 {
                let a = UInt8(min(15, Int8((x[j] - lo) * id + 0.5))), b = UInt8(min(15, Int8((x[j + 16] - lo) * id + 0.5)))
                block.storeBytes(of: a | (b << 4), toByteOffset: 4 + j, as: UInt8.self)
            }
        case .q8_0:
            var amax: Float = 0
            for i in 0..<32 { amax = max(amax, abs(x[i])) }
            let d = amax / 127, id = d != 0 ? 1 / d : 0
            storeHalf(d, block)
            for j in 0..<32 { block.storeBytes(of: Int8((x[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self) }
        default:
            preconditionFailure("BlockQuantizer: \(type.name)")
        }
    }
}
