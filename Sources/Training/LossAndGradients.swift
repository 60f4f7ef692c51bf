import ForgeCore
import Models
import TensorMath

/// One training sequence: token ids (image placeholders already expanded to one per feature row),
/// labels aligned with the ids (HF style, −100 = not trained; the shift happens in the loss), and
/// the frozen tower's selected-layer features `[rows, projector input]` for its image rows.
public struct TrainingSequence: Sendable {
    public var tokens: [Int]
    public var labels: [Int]
    public var features: [Float]?

    public init(tokens: [Int], labels: [Int], features: [Float]? = nil) {
        self.tokens = tokens
        self.labels = labels
        self.features = features
    }
}

/// Forward + fused loss + backward of one sequence through a LLaVA (projector → splice → decoder)
/// or a plain decoder, accumulating into a gradient buffer with the trainable buffer's layout.
/// Activations and workspaces are cached per sequence length (a length-grouped batch reuses them).
public final class LossAndGradients {
    public let language: LlamaModel
    public let llava: LlavaModel?
    /// The trainable parameters (a LLaVA's projector + decoder buffer, or the decoder's; in a LoRA
    /// run the buffer of the projector copy + adapters).
    public let parameters: ParameterBuffer
    /// The projector the forward runs (the LLaVA's own, or in a LoRA run one over `parameters`).
    public let projector: Projector?
    /// LoRA run: the adapters on the decoder (whose own weights are frozen).
    public let adapters: LoRAAdapters?
    private var cache: [[Int]: (LlamaActivations, LlamaBackwardWorkspace)] = [:]
    /// `accumulate(batch:)` runs consecutive sequences together as one pass while their total
    /// length stays within this many tokens (one sgemm per matrix over all their rows: larger,
    /// faster products). Activation memory grows with it. 1 = one sequence per pass; nil (the
    /// default) = as many tokens as keep the kept activations within `packActivationBytes`.
    public var packTokens: Int?
    /// The activation budget of an automatic pack (1.25 GiB: 4 × 512 tokens of a 512 × 8 LM with a
    /// 32k vocabulary; one 512-token sequence of SmolLM2-135M).
    public var packActivationBytes = 1280 << 20

    /// Bytes of kept activations per token at `length` tokens per sequence: per layer about
    /// 5·C + 2·qWidth + 2·kvWidth + 3·I floats plus heads·length probabilities, and a logits row.
    func activationBytesPerToken(sequenceLength length: Int) -> Int {
        let c = language.config
        let perLayer = 5 * c.hiddenSize + 2 * c.qWidth + 2 * c.kvWidth + 3 * c.intermediateSize + c.numAttentionHeads * length
        return 4 * (perLayer * c.numHiddenLayers + c.vocabSize)
    }

    func packLimit(sequenceLength length: Int) -> Int {
        packTokens ?? max(1, packActivationBytes / max(1, activationBytesPerToken(sequenceLength: length)))
    }
    /// Sequence lengths whose activations stay allocated (each set is ~layers × T × (14·C + 3·I)
    /// floats + heads·T² — about 0.9 GB for a SmolLM2-135M at 512 tokens).
    public var activationCacheLimit = 2
    /// False in Stage 1: the decoder is frozen, so only d(embeddings) flows (to the projector).
    public var decoderGradients = true

    public init(model: LlavaModel) {
        language = model.language
        llava = model
        parameters = model.trainable
        projector = model.projector
        adapters = nil
    }

    public init(language: LlamaModel) {
        self.language = language
        llava = nil
        parameters = language.parameters
        projector = nil
        adapters = nil
    }

    /// A LoRA engine: `trainable` holds the projector's tensors (LLaVA only, copied from the model
    /// by `LoRATraining`) and the adapters' tensors; the decoder's own weights stay frozen and get
    /// no gradient buffer. Sets `language.adapter`.
    init(lora: LoRATraining) {
        language = lora.language
        llava = lora.llava
        parameters = lora.trainable
        projector = lora.projector
        adapters = lora.adapters
        decoderGradients = false
        language.adapter = lora.adapters
    }

