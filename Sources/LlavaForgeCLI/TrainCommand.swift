import ArgumentParser
import ForgeCore
import Foundation
import Training
import TrainingData

/// `llava-forge train`: LLaVA Stage 1 / Stage 2 training on CPU from the store or LLaVA JSON.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a LLaVA (Stage 1: projector; Stage 2: projector + LLM; tower frozen) on stored or LLaVA-JSON samples.",
        discussion: """
        --data is a llava-forge SQLite store (samples with status ok; --types or --mix select them) or a \
        LLaVA JSON / JSONL file (images under --images). --vision is a CLIP folder (HF layout) or \
        random:tiny (a seeded random small ViT, NOT CLIP — for offline runs); --llm an HF folder, a GGUF \
        file (dequantized to Float32) or a whole llava folder (then --vision is not needed).

        Written to --out: checkpoint/ (a transformers LlavaForConditionalGeneration folder + optimizer \
        and trainer state; every --save-every steps and at the end), data_order.json, metrics.csv, \
        loss.svg, feature_cache/ (the frozen tower's features, reused across epochs and runs), \
        run_summary.json. --resume continues the checkpoint in --out with the same data order; a kill \
        loses at most the steps since the last save.

        Template auto: plain for Stage 1, chatml when the tokenizer has <|im_start|>, else vicuna_v1. \
        Exit code 1 on bad input, 64 on bad usage.
        """)

    @Option(name: .long, help: "A .db store or a LLaVA .json/.jsonl file.") var data: String
    @Option(name: .long, help: "Image folder (JSON data; overrides a store's remembered image root).") var images: String?
    @Option(name: .long, help: "Sample types to train on (store), comma-separated.") var types: String?
    @Option(name: .long, help: "A mix with ratios, e.g. conversation=0.4,detail=0.3,reasoning=0.3 (store).") var mix: String?
    @Option(name: .long, help: "A CLIP vision folder or random:tiny.") var vision: String?
    @Option(name: .long, help: "The language model: HF folder, GGUF file, or a whole llava folder.") var llm: String
    @Option(name: .long, help: "Projector initialisation (mm_projector / multi_modal_projector safetensors).") var projector: String?
    @Option(name: .long, help: "Tokenizer folder or GGUF (default: the LLM's).") var tokenizer: String?
    @Option(name: .long, help: "1 = projector only (plain template), 2 = projector + LLM.") var stage: Int = 2
    @Option(name: .long, help: "Output folder.") var out: String
    @Option(name: .long, help: "auto, vicuna_v1, llava_v1, chatml, chatml-smollm or plain.") var template: String = "auto"
    @Option(name: .long, help: "Epochs (default 1 unless --max-steps).") var epochs: Int?
    @Option(name: .long, help: "Optimizer steps (overrides --epochs).") var maxSteps: Int?
    @Option(name: .long, help: "Token budget of one micro-batch (length-grouped).") var batchTokens: Int = 512
    @Option(name: .long, help: "Micro-batches per optimizer step.") var gradAccum: Int = 1
    @Option(name: .long, help: "Learning rate (LLM; and projector unless --projector-lr).") var lr: Double = 2e-5
    @Option(name: .long, help: "Projector learning rate.") var projectorLr: Double?
    @Option(name: .long, help: "Warm-up fraction of the cosine schedule.") var warmupRatio: Double = 0.03
    @Option(name: .long, help: "AdamW weight decay (not on norms and biases).") var weightDecay: Double = 0
    @Option(name: .long, help: "Global gradient-norm clip (0 = off).") var maxGradNorm: Double = 1.0
    @Option(name: .long, help: "LoRA rank on the decoder (Stage 2; 0 = full fine-tuning). The saved checkpoint is merged.") var loraRank: Int = 0
    @Option(name: .long, help: "LoRA alpha (scaling alpha / rank).") var loraAlpha: Double = 16
    @Option(name: .long, help: "LoRA target modules: comma-separated q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all.") var loraTargets: String = "all"
    @Option(name: .long, help: "Truncate sequences to this many tokens (default: the model's positions).") var maxLength: Int?
    @Option(name: .long, help: "Save a checkpoint every N steps (always at the end).") var saveEvery: Int?
    @Option(name: .long, help: "Held-out loss every N steps (and at the end).") var evalEvery: Int?
    @Option(name: .long, help: "Hold out this fraction of the data for eval loss.") var evalFraction: Double = 0
    @Option(name: .long, help: "A separate held-out data file or store.") var evalData: String?
    @Option(name: .long, help: "Seed of the data order and projector init.") var seed: UInt64 = 0
    @Flag(name: .long, help: "Continue the checkpoint in --out (same data order).") var resume = false
    @Flag(name: .long, help: "Replace a previous run in --out.") var overwrite = false
    @Flag(name: .long, help: "Pad images to a square with the CLIP mean colour (LLaVA-1.5's pad).") var padToSquare = false
    @Option(name: .long, help: "Feature cache folder (default <out>/feature_cache).") var featureCache: String?
    @Option(name: .long, help: "After training, answer --question about this image.") var askImage: String?
    @Option(name: .long, help: "The question for --ask-image.") var question: String?
    @Option(name: .long, help: "Most tokens of that answer.") var maxAnswerTokens: Int = 32
    @Option(name: .long, help: ArgumentHelp("Test hook: SIGKILL this process after step N.", visibility: .hidden)) var debugKillAfterStep: Int?

    func run() throws {
        try runReportingErrors {
            var options = TrainingRunOptions(data: data, llm: llm, out: out)
            options.images = images
            if let mix {
                guard types == nil else { throw ForgeError(.usage, "give --types or --mix, not both") }
                options.selection = try SampleSelection.parseMix(mix)
            } else if let types {
                options.selection = .types(types.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
            }
            options.vision = vision
            options.projector = projector
            options.tokenizer = tokenizer
            options.stage = stage
            options.template = template
            options.epochs = epochs
            options.maxSteps = maxSteps
            options.batchTokens = batchTokens
            options.gradAccum = gradAccum
            options.learningRate = lr
            options.projectorLearningRate = projectorLr
            options.warmupRatio = warmupRatio
            options.weightDecay = weightDecay
            options.maxGradNorm = maxGradNorm > 0 ? maxGradNorm : nil
            if loraRank > 0 {
                guard stage == 2 else { throw ForgeError(.usage, "--lora-rank needs --stage 2 (Stage 1 trains the projector only)") }
                let lora = LoRAOptions(rank: loraRank, alpha: loraAlpha, targets: try LoRAOptions.parseTargets(loraTargets), seed: seed)
                try lora.validate()
                options.lora = lora
            } else if loraRank < 0 {
                throw ForgeError(.usage, "--lora-rank must be ≥ 0")
            }
            options.maxLength = maxLength
            options.saveEvery = saveEvery
            options.evalEvery = evalEvery
            options.evalFraction = evalFraction
            options.evalData = evalData
            options.seed = seed
            options.resume = resume
            options.overwrite = overwrite
            options.padToSquare = padToSquare
            options.featureCache = featureCache
            options.askImage = askImage
            options.askQuestion = question
            options.maxAnswerTokens = maxAnswerTokens
            options.killAfterStep = debugKillAfterStep
            let terminal = isatty(STDOUT_FILENO) != 0
            var pending = false
            func line(_ s: String) {
                if pending { print("") ; pending = false }
                print(s)
                fflush(stdout)
            }
            let run = TrainingRun(options: options, log: line, progress: { s in
                if terminal {
                    print("\r\u{1B}[K" + s, terminator: "")
                    pending = true
                } else {
                    print(s)
                }
                fflush(stdout)
            })
            try run.run()
            if pending { print("") }
        }
    }
}
