/// The seven linear projections of a LLaMA decoder layer, by their transformers module names
/// (what LoRA's `target_modules` lists).
public enum LlamaProjection: String, CaseIterable, Codable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module path inside a layer: `self_attn.q_proj`, `mlp.gate_proj`, …
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + rawValue
        case .gate, .up, .down: return "mlp." + rawValue
        }
    }

    /// (out, in) features of the projection's weight `[out, in]`.
    public func shape(_ c: LlamaConfig) -> (out: Int, in: Int) {
        switch self {
        case .q: return (c.qWidth, c.hiddenSize)
        case .k, .v: return (c.kvWidth, c.hiddenSize)
        case .o: return (c.hiddenSize, c.qWidth)
        case .gate, .up: return (c.intermediateSize, c.hiddenSize)
        case .down: return (c.hiddenSize, c.intermediateSize)
        }
    }
}

/// A trainable term added to some of a decoder's linear projections (LoRA): the full-sequence
/// forward calls `forward` right after each base projection, and `LlamaModel.backward` calls
/// `backward` right after each base projection's backward (same arguments as there). The KV-cache
/// decode path does not consult it — merge the adapter into the weights before generating.
public protocol LinearAdapter: AnyObject {
    /// out `[rows, out]` += the adapter's term for `projection` of `layer`, input `[rows, in]`.
    func forward(layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int)
    /// Accumulates the adapter's own parameter gradients from dout `[rows, out]`, and
    /// dinput `[rows, in]` += its term's input gradient when `dinput` is given.
    func backward(layer: Int, projection: LlamaProjection, dinput: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                  input: UnsafePointer<Float>, rows: Int)
}
