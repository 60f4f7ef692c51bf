import Foundation
import ForgeCore
import Models
import TensorMath

/// Hyper-parameters of a run (defaults: LLaVA's Stage 2 recipe, scaled for small models).
public struct TrainerOptions: Codable, Sendable, Equatable {
    public enum Stage: Int, Codable, Sendable {
        /// Stage 1: the projector alone (the decoder is frozen).
        case projectorOnly = 1
        /// Stage 2: projector and decoder.
        case projectorAndLanguage = 2
    }

    public var stage: Stage = .projectorAndLanguage
    public var learningRate: Double = 2e-5
    /// The projector's rate (LLaVA's `mm_projector_lr`); nil = `learningRate`.
    public var projectorLearningRate: Double?
    public var weightDecay: Double = 0
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    public var warmupRatio: Double = 0.03
    /// Optimizer steps of the whole run (the cosine schedule's length).
    public var totalSteps: Int
    /// Global-norm clipping threshold; nil disables clipping.
    public var maxGradNorm: Double? = 1.0
    /// LoRA on the decoder (Stage 2 only): the decoder's weights are frozen, adapters on
    /// `lora.targets` train at `learningRate`, the projector trains fully at its own rate; the
    /// saved checkpoint has the adapters merged (a plain LlavaForConditionalGeneration). nil = full
    /// fine-tuning.
    public var lora: LoRAOptions?

    public init(totalSteps: Int) { self.totalSteps = totalSteps }
}

/// What one optimizer step did.
public struct StepReport: Sendable {
    public var step: Int
    /// HF's mean loss over the step's counted targets (all micro-batches together).
    public var loss: Double
    /// Gradient norm before clipping.
    public var gradientNorm: Double
    /// The decoder group's (or, in Stage 1, the projector's) learning rate used.
    public var learningRate: Double
    public var tokens: Int
    public var countedTargets: Int
    public var seconds: Double
}

/// The step loop: forward + backward of every sequence of a step (micro-batches accumulate into
/// one gradient buffer, the loss normalised by the step's total counted targets as transformers'
/// Trainer does with `num_items_in_batch`), clipping, AdamW, the cosine schedule; checkpoints of
/// the weights (transformers folder) and of the optimizer state, for an exact resume.
public final class Trainer {
    public let model: LlavaModel?
    public let engine: LossAndGradients
    public let options: TrainerOptions
    public let optimizer: AdamW
    public let schedule: CosineSchedule
    public let gradients: ParameterBuffer
    /// Slots the optimizer updates (measured by clipping).
    public let trainableSlots: [ParameterSlot]
    public var step: Int { optimizer.step }
    /// The last step's update left every gradient at 0 (no zeroing pass before the next step).
    private var gradientsAreZero = true

    /// The LoRA run's buffers when `options.lora` is set.
    public let lora: LoRATraining?

    public convenience init(model: LlavaModel, options: TrainerOptions) throws {
        if let settings = options.lora {
            guard options.stage == .projectorAndLanguage else { throw ForgeError(.usage, "LoRA adapts the language model: it needs Stage 2") }
            let lora = try LoRATraining(model: model, options: settings)
            try self.init(engine: LossAndGradients(lora: lora), model: model, lora: lora, options: options)
        } else {
            try self.init(engine: LossAndGradients(model: model), model: model, lora: nil, options: options)
        }
    }

    public convenience init(language: LlamaModel, options: TrainerOptions) throws {
        if let settings = options.lora {
            let lora = try LoRATraining(language: language, options: settings)
            try self.init(engine: LossAndGradients(lora: lora), model: nil, lora: lora, options: options)
        } else {
            try self.init(engine: LossAndGradients(language: language), model: nil, lora: nil, options: options)
        }
    }

    private init(engine: LossAndGradients, model: LlavaModel?, lora: LoRATraining?, options: TrainerOptions) throws {
        guard options.totalSteps > 0 else { throw ForgeError(.usage, "total_steps must be positive") }
        self.lora = lora
        _ = BLASRuntime.ensureBestCore()  // before the first sgemm (see BLASRuntime)
        // Idle OpenBLAS workers would otherwise poll ~0.13 s after every product, against our own
        // workers' attention / element-wise sections (see BLASRuntime.setIdlePoll).
        BLASRuntime.useTrainingIdlePoll()
        self.engine = engine
        self.model = model
        self.options = options
        let layout = engine.parameters.layout
        var prefixes: [(prefix: String, learningRate: Double)] = []
        if model != nil {
            prefixes.append((LlavaModel.projectorPrefix, options.projectorLearningRate ?? options.learningRate))
            if options.stage == .projectorAndLanguage { prefixes.append((LlavaModel.languagePrefix, options.learningRate)) }
        } else {
            guard options.stage == .projectorAndLanguage else { throw ForgeError(.usage, "Stage 1 needs a LLaVA (it trains the projector)") }
            prefixes.append(("", options.learningRate))
        }
        let groups = ParameterGroup.byPrefix(layout, prefixes, weightDecay: options.weightDecay)
        optimizer = AdamW(parameters: engine.parameters, groups: groups, beta1: options.beta1, beta2: options.beta2, epsilon: options.epsilon)
        schedule = CosineSchedule(warmupRatio: options.warmupRatio, totalSteps: options.totalSteps)
        gradients = engine.makeGradients()
        engine.decoderGradients = options.stage == .projectorAndLanguage && lora == nil
        trainableSlots = groups.flatMap(\.slots).sorted { $0.offset < $1.offset }
    }

