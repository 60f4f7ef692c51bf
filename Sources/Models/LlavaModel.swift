import ForgeCore
import TensorMath

/// CLIP tower → projector → LLaMA decoder, as transformers' `LlavaForConditionalGeneration`.
///
/// Parameters: the frozen tower in its own buffer (`vision.parameters`); projector and language
/// model together in `trainable` (`multi_modal_projector.*` then `language_model.*`), so Stage 2's
/// AdamW is one loop over `trainable.storage` (and Stage 1 the loop over the projector's slots,
/// which come first and are contiguous).
public final class LlavaModel {
    public static let projectorPrefix = "multi_modal_projector."
    public static let languagePrefix = "language_model."

    public let config: LlavaConfig
    public let vision: CLIPVisionTower
    public let projector: Projector
    public let language: LlamaModel
    public let trainable: ParameterBuffer

    public init(config: LlavaConfig, vision: CLIPVisionTower, trainable: ParameterBuffer, projectorConfig: ProjectorConfig? = nil) throws {
        self.config = config
        self.vision = vision
        self.trainable = trainable
        let projectorConfig = projectorConfig ?? config.projector
        guard projectorConfig.inputSize == config.visionConfig.hiddenSize * config.visionFeatureLayers.count,
              projectorConfig.outputSize == config.textConfig.hiddenSize else {
            throw ForgeError(.badInput, "projector maps \(projectorConfig.inputSize) → \(projectorConfig.outputSize) features, the tower gives \(config.visionConfig.hiddenSize * config.visionFeatureLayers.count) and the language model takes \(config.textConfig.hiddenSize)")
        }
        projector = try Projector(config: projectorConfig, parameters: trainable, prefix: LlavaModel.projectorPrefix)
        language = try LlamaModel(config: config.textConfig, parameters: trainable, prefix: LlavaModel.languagePrefix)
        for layer in config.visionFeatureLayers { _ = try vision.hiddenStateIndex(layer) }
    }

    /// The trainable buffer's layout: projector slots, then the language model's.
    public static func trainableLayout(text: LlamaConfig, projector: ProjectorConfig) -> ParameterLayout {
        var layout = ParameterLayout()
        ProjectorParameterNames.declare(projector, prefix: projectorPrefix, into: &layout)
        LlamaParameterNames.declare(text, prefix: languagePrefix, into: &layout)
        return layout
    }

    /// Feature rows one image contributes.
    public var rowsPerImage: Int {
        config.visionConfig.patchCount + (config.visionFeatureSelectStrategy == .full ? 1 : 0)
    }

    /// Selected tower features of `images` images, pixels `[images, channels, H, W]` →
    /// `[images·rows, vision hidden·layers]` (the projector's input; what a trainer caches).
    public func visionFeatures(pixelValues: [Float], images: Int) throws -> [Float] {
        let v = config.visionConfig
        let perImage = v.numChannels * v.imageSize * v.imageSize
        guard images > 0, pixelValues.count == images * perImage else {
            throw ForgeError(.badInput, "pixel_values has \(pixelValues.count) floats, \(images) image(s) of [\(v.numChannels), \(v.imageSize), \(v.imageSize)] need \(images * perImage)")
        }
        var all: [Float] = []
        all.reserveCapacity(images * rowsPerImage * projector.config.inputSize)
        try pixelValues.withUnsafeBufferPointer { pixels in
            for image in 0..<images {
                all += try vision.features(pixels: pixels.baseAddress! + image * perImage, layers: config.visionFeatureLayers,
                                           strategy: config.visionFeatureSelectStrategy)
            }
        }
        return all
    }

    /// Projected image features `[images·rows, text hidden]`.
    public func imageFeatures(pixelValues: [Float], images: Int) throws -> [Float] {
        projector.project(try visionFeatures(pixelValues: pixelValues, images: images))
    }

