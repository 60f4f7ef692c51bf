import ForgeCore
import TensorMath

/// Our parameter names for a CLIP vision tower: transformers' `CLIPVisionTransformer` names
/// (what follows `vision_model.` in a `CLIPVisionModel` checkpoint).
public enum CLIPParameterNames {
    public static let classEmbedding = "embeddings.class_embedding"
    public static let patchEmbedding = "embeddings.patch_embedding.weight"
    public static let positionEmbedding = "embeddings.position_embedding.weight"

    public static func layer(_ index: Int, _ suffix: String) -> String { "encoder.layers.\(index).\(suffix)" }

    public static func shapes(_ c: CLIPVisionConfig) -> [(name: String, shape: [Int])] {
        let h = c.hiddenSize
        var list: [(String, [Int])] = [
            (classEmbedding, [h]),
            (patchEmbedding, [h, c.numChannels, c.patchSize, c.patchSize]),
            (positionEmbedding, [c.positionCount, h]),
            ("pre_layrnorm.weight", [h]), ("pre_layrnorm.bias", [h]),
        ]
        for i in 0..<c.numHiddenLayers {
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                list.append((layer(i, "self_attn.\(proj).weight"), [h, h]))
                list.append((layer(i, "self_attn.\(proj).bias"), [h]))
            }
            list.append((layer(i, "layer_norm1.weight"), [h]))
            list.append((layer(i, "layer_norm1.bias"), [h]))
            list.append((layer(i, "mlp.fc1.weight"), [c.intermediateSize, h]))
            list.append((layer(i, "mlp.fc1.bias"), [c.intermediateSize]))
            list.append((layer(i, "mlp.fc2.weight"), [h, c.intermediateSize]))
            list.append((layer(i, "mlp.fc2.bias"), [h]))
            list.append((layer(i, "layer_norm2.weight"), [h]))
            list.append((layer(i, "layer_norm2.bias"), [h]))
        }
        // Loaded (checkpoints have it, so it must be consumed) but unused by LLaVA, whose features
        // come from hidden_states, before this norm.
        list.append(("post_layernorm.weight", [h]))
        list.append(("post_layernorm.bias", [h]))
        return list
    }

    public static func declare(_ config: CLIPVisionConfig, prefix: String = "", into layout: inout ParameterLayout) {
        for (name, shape) in shapes(config) { layout.add(prefix + name, shape: shape) }
    }
}

/// CLIP ViT: patch embedding as one GEMM over im2col'd patches (the conv has no bias), class token,
/// position embeddings, pre-LayerNorm, pre-norm encoder layers (MHA with biases, quick-GELU MLP).
/// The tower is frozen in LLaVA training, so the forward keeps no activations for backward.
public final class CLIPVisionTower {
    public let config: CLIPVisionConfig
    public let parameters: ParameterBuffer
    public let prefix: String
    private let offsets: [String: Int]

    public init(config: CLIPVisionConfig, parameters: ParameterBuffer, prefix: String = "") throws {
        try config.validate(file: nil)
        self.config = config
        self.parameters = parameters
        self.prefix = prefix
        var offsets: [String: Int] = [:]
        for (name, shape) in CLIPParameterNames.shapes(config) {
            guard let slot = parameters.layout.slot(prefix + name) else {
                throw ForgeError(.badInput, "parameter buffer lacks \(prefix + name)")
            }
            guard slot.shape == shape else {
                throw ForgeError(.badInput, "parameter \(prefix + name) has shape \(slot.shape), the config needs \(shape)")
            }
            offsets[name] = slot.offset
        }
        self.offsets = offsets
    }

    public static func makeParameters(_ config: CLIPVisionConfig, prefix: String = "") -> ParameterBuffer {
        var layout = ParameterLayout()
        CLIPParameterNames.declare(config, prefix: prefix, into: &layout)
        return ParameterBuffer(layout: layout)
    }

    @inline(__always) private func w(_ name: String) -> UnsafeMutablePointer<Float> { parameters.storage.pointer + offsets[name]! }
    @inline(__always) private func lw(_ i: Int, _ suffix: String) -> UnsafeMutablePointer<Float> { w(CLIPParameterNames.layer(i, suffix)) }

