/// One named tensor inside a flat parameter buffer.
public struct ParameterSlot: Equatable, Sendable {
    public let name: String
    /// Offset in floats from the start of the buffer.
    public let offset: Int
    /// Shape in Hugging Face order (row-major), e.g. `[out, in]` for a linear weight.
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// The declared order and shapes of a model part's parameters, before any memory exists.
/// Building the layout first lets the flat buffer be allocated once, and lets a gradient buffer
/// (same layout) line up with it float for float — AdamW over a whole model part is then one loop.
public struct ParameterLayout: Sendable {
    public private(set) var slots: [ParameterSlot] = []
    public private(set) var totalCount = 0
    private var indexByName: [String: Int] = [:]

    public init() {}

    /// Declares a tensor; offsets are rounded up to 16 floats (64 bytes) so every tensor starts
    /// on a cache line, which keeps SIMD loads aligned.
    public mutating func add(_ name: String, shape: [Int]) {
        precondition(indexByName[name] == nil, "ParameterLayout: \(name) declared twice")
        precondition(shape.allSatisfy { $0 > 0 }, "ParameterLayout: \(name) has an empty dimension \(shape)")
        let offset = (totalCount + 15) & ~15
        indexByName[name] = slots.count
        slots.append(ParameterSlot(name: name, offset: offset, shape: shape))
        totalCount = offset + shape.reduce(1, *)
    }

    public func slot(_ name: String) -> ParameterSlot? { indexByName[name].map { slots[$0] } }
    public var names: [String] { slots.map(\.name) }
}

/// A model part's parameters in one flat `Float` buffer with named offsets.
public final class ParameterBuffer {
    public let layout: ParameterLayout
    public let storage: FloatBuffer

    public init(layout: ParameterLayout) {
        self.layout = layout
        storage = FloatBuffer(count: layout.totalCount)
    }

    public var slots: [ParameterSlot] { layout.slots }
    public var totalCount: Int { layout.totalCount }
    /// Sum of the tensor sizes (excludes alignment padding).
    public var parameterCount: Int { layout.slots.reduce(0) { $0 + $1.count } }

    public func slot(_ name: String) -> ParameterSlot {
        guard let slot = layout.slot(name) else { preconditionFailure("ParameterBuffer: no parameter named \(name)") }
        return slot
    }

    public func contains(_ name: String) -> Bool { layout.slot(name) != nil }

    /// Pointer to the first float of a named tensor.
    public func pointer(_ name: String) -> UnsafeMutablePointer<Float> { storage.pointer + slot(name).offset }

    public func values(_ name: String) -> [Float] {
        let s = slot(name)
        return storage.toArray(offset: s.offset, count: s.count)
    }
}
