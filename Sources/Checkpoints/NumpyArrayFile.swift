import ForgeCore
import Foundation

/// NumPy `.npy` files (format version 1.0) holding one little-endian float32 array in C order:
/// what `predict --dump-logits` writes and what `numpy.load` reads back.
///
/// Layout: magic `\x93NUMPY`, version bytes 1 0, a little-endian UInt16 header length, then the
/// header dict `{'descr': '<f4', 'fortran_order': False, 'shape': (T, V), }` padded with spaces and
/// ended by `\n` so that magic + length + header is a multiple of 64 bytes, then the raw data.
public enum NumpyArrayFile {
    public static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    static let alignment = 64

    /// The shape as NumPy's `repr` writes it: `(3,)`, `(2, 5)`, `()`.
    static func shapeLiteral(_ shape: [Int]) -> String {
        if shape.count == 1 { return "(\(shape[0]),)" }
        return "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// Magic, version, header length and the padded header dict (everything before the data).
    public static func preamble(shape: [Int]) -> [UInt8] {
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeLiteral(shape)), }".utf8)
        let fixed = magic.count + 2 + 2
        let total = (fixed + dict.count + 1 + alignment - 1) / alignment * alignment
        dict += [UInt8](repeating: 0x20, count: total - fixed - dict.count - 1)
        dict.append(0x0A)
        let length = UInt16(dict.count)
        return magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + dict
    }

    /// Writes `values` (C order, `shape.reduce(1, *)` floats) to `path`, replacing any file there.
    public static func write(_ values: UnsafeBufferPointer<Float>, shape: [Int], to path: String) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw ForgeError(.usage, "npy shape \(shape) does not hold \(values.count) floats", file: path)
        }
        var bytes = Data(preamble(shape: shape))
        // The data are little-endian float32, which is the host order on every platform we build for.
        bytes.append(contentsOf: UnsafeRawBufferPointer(values))
        do {
            try bytes.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw ForgeError(.io, "cannot write npy file: \(error.localizedDescription)", file: path)
        }
    }

    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        try values.withUnsafeBufferPointer { try write($0, shape: shape, to: path) }
    }

    /// Reads a float32 C-order `.npy` (version 1.0 or 2.0) written by us or by NumPy.
    public static func read(path: String) throws -> (shape: [Int], values: [Float]) {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ForgeError(.io, "cannot read npy file: \(error.localizedDescription)", file: path)
        }
        let bytes = [UInt8](data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw ForgeError(.badInput, "not an npy file (bad magic)", file: path, location: "magic")
        }
        let major = bytes[6]
        let lengthBytes = major == 1 ? 2 : 4
        guard major == 1 || major == 2, bytes.count >= 8 + lengthBytes else {
            throw ForgeError(.badInput, "npy format version \(major) is not supported", file: path, location: "version")
        }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(bytes[8 + i]) << (8 * i) }
        let dataStart = 8 + lengthBytes + headerLength
        guard dataStart <= bytes.count, let header = String(bytes: bytes[(8 + lengthBytes)..<dataStart], encoding: .ascii) else {
            throw ForgeError(.badInput, "npy header length \(headerLength) runs past the end of the file", file: path, location: "header")
        }
        guard header.contains("'descr': '<f4'") else {
            throw ForgeError(.badInput, "only little-endian float32 ('<f4') npy files are supported; header: \(header)", file: path, location: "descr")
        }
        guard header.contains("'fortran_order': False") else {
            throw ForgeError(.badInput, "Fortran-order npy arrays are not supported", file: path, location: "fortran_order")
        }
        guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
            throw ForgeError(.badInput, "npy header has no shape", file: path, location: "shape")
        }
        let parts = header[open.upperBound..<close].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var shape: [Int] = []
        for part in parts {
            guard let n = Int(part), n >= 0 else { throw ForgeError(.badInput, "bad npy dimension '\(part)'", file: path, location: "shape") }
            shape.append(n)
        }
        let (count, overflow) = shape.reduce((1, false)) { acc, n in
            let (m, o) = acc.0.multipliedReportingOverflow(by: n)
            return (m, acc.1 || o)
        }
        guard !overflow, count <= (bytes.count - dataStart) / 4, bytes.count - dataStart == count * 4 else {
            throw ForgeError(.badInput, "npy shape \(shape) needs \(count * 4) data bytes, the file has \(bytes.count - dataStart)", file: path, location: "data")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { out in
            bytes.withUnsafeBytes { src in out.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[dataStart...])) }
        }
        return (shape, values)
    }
}