    /// transformers' hidden_states numbering → layers to run: index 0 is the embeddings after
    /// pre-LayerNorm, k the output of layer k−1 (k layers run); negative counts from the end of
    /// the `layers + 1` entries, so −1 is the last layer's output and −2 the one before it.
    public func hiddenStateIndex(_ layer: Int) throws -> Int {
        let count = config.numHiddenLayers + 1
        let index = layer < 0 ? count + layer : layer
        guard index >= 0, index < count else {
            throw ForgeError(.badInput, "vision_feature_layer \(layer) is outside the \(count) hidden states of a \(config.numHiddenLayers)-layer tower",
                             location: "vision_feature_layer")
        }
        return index
    }

    /// Selected features of one image: pixels `[channels, H, W]` (normalized, H = W = image_size)
    /// → `[rows, hidden·layers.count]`, rows = patches (`.default`, CLS dropped) or patches + 1
    /// (`.full`). Several layers are concatenated along the feature axis, in the order given.
    public func features(pixels: UnsafePointer<Float>, layers: [Int], strategy: VisionFeatureStrategy) throws -> [Float] {
        try features(pixels: pixels, images: 1, layers: layers, strategy: strategy)
    }

    /// `features` of `images` images at once (pixels `[images, channels, H, W]`) → each image's
    /// rows in turn. The encoder runs all images' positions through each matrix together (one
    /// sgemm per matrix over images × positions rows: larger, faster products), attention per image.
    public func features(pixels: UnsafePointer<Float>, images: Int, layers: [Int], strategy: VisionFeatureStrategy) throws -> [Float] {
        precondition(images > 0, "CLIPVisionTower.features: no image")
        let c = config, h = c.hiddenSize, n = c.positionCount
        let perImage = c.numChannels * c.imageSize * c.imageSize
        let wanted = try layers.map(hiddenStateIndex)
        let deepest = wanted.max() ?? 0
        let x = FloatBuffer(count: images * n * h)
        for image in 0..<images { embed(pixels: pixels + image * perImage, into: x.pointer + image * n * h) }
        let scratch = LayerScratch(config: c, images: images)
        let width = h * wanted.count
        let firstRow = strategy == .default ? 1 : 0
        let rows = n - firstRow
        var out = [Float](repeating: 0, count: images * rows * width)
        func collect(_ state: Int) {
            for (slot, index) in wanted.enumerated() where index == state {
                out.withUnsafeMutableBufferPointer { o in
                    for image in 0..<images {
                        for r in 0..<rows {
                            (o.baseAddress! + (image * rows + r) * width + slot * h).update(from: x.pointer + (image * n + r + firstRow) * h, count: h)
                        }
                    }
                }
            }
        }
        collect(0)
        for layer in 0..<deepest {
            encoderLayer(layer, x: x.pointer, images: images, scratch: scratch)
            collect(layer + 1)
        }
        return out
    }

    /// out `[positions, C]` = [class_embedding; patches · Wᵀ] + position embeddings, then pre-LayerNorm.
    private func embed(pixels: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        let c = config, h = c.hiddenSize, p = c.patchSize, side = c.imageSize, grid = c.patchesPerSide
        let vector = c.patchVectorLength
        let patches = FloatBuffer(count: c.patchCount * vector)
        // im2col: patch (gy, gx) → row gy·grid + gx, columns in the conv weight's (channel, ky, kx) order.
        Parallel.forEachRow(c.patchCount, rowWork: vector) { patch in
            let gy = patch / grid, gx = patch % grid
            var dst = patches.pointer + patch * vector
            for channel in 0..<c.numChannels {
                let plane = pixels + channel * side * side
                for ky in 0..<p {
                    (dst).update(from: plane + (gy * p + ky) * side + gx * p, count: p)
                    dst += p
                }
            }
        }
        Linear.forward(out: out + h, input: patches.pointer, weight: w(CLIPParameterNames.patchEmbedding), bias: nil,
                       rows: c.patchCount, inFeatures: vector, outFeatures: h)
        out.update(from: w(CLIPParameterNames.classEmbedding), count: h)
        Residual.forward(out: out, a: out, b: w(CLIPParameterNames.positionEmbedding), count: c.positionCount * h)
        LayerNorm.forward(out: out, mean: nil, rstd: nil, input: out, weight: w("pre_layrnorm.weight"), bias: w("pre_layrnorm.bias"),
                          rows: c.positionCount, dim: h, eps: c.layerNormEps)
    }

