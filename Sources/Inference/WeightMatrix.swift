import CInferenceKernels
import Checkpoints
import ForgeCore
import TensorMath

/// One weight matrix `[rows = out features, columns = in features]` as the decode kernels read it:
/// Q4_0 / Q4_1 / Q8_0 blocks in place in the memory-mapped GGUF (or in an owned copy when rows had
/// to be reordered), or Float32 (F32 tensors in place; F16, BF16 and every other quant type
/// converted once at load) for sgemv/sgemm.
public final class WeightMatrix {
    public enum Storage {
        case float32(UnsafePointer<Float>)
        case blocks(GGMLType, UnsafeRawPointer)
    }

    public let name: String
    public let rows: Int
    public let columns: Int
    public let storage: Storage
    /// Keeps the bytes alive: the GGUF file (its map) or an owned buffer.
    private let owner: AnyObject
    /// Q4_0 / Q4_1 / Q8_0 blocks re-laid for the AVX-512 VNNI kernels (16 rows side by side,
    /// `lf_interleave`), made once at load where the CPU runs them; nil otherwise. The GGML blocks
    /// stay for row lookups (embeddings), the AVX2 and Swift kernels.
    let interleaved: OwnedBytes?

    /// The GGML types read directly by `BlockDot`.
    public static let directTypes: Set<GGMLType> = [.q4_0, .q4_1, .q8_0]

    /// `products: false` for a matrix only read row by row (an untied embedding table): no
    /// interleaved copy.
    init(name: String, rows: Int, columns: Int, storage: Storage, owner: AnyObject, products: Bool = true) {
        self.name = name
        self.rows = rows
        self.columns = columns
        self.storage = storage
        self.owner = owner
        interleaved = products ? WeightMatrix.interleave(storage, rows: rows, columns: columns) : nil
    }

    private static func interleave(_ storage: Storage, rows: Int, columns: Int) -> OwnedBytes? {
        guard case .blocks(let type, let base) = storage, lf_has_vnni() != 0, columns % 32 == 0 else { return nil }
        let blocks = columns / 32
        let bytes = lf_interleaved_bytes(Int32(type.rawValue), rows, blocks)
        guard bytes > 0 else { return nil }
        let copy = OwnedBytes(count: bytes)
        lf_interleave(Int32(type.rawValue), base.assumingMemoryBound(to: UInt8.self), rows, blocks, copy.pointer.assumingMemoryBound(to: UInt8.self))
        return copy
    }

    /// Bytes per stored row.
    public var rowBytes: Int {
        switch storage {
        case .float32: return columns * 4
        case .blocks(let type, _): return columns / type.blockSize * type.typeSize
        }
    }

    /// Bits per weight the decode path reads.
    public var bitsPerWeight: Double { Double(rowBytes * 8) / Double(columns) }

    public var typeName: String {
        switch storage {
        case .float32: return "F32"
        case .blocks(let type, _): return type.name
        }
    }

    /// A 2-D tensor of `file`. `rowOrder[i]` (when given) is the stored row that becomes row i
    /// (GGUF's Q/K permutation undone); the reordered rows are copied into owned memory.
    /// `products: false`: the matrix is only read row by row (see `init`).
    static func load(_ file: GGUFFile, tensor: String, rowOrder: [Int]? = nil, products: Bool = true) throws -> WeightMatrix {
        let info = try file.requireInfo(tensor)
        guard info.shape.count == 2 else {
            throw ForgeError(.badInput, "expected a matrix, found shape \(info.shape)", file: file.path, location: "tensor '\(tensor)'")
        }
        let rows = info.shape[0], columns = info.shape[1]
        let raw = try file.rawBytes(tensor)
        guard let type = info.dtype.ggmlType else {
            throw ForgeError(.badInput, "dtype \(info.dtype) is not a weight type", file: file.path, location: "tensor '\(tensor)'")
        }
        if WeightMatrix.directTypes.contains(type), let base = raw.baseAddress {
            let rowBytes = columns / type.blockSize * type.typeSize
            guard raw.count == rows * rowBytes else {
                throw ForgeError(.badInput, "holds \(raw.count) bytes, expected \(rows * rowBytes)", file: file.path, location: "tensor '\(tensor)'")
            }
            guard let order = rowOrder else {
                let matrix = WeightMatrix(name: tensor, rows: rows, columns: columns, storage: .blocks(type, base), owner: file,
                                          products: products)
                // The kernels read the interleaved copy; the mapped blocks are only read again
                // for embedding rows or by the other kernels (faulted back in then). Without
                // this, every weight would stay resident twice.
                if matrix.interleaved != nil { file.releasePages(tensor) }
                return matrix
            }
            let copy = OwnedBytes(count: raw.count)
            for (to, from) in order.enumerated() {
                copy.pointer.advanced(by: to * rowBytes).copyMemory(from: base + from * rowBytes, byteCount: rowBytes)
            }
            return WeightMatrix(name: tensor, rows: rows, columns: columns, storage: .blocks(type, UnsafeRawPointer(copy.pointer)), owner: copy,
                                products: products)
        }
        if type == .f32, rowOrder == nil, let base = raw.baseAddress, Int(bitPattern: base) % 4 == 0 {
            return WeightMatrix(name: tensor, rows: rows, columns: columns,
                                storage: .float32(base.assumingMemoryBound(to: Float.self)), owner: file)
        }
        // F16, BF16, K-quants, …: converted once (through sgemv at decode).
        let floats = FloatBuffer(count: rows * columns)
        try file.floats(tensor, into: floats.buffer)
        if let order = rowOrder {
            let source = floats.toArray()
            for (to, from) in order.enumerated() {
                (floats.pointer + to * columns).update(from: source.withUnsafeBufferPointer { $0.baseAddress! } + from * columns, count: columns)
            }
        }
        return WeightMatrix(name: tensor, rows: rows, columns: columns, storage: .float32(UnsafePointer(floats.pointer)), owner: floats)
    }

    /// A matrix over caller-provided storage (tests, hand-quantized weights). `owner` keeps it alive.
    public static func make(name: String, rows: Int, columns: Int, storage: Storage, owner: AnyObject) throws -> WeightMatrix {
        if case .blocks(let type, _) = storage {
            guard WeightMatrix.directTypes.contains(type), columns % 32 == 0 else {
                throw ForgeError(.usage, "\(name): blocks of \(type.name) with \(columns) columns cannot be read directly")
            }
        }
        return WeightMatrix(name: name, rows: rows, columns: columns, storage: storage, owner: owner)
    }

    /// Rows `range` as Float32 into `out` (`range.count × columns`), for prefill tiles.
    func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        switch storage {
        case .float32(let pointer):
            out.update(from: pointer + range.lowerBound * columns, count: range.count * columns)
        case .blocks(let type, let base):
            let bytes = UnsafeRawBufferPointer(start: base + range.lowerBound * rowBytes, count: range.count * rowBytes)
            // Sizes are whole blocks by construction, so this cannot throw.
            try! GGMLDequantizer.dequantize(type, from: bytes, into: UnsafeMutableBufferPointer(start: out, count: range.count * columns))
        }
    }

    /// Row `index` as Float32 (an embedding lookup).
    func row(_ index: Int, into out: UnsafeMutablePointer<Float>) { dequantize(rows: index..<(index + 1), into: out) }
}

/// An owned, 64-byte aligned byte block.
final class OwnedBytes {
    let pointer: UnsafeMutableRawPointer
    let count: Int
    init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}
