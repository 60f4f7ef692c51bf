import ForgeCore
import TensorMath

/// LLaVA's multimodal projector: `linear` (one Linear) or `mlp2x_gelu` (Linear → exact GELU →
/// Linear), names `linear_1.{weight,bias}` / `linear_2.{weight,bias}` as transformers'
/// `LlavaMultiModalProjector`.
public enum ProjectorParameterNames {
    public static func shapes(_ c: ProjectorConfig) -> [(name: String, shape: [Int])] {
        var list: [(String, [Int])] = [("linear_1.weight", [c.outputSize, c.inputSize])]
        if c.bias { list.append(("linear_1.bias", [c.outputSize])) }
        if c.kind == .mlp2x {
            list.append(("linear_2.weight", [c.outputSize, c.outputSize]))
            if c.bias { list.append(("linear_2.bias", [c.outputSize])) }
        }
        return list
    }

    public static func declare(_ config: ProjectorConfig, prefix: String = "", into layout: inout ParameterLayout) {
        for (name, shape) in shapes(config) { layout.add(prefix + name, shape: shape) }
    }
}

/// What the projector's backward needs for `rows` feature rows.
public final class ProjectorActivations {
    public let rows: Int
    public let input: FloatBuffer    // [rows, in]
    public let hidden: FloatBuffer   // [rows, out]: linear_1 output, the activation's input (mlp2x)
    public let activated: FloatBuffer  // [rows, out]: linear_2's input (mlp2x)
    public let output: FloatBuffer   // [rows, out]

    public init(config c: ProjectorConfig, rows: Int) {
        self.rows = rows
        input = FloatBuffer(count: rows * c.inputSize)
        hidden = FloatBuffer(count: c.kind == .mlp2x ? rows * c.outputSize : 0)
        activated = FloatBuffer(count: c.kind == .mlp2x ? rows * c.outputSize : 0)
        output = FloatBuffer(count: rows * c.outputSize)
    }
}

public final class Projector {
    public let config: ProjectorConfig
    public let parameters: ParameterBuffer
    public let prefix: String

    public init(config: ProjectorConfig, parameters: ParameterBuffer, prefix: String = "") throws {
        guard config.activation == "gelu" || config.kind == .linear else {
            throw ForgeError(.badInput, "projector activation '\(config.activation)' is not supported (gelu)", location: "projector_hidden_act")
        }
        for (name, shape) in ProjectorParameterNames.shapes(config) {
            guard let slot = parameters.layout.slot(prefix + name) else { throw ForgeError(.badInput, "parameter buffer lacks \(prefix + name)") }
            guard slot.shape == shape else {
                throw ForgeError(.badInput, "parameter \(prefix + name) has shape \(slot.shape), the config needs \(shape)")
            }
        }
        self.config = config
        self.parameters = parameters
        self.prefix = prefix
    }

    private func pointer(_ name: String) -> UnsafeMutablePointer<Float>? {
        parameters.contains(prefix + name) ? parameters.pointer(prefix + name) : nil
    }

    /// Fills `a.output` from `a.input` (the caller writes the selected vision features there).
    public func forward(activations a: ProjectorActivations) {
        let c = config
        if c.kind == .linear {
            Linear.forward(out: a.output.pointer, input: a.input.pointer, weight: pointer("linear_1.weight")!, bias: pointer("linear_1.bias"),
                           rows: a.rows, inFeatures: c.inputSize, outFeatures: c.outputSize)
            return
        }
        Linear.forward(out: a.hidden.pointer, input: a.input.pointer, weight: pointer("linear_1.weight")!, bias: pointer("linear_1.bias"),
                       rows: a.rows, inFeatures: c.inputSize, outFeatures: c.outputSize)
        GELU.forward(out: a.activated.pointer, input: a.hidden.pointer, count: a.rows * c.outputSize)
        Linear.forward(out: a.output.pointer, input: a.activated.pointer, weight: pointer("linear_2.weight")!, bias: pointer("linear_2.bias"),
                       rows: a.rows, inFeatures: c.outputSize, outFeatures: c.outputSize)
    }

    /// `[rows, out]` for features `[rows, in]`.
    public func project(_ features: [Float]) -> [Float] {
        let rows = features.count / config.inputSize
        guard rows > 0 else { return [] }
        let a = ProjectorActivations(config: config, rows: rows)
        features.withUnsafeBufferPointer { a.input.copy(from: $0.baseAddress!, count: features.count) }
        forward(activations: a)
        return a.output.toArray()
    }
}