    /// One optimizer step over `microBatches` (each a list of sequences; gradient accumulation is
    /// the number of micro-batches). Returns the step's loss before the update.
    @discardableResult
    public func train(microBatches: [[TrainingSequence]]) throws -> StepReport {
        let sequences = microBatches.flatMap { $0 }
        for s in sequences { try engine.validate(s) }
        let counted = sequences.reduce(0) { $0 + CausalLMLoss.countedTargets(labels: $1.labels) }
        guard counted > 0 else { throw ForgeError(.badInput, "the step's batch has no trained (non −100) target") }
        let start = DispatchTime.now().uptimeNanoseconds
        if !gradientsAreZero { zero(gradients.storage, gradients.totalCount) }
        gradientsAreZero = false
        let scale = Float(1 / Double(counted))
        var total = 0.0
        for batch in microBatches { total += try engine.accumulate(batch: batch, lossScale: scale, into: gradients).lossSum }
        let norm = OpProfile.measure("clip") { GradientClipping.globalNorm(gradients, slots: trainableSlots) }
        // torch's clip_grad_norm_ coefficient, applied as AdamW reads each gradient (one pass fewer).
        let coefficient = options.maxGradNorm.map { GradientClipping.coefficient(norm: norm, maxNorm: $0) } ?? 1
        let factor = schedule.factor(step: optimizer.step)
        let taken = optimizer.step
        OpProfile.measure("adamw") {
            optimizer.update(gradients: gradients, learningRateFactor: factor, gradientScale: coefficient, zeroingGradients: true)
        }
        // Only the optimizer's slots can hold a gradient (frozen parts get none written), and AdamW zeroed those.
        gradientsAreZero = true
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = (optimizer.groups.last?.learningRate ?? 0) * factor
        return StepReport(step: taken + 1, loss: total / Double(counted), gradientNorm: norm, learningRate: rate,
                          tokens: sequences.reduce(0) { $0 + $1.tokens.count }, countedTargets: counted, seconds: seconds)
    }

    // MARK: - Checkpoints

    public static let optimizerFile = "optimizer.safetensors"
    /// LoRA runs: the trainable buffer (projector + unmerged adapters), what `resume` restores.
    public static let loraFile = "lora_trainable.safetensors"
    public static let stateFile = "trainer_state.json"

    struct State: Codable {
        var step: Int
        var options: TrainerOptions
    }

    /// Files a transformers / llava-forge folder carries besides weights and config, copied from
    /// the source model folder when present so the checkpoint loads and chats on its own.
    public static let companionFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                                        "chat_template.json", "preprocessor_config.json", "processor_config.json", "generation_config.json",
                                        "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json"]

    /// Writes the model as a transformers folder (LLaVA only) plus `optimizer.safetensors` (AdamW
    /// moments, step) and `trainer_state.json` (step, options). `sourceFolder`: the folder the model
    /// was loaded from — its config.json is kept verbatim (else one is encoded from the config) and
    /// its tokenizer/processor files are copied. The folder is assembled under a temporary name and
    /// renamed into place, so a crash mid-save leaves the previous checkpoint whole.
    public func saveCheckpoint(to folder: String, sourceFolder: String? = nil) throws {
        guard let model else { throw ForgeError(.usage, "checkpoints are written for LLaVA models") }
        let files = FileManager.default
        let staging = folder + ".partial"
        try? files.removeItem(atPath: staging)
        try files.createDirectory(atPath: staging, withIntermediateDirectories: true)
        let configJSON = sourceFolder.flatMap { files.contents(atPath: $0 + "/config.json") }
        if let lora {
            try LlavaCheckpointWriter.write(try lora.mergedModel(), configJSON: configJSON, to: staging)
            try SafeTensorsStore.write([("trainable", lora.trainable.storage)], metadata: ["floats": String(lora.trainable.totalCount)],
                                       to: staging + "/" + Trainer.loraFile)
        } else {
            try LlavaCheckpointWriter.write(model, configJSON: configJSON, to: staging)
        }
        for name in Trainer.companionFiles {
            guard let sourceFolder, files.fileExists(atPath: sourceFolder + "/" + name) else { continue }
            try files.copyItem(atPath: sourceFolder + "/" + name, toPath: staging + "/" + name)
        }
        try optimizer.save(to: staging + "/" + Trainer.optimizerFile)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(State(step: optimizer.step, options: options))
            .write(to: URL(fileURLWithPath: staging + "/" + Trainer.stateFile), options: .atomic)
        if files.fileExists(atPath: folder) {
            let old = folder + ".old"
            try? files.removeItem(atPath: old)
            try files.moveItem(atPath: folder, toPath: old)
            try files.moveItem(atPath: staging, toPath: folder)
            try files.removeItem(atPath: old)
        } else {
            try files.moveItem(atPath: staging, toPath: folder)
        }
    }

    /// Restores the optimizer state of a checkpoint into this trainer, whose model must have been
    /// loaded from that checkpoint's weights — or, in a LoRA run, from the same base model as the
    /// saved run (the checkpoint's weights are merged; the unmerged projector + adapters come from
    /// `lora_trainable.safetensors`). The options must match the saved run's.
    public func resume(from folder: String) throws {
        let path = folder + "/" + Trainer.stateFile
        let state: State
        do { state = try JSONDecoder().decode(State.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw ForgeError(.badInput, "cannot read trainer state: \(error)", file: path)
        }
        guard state.options == options else {
            throw ForgeError(.usage, "the checkpoint was trained with other options (\(state.options)); resume with the same ones", file: path)
        }
        if let lora {
            try SafeTensorsStore.read("trainable", from: SafeTensorsStore.open(folder + "/" + Trainer.loraFile), into: lora.trainable.storage)
        }
        try optimizer.load(from: folder + "/" + Trainer.optimizerFile)
        guard optimizer.step == state.step else {
            throw ForgeError(.badInput, "optimizer step \(optimizer.step) ≠ trainer step \(state.step)", file: path)
        }
    }
}