    /// Input embeddings `[T, C]` into `out`: text tokens embedded, and each `image_token_index`
    /// position replaced, in order, by the next row of `imageFeatures` (`[rows, C]`). As in
    /// transformers, the prompt must already hold one placeholder per feature row (the processor
    /// expands `<image>` to image_seq_length tokens); a count mismatch is an error.
    public func embed(tokens: [Int], imageFeatures: [Float]?, into out: UnsafeMutablePointer<Float>) throws {
        let c = language.config.hiddenSize, imageToken = config.imageTokenIndex
        let featureRows = (imageFeatures?.count ?? 0) / c
        let placeholders = tokens.reduce(0) { $0 + ($1 == imageToken ? 1 : 0) }
        guard placeholders == featureRows else {
            throw ForgeError(.badInput, "the prompt has \(placeholders) image tokens (id \(imageToken)) but the image(s) give \(featureRows) feature rows")
        }
        if let bad = tokens.first(where: { $0 != imageToken && ($0 < 0 || $0 >= language.config.vocabSize) }) {
            throw ForgeError(.badInput, "token id \(bad) is outside the vocabulary 0..<\(language.config.vocabSize)")
        }
        let table = language.embeddingTable
        var nextRow = 0
        imageFeatures?.withUnsafeBufferPointer { features in
            for (position, id) in tokens.enumerated() where id == imageToken {
                (out + position * c).update(from: features.baseAddress! + nextRow * c, count: c)
                nextRow += 1
            }
        }
        for (position, id) in tokens.enumerated() where id != imageToken {
            (out + position * c).update(from: table + id * c, count: c)
        }
    }

    /// Positions of the image placeholders, in splice order (row r of the features goes to
    /// position `imagePositions[r]`; a backward pass gathers the embedding gradient from these rows
    /// into the projector's output gradient).
    public func imagePositions(tokens: [Int]) -> [Int] {
        tokens.indices.filter { tokens[$0] == config.imageTokenIndex }
    }

    /// The training-shaped forward: `projectorActivations.input` holds (cached) vision features,
    /// the projector runs, its output is spliced into `activations.embeddings`, and the decoder
    /// runs keeping what `activations` keeps. Logits land in `activations.logits`.
    public func forward(tokens: [Int], projectorActivations: ProjectorActivations?, activations: LlamaActivations) throws {
        guard tokens.count == activations.tokens else {
            throw ForgeError(.usage, "\(tokens.count) tokens for activations sized \(activations.tokens)")
        }
        var features: [Float]?
        if let projectorActivations {
            projector.forward(activations: projectorActivations)
            features = projectorActivations.output.toArray()
        }
        try embed(tokens: tokens, imageFeatures: features, into: activations.embeddings.pointer)
        language.forward(activations: activations)
    }

    /// Logits `[T, V]` for a prompt, with optional images `[images, 3, H, W]`.
    public func logits(tokens: [Int], pixelValues: [Float]? = nil, images: Int = 1) throws -> [Float] {
        try language.validate(sequenceLength: tokens.count)
        let features = try pixelValues.map { try imageFeatures(pixelValues: $0, images: images) }
        let activations = LlamaActivations(config: language.config, tokens: tokens.count, keepForBackward: false)
        try embed(tokens: tokens, imageFeatures: features, into: activations.embeddings.pointer)
        language.forward(activations: activations)
        return activations.logits.toArray()
    }

    /// Prefills `cache` with the prompt (images spliced in); returns the last position's logits.
    public func prefill(tokens: [Int], pixelValues: [Float]? = nil, images: Int = 1, cache: KVCache) throws -> [Float] {
        try language.validate(sequenceLength: tokens.count)
        let features = try pixelValues.map { try imageFeatures(pixelValues: $0, images: images) }
        let embeddings = FloatBuffer(count: tokens.count * language.config.hiddenSize)
        try embed(tokens: tokens, imageFeatures: features, into: embeddings.pointer)
        return try language.decode(embeddings: embeddings.pointer, count: tokens.count, cache: cache)
    }
}
