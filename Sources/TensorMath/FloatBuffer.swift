import Foundation

/// An owned, 64-byte aligned, zero-initialised block of `Float`s. Activations, parameters and
/// gradients live in these so hot loops work on raw pointers (no copy-on-write, no bounds checks).
/// Reference semantics: two holders see the same memory.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer: negative count \(count)")
        self.count = count
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    /// `body(pointer)` with this buffer kept alive until it returns. `pointer` alone does not keep
    /// the buffer alive: an optimized build may free a local buffer right after its last use as an
    /// object, so code that holds only the pointer should go through here (or `withExtendedLifetime`).
    public func withPointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(pointer) }
    }

    /// A pointer `offset` floats in; checked once here, not per element.
    public func pointer(at offset: Int) -> UnsafeMutablePointer<Float> {
        precondition(offset >= 0 && offset <= count, "FloatBuffer: offset \(offset) outside 0...\(count)")
        return pointer + offset
    }

    public func fill(_ value: Float) { pointer.update(repeating: value, count: count) }

    public func copy(from source: UnsafePointer<Float>, count n: Int, at offset: Int = 0) {
        precondition(offset >= 0 && offset + n <= count, "FloatBuffer: copy of \(n) at \(offset) overruns \(count)")
        (pointer + offset).update(from: source, count: n)
    }

    public func toArray() -> [Float] { Array(buffer) }

    public func toArray(offset: Int, count n: Int) -> [Float] {
        precondition(offset >= 0 && offset + n <= count, "FloatBuffer: slice \(offset)+\(n) overruns \(count)")
        return Array(UnsafeBufferPointer(start: pointer + offset, count: n))
    }
}
