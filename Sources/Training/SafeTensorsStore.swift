import Checkpoints
import ForgeCore
import TensorMath

/// Flat Float32 buffers to and from safetensors files (optimizer moments, gradients).
enum SafeTensorsStore {
    static func write(_ buffers: [(String, FloatBuffer)], metadata: [String: String], to path: String) throws {
        try SafeTensorsWriter.write(buffers.map { (name: $0.0, shape: [$0.1.count], data: $0.1.toArray()) },
                                    metadata: metadata, to: path)
    }

    static func open(_ path: String) throws -> SafeTensorsFile { try SafeTensorsFile(path: path) }

    /// Reads tensor `name` into `buffer`, which must have exactly its element count.
    static func read(_ name: String, from file: SafeTensorsFile, into buffer: FloatBuffer) throws {
        let info = try file.requireInfo(name)
        guard info.elementCount == buffer.count else {
            throw ForgeError(.badInput, "tensor has \(info.elementCount) floats, this model's buffer \(buffer.count)",
                             file: file.path, location: "tensor '\(name)'")
        }
        try file.floats(name, into: buffer.buffer)
    }
}
