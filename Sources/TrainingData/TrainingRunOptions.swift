import ForgeCore
import Foundation
import Training

/// Everything `llava-forge train` (and the pipeline's `train` stage) takes.
public struct TrainingRunOptions: Sendable {
    /// A SQLite store (samples with status ok) or a LLaVA JSON / JSONL file.
    public var data: String
    /// Image folder (JSON data; for a store it overrides the remembered image root).
    public var images: String?
    public var selection: SampleSelection = .types(nil)
    /// A separate held-out set (JSON or store) instead of `evalFraction` of the data.
    public var evalData: String?
    public var evalFraction: Double = 0
    /// A CLIP folder or `random:tiny`; nil when `llm` is a llava folder.
    public var vision: String?
    /// An HF folder (LLaMA-family or a whole llava) or a GGUF file (dequantized to Float32).
    public var llm: String
    public var projector: String?
    /// Tokenizer folder or GGUF (default: the LLM's).
    public var tokenizer: String?
    public var stage: Int = 2
    public var out: String
    /// auto, vicuna_v1, llava_v1, chatml, chatml-smollm, plain.
    public var template: String = "auto"
    public var epochs: Int?
    public var maxSteps: Int?
    public var batchTokens = 512
    public var gradAccum = 1
    public var learningRate = 2e-5
    public var projectorLearningRate: Double?
    public var warmupRatio = 0.03
    public var weightDecay = 0.0
    public var maxGradNorm: Double? = 1.0
    /// LoRA on the decoder (Stage 2): nil = full fine-tuning. The checkpoint is merged.
    public var lora: LoRAOptions?
    public var maxLength: Int?
    /// Save every N optimizer steps (and always at the end).
    public var saveEvery: Int?
    public var evalEvery: Int?
    public var seed: UInt64 = 0
    public var resume = false
    /// Replace an existing run in `out` (else an existing checkpoint without --resume is an error).
    public var overwrite = false
    public var padToSquare = false
    /// Feature cache folder (default `<out>/feature_cache`).
    public var featureCache: String?
    /// After training: answer this question about this image with the trained model.
    public var askImage: String?
    public var askQuestion: String?
    public var maxAnswerTokens = 32
    /// Test hook: SIGKILL this process right after this optimizer step (a real kill, no cleanup).
    public var killAfterStep: Int?

    public init(data: String, llm: String, out: String) {
        self.data = data
        self.llm = llm
        self.out = out
    }

    public func validate() throws {
        guard stage == 1 || stage == 2 else { throw ForgeError(.usage, "--stage must be 1 or 2, got \(stage)") }
        if let epochs, epochs < 1 { throw ForgeError(.usage, "--epochs must be ≥ 1") }
        if let maxSteps, maxSteps < 1 { throw ForgeError(.usage, "--max-steps must be ≥ 1") }
        guard batchTokens >= 1 else { throw ForgeError(.usage, "--batch-tokens must be ≥ 1") }
        guard gradAccum >= 1 else { throw ForgeError(.usage, "--grad-accum must be ≥ 1") }
        guard learningRate > 0, learningRate.isFinite else { throw ForgeError(.usage, "--lr must be positive") }
        if let p = projectorLearningRate, !(p > 0 && p.isFinite) { throw ForgeError(.usage, "--projector-lr must be positive") }
        guard (0...1).contains(warmupRatio) else { throw ForgeError(.usage, "--warmup-ratio must be in 0…1") }
        guard weightDecay >= 0 else { throw ForgeError(.usage, "--weight-decay must be ≥ 0") }
        guard (0..<1).contains(evalFraction) else { throw ForgeError(.usage, "--eval-fraction must be in [0, 1)") }
        if evalData != nil, evalFraction > 0 { throw ForgeError(.usage, "give --eval-data or --eval-fraction, not both") }
        if let maxLength, maxLength < 2 { throw ForgeError(.usage, "--max-length must be ≥ 2") }
        if let saveEvery, saveEvery < 1 { throw ForgeError(.usage, "--save-every must be ≥ 1") }
        if let evalEvery, evalEvery < 1 { throw ForgeError(.usage, "--eval-every must be ≥ 1") }
        if (askImage == nil) != (askQuestion == nil) { throw ForgeError(.usage, "give both the image and the question to ask") }
    }
}

/// What a run did (also written as `<out>/run_summary.json`).
public struct TrainingRunSummary: Codable, Sendable {
    public var steps: Int
    public var resumedFromStep: Int
    public var firstLoss: Double?
    public var lastLoss: Double?
    public var evalLoss: Double?
    public var trainSequences: Int
    public var evalSequences: Int
    public var truncated: Int
    public var dropped: Int
    public var textOnly: Int
    public var towerCalls: Int
    public var featureCacheHits: Int
    public var template: String
    public var checkpoint: String
    public var answer: String?
}
