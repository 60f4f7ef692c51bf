import Models
import TensorMath

extension Projector {
    /// Backward of `forward(activations:)` from dOutput `[rows, out]`: accumulates the projector's
    /// weight and bias gradients into `gradients` (same layout as `parameters`). The input is the
    /// frozen tower's features, so no input gradient is formed.
    public func backward(activations a: ProjectorActivations, dOutput: UnsafePointer<Float>, gradients: ParameterBuffer) {
        precondition(gradients.totalCount == parameters.totalCount, "Projector.backward: gradient buffer layout differs")
        let c = config, rows = a.rows
        func gradient(_ name: String) -> UnsafeMutablePointer<Float>? {
            gradients.contains(prefix + name) ? gradients.pointer(prefix + name) : nil
        }
        func weight(_ name: String) -> UnsafeMutablePointer<Float> { parameters.pointer(prefix + name) }
        if c.kind == .linear {
            Linear.backward(dinput: nil, dweight: gradient("linear_1.weight"), dbias: gradient("linear_1.bias"), dout: dOutput,
                            input: a.input.pointer, weight: weight("linear_1.weight"), rows: rows, inFeatures: c.inputSize, outFeatures: c.outputSize)
            return
        }
        // output = linear_2(gelu(linear_1(input)))
        let dActivated = FloatBuffer(count: rows * c.outputSize)
        Linear.backward(dinput: dActivated.pointer, dweight: gradient("linear_2.weight"), dbias: gradient("linear_2.bias"), dout: dOutput,
                        input: a.activated.pointer, weight: weight("linear_2.weight"), rows: rows, inFeatures: c.outputSize, outFeatures: c.outputSize)
        let dHidden = FloatBuffer(count: rows * c.outputSize)
        GELU.backward(dinput: dHidden.pointer, dout: dActivated.pointer, input: a.hidden.pointer, count: rows * c.outputSize)
        Linear.backward(dinput: nil, dweight: gradient("linear_1.weight"), dbias: gradient("linear_1.bias"), dout: dHidden.pointer,
                        input: a.input.pointer, weight: weight("linear_1.weight"), rows: rows, inFeatures: c.inputSize, outFeatures: c.outputSize)
    }
}