    private final class LayerScratch {
        let norm, q, k, v, attention, projection: FloatBuffer
        let probs, hidden: FloatBuffer
        init(config c: CLIPVisionConfig, images: Int) {
            let n = images * c.positionCount, h = c.hiddenSize
            norm = FloatBuffer(count: n * h); q = FloatBuffer(count: n * h); k = FloatBuffer(count: n * h)
            v = FloatBuffer(count: n * h); attention = FloatBuffer(count: n * h); projection = FloatBuffer(count: n * h)
            probs = FloatBuffer(count: images * c.numAttentionHeads * c.positionCount * c.positionCount)
            hidden = FloatBuffer(count: n * c.intermediateSize)
        }
    }

    /// x `[images·positions, C]` ← x + attn(LN1(x)) (attention within each image); x ← x + fc2(act(fc1(LN2(x)))).
    private func encoderLayer(_ i: Int, x: UnsafeMutablePointer<Float>, images: Int, scratch s: LayerScratch) {
        let c = config, h = c.hiddenSize, n = images * c.positionCount, inter = c.intermediateSize
        LayerNorm.forward(out: s.norm.pointer, mean: nil, rstd: nil, input: x, weight: lw(i, "layer_norm1.weight"), bias: lw(i, "layer_norm1.bias"),
                          rows: n, dim: h, eps: c.layerNormEps)
        for (proj, out) in [("q_proj", s.q), ("k_proj", s.k), ("v_proj", s.v)] {
            Linear.forward(out: out.pointer, input: s.norm.pointer, weight: lw(i, "self_attn.\(proj).weight"), bias: lw(i, "self_attn.\(proj).bias"),
                           rows: n, inFeatures: h, outFeatures: h)
        }
        let shape = Attention.Shape(tokens: n, heads: c.numAttentionHeads, kvHeads: c.numAttentionHeads, headDim: c.headDim, causal: false)
        Attention.forward(out: s.attention.pointer, probs: s.probs.pointer, q: s.q.pointer, k: s.k.pointer, v: s.v.pointer,
                          segments: [Int](repeating: c.positionCount, count: images), shape: shape, scale: 1 / Float(c.headDim).squareRoot())
        Linear.forward(out: s.projection.pointer, input: s.attention.pointer, weight: lw(i, "self_attn.out_proj.weight"), bias: lw(i, "self_attn.out_proj.bias"),
                       rows: n, inFeatures: h, outFeatures: h)
        Residual.forward(out: x, a: x, b: s.projection.pointer, count: n * h)
        LayerNorm.forward(out: s.norm.pointer, mean: nil, rstd: nil, input: x, weight: lw(i, "layer_norm2.weight"), bias: lw(i, "layer_norm2.bias"),
                          rows: n, dim: h, eps: c.layerNormEps)
        Linear.forward(out: s.hidden.pointer, input: s.norm.pointer, weight: lw(i, "mlp.fc1.weight"), bias: lw(i, "mlp.fc1.bias"),
                       rows: n, inFeatures: h, outFeatures: inter)
        if c.hiddenAct == "gelu" {
            GELU.forward(out: s.hidden.pointer, input: s.hidden.pointer, count: n * inter)
        } else {
            QuickGELU.forward(out: s.hidden.pointer, input: s.hidden.pointer, count: n * inter)
        }
        Linear.forward(out: s.projection.pointer, input: s.hidden.pointer, weight: lw(i, "mlp.fc2.weight"), bias: lw(i, "mlp.fc2.bias"),
                       rows: n, inFeatures: inter, outFeatures: h)
        Residual.forward(out: x, a: x, b: s.projection.pointer, count: n * h)
    }
}