    /// A zero gradient buffer matching `parameters` offset for offset.
    public func makeGradients() -> ParameterBuffer { ParameterBuffer(layout: parameters.layout) }

    private func buffers(segments: [Int]) -> (LlamaActivations, LlamaBackwardWorkspace) {
        if let found = cache[segments] { return found }
        if cache.count >= activationCacheLimit { cache.removeAll() }
        let made = (LlamaActivations(config: language.config, segments: segments, keepForBackward: true),
                    LlamaBackwardWorkspace(config: language.config, tokens: segments.reduce(0, +)))
        cache[segments] = made
        return made
    }

    /// Consecutive runs of `batch` whose total length fits `packTokens` (a longer sequence alone).
    func packs(_ batch: [TrainingSequence]) -> [[TrainingSequence]] {
        var result: [[TrainingSequence]] = [], current: [TrainingSequence] = [], length = 0
        let limit = packLimit(sequenceLength: batch.map { $0.tokens.count }.max() ?? 1)
        for s in batch {
            if !current.isEmpty && length + s.tokens.count > limit {
                result.append(current)
                current = []
                length = 0
            }
            current.append(s)
            length += s.tokens.count
        }
        if !current.isEmpty { result.append(current) }
        return result
    }

    /// Checks a sequence before anything runs (bad data is an error, never a trap).
    public func validate(_ s: TrainingSequence) throws {
        try language.validate(sequenceLength: s.tokens.count)
        guard s.labels.count == s.tokens.count else {
            throw ForgeError(.badInput, "\(s.labels.count) labels for \(s.tokens.count) tokens")
        }
        let vocab = language.config.vocabSize
        if let bad = s.labels.first(where: { $0 != CausalLMLoss.ignoreIndex && ($0 < 0 || $0 >= vocab) }) {
            throw ForgeError(.badInput, "label \(bad) is outside the vocabulary 0..<\(vocab) (and not -100)")
        }
        if let llava {
            let inputSize = llava.projector.config.inputSize
            let rows = (s.features?.count ?? 0) / max(1, inputSize)
            guard (s.features?.count ?? 0) % inputSize == 0 else {
                throw ForgeError(.badInput, "image features of \(s.features!.count) floats are not whole rows of \(inputSize)")
            }
            let placeholders = s.tokens.reduce(0) { $0 + ($1 == llava.config.imageTokenIndex ? 1 : 0) }
            guard placeholders == rows else {
                throw ForgeError(.badInput, "the sequence has \(placeholders) image tokens but \(rows) feature rows")
            }
        } else {
            guard s.features == nil else { throw ForgeError(.usage, "image features given to a text-only model") }
            try language.validate(tokens: s.tokens)
        }
    }

    /// Runs the sequence and accumulates `lossScale ·` d(Σ token losses) into `gradients`.
    /// For HF's mean loss over a batch pass `lossScale = 1 / (counted targets in the whole batch)`.
    /// Returns the sequence's summed token loss and its counted targets.
    @discardableResult
    public func accumulate(_ s: TrainingSequence, lossScale: Float, into gradients: ParameterBuffer) throws -> CausalLMLoss.Result {
        try run([s], lossScale: lossScale, gradients: gradients)
    }

    /// `accumulate` for every sequence of `batch`, packed (`packTokens`); returns the summed result.
    @discardableResult
    public func accumulate(batch: [TrainingSequence], lossScale: Float, into gradients: ParameterBuffer) throws -> CausalLMLoss.Result {
        var total = CausalLMLoss.Result(lossSum: 0, counted: 0)
        for pack in packs(batch) {
            let r = try run(pack, lossScale: lossScale, gradients: gradients)
            total.lossSum += r.lossSum
            total.counted += r.counted
        }
        return total
    }

    /// One pass over the sequences of `pack`, concatenated row-wise (each its own causal segment).
    private func run(_ pack: [TrainingSequence], lossScale: Float, gradients: ParameterBuffer?) throws -> CausalLMLoss.Result {
        for s in pack { try validate(s) }
        if let gradients, gradients.totalCount != parameters.totalCount {
            throw ForgeError(.usage, "gradient buffer has \(gradients.totalCount) floats, the parameters \(parameters.totalCount)")
        }
        let hidden = language.config.hiddenSize
        let (activations, workspace) = buffers(segments: pack.map { $0.tokens.count })
        let tokens = pack.count == 1 ? pack[0].tokens : pack.flatMap(\.tokens)
        let allFeatures = pack.compactMap(\.features).filter { !$0.isEmpty }
        var projectorActivations: ProjectorActivations?
        var embeddingTokens = tokens
        if let llava, let projector {
            var projected: [Float]?
            if !allFeatures.isEmpty {
                let features = allFeatures.count == 1 ? allFeatures[0] : allFeatures.flatMap { $0 }
                let rows = features.count / projector.config.inputSize
                let made = ProjectorActivations(config: projector.config, rows: rows)
                features.withUnsafeBufferPointer { made.input.copy(from: $0.baseAddress!, count: features.count) }
                projector.forward(activations: made)
                projected = made.output.toArray()
                projectorActivations = made
            }
            // Spliced image rows do not read the embedding table, so they give it no gradient.
            let imageToken = llava.config.imageTokenIndex
            embeddingTokens = tokens.map { $0 == imageToken ? -1 : $0 }
            try llava.embed(tokens: tokens, imageFeatures: projected, into: activations.embeddings.pointer)
        } else {
            try language.embed(tokens: tokens, into: activations.embeddings.pointer)
        }
        // Logits only where a label counts (image rows and masked prompts need none); the shift
        // stays inside each sequence.
        var rows: [Int] = [], targets: [Int] = [], start = 0
        for s in pack {
            for position in CausalLMLoss.predictingPositions(labels: s.labels) {
                rows.append(start + position)
                targets.append(s.labels[position + 1])
            }
            start += s.tokens.count
        }
        OpProfile.measure("decoder.forward") { language.forward(activations: activations, logitRows: rows) }
        let result = CausalLMLoss.forwardBackward(logitsInPlace: activations.logits.pointer, targets: targets,
                                                  vocab: language.config.vocabSize, scale: lossScale)
        // A sequence with no counted target contributes no gradient.
        guard let gradients, !rows.isEmpty else { return result }
        adapters?.gradients = gradients
        OpProfile.measure("decoder.backward") {
            language.backward(activations: activations, dLogits: activations.logits.pointer, gradients: gradients,
                              workspace: workspace, embeddingTokens: embeddingTokens, weightGradients: decoderGradients,
                              logitRows: rows)
        }
        if let llava, let projector, let projectorActivations {
            // The splice: row r of the projector output went to position imagePositions[r].
            let dOutput = FloatBuffer(count: projectorActivations.rows * hidden)
            for (row, position) in llava.imagePositions(tokens: tokens).enumerated() {
                (dOutput.pointer + row * hidden).update(from: workspace.dStream.pointer + position * hidden, count: hidden)
            }
            projector.backward(activations: projectorActivations, dOutput: dOutput.pointer, gradients: gradients)
        }
        return result
    }

    /// The mean loss of a batch, forward only (evaluation, finite-difference checks): HF's mean
    /// over all counted targets.
    public func loss(_ batch: [TrainingSequence]) throws -> Double {
        var total = 0.0, counted = 0
        for pack in packs(batch) {
            let r = try run(pack, lossScale: 0, gradients: nil)
            total += r.lossSum
            counted += r.counted
        }
        return counted == 0 ? 0 : total / Double(counted)
    }
}
