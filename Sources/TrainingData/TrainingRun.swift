import ForgeCore
import Foundation
import Imaging
import Models
import TensorMath
import Tokenizers
import Training

/// The run driver: data → encoded, length-grouped sequences → cached tower features → `Trainer`
/// steps, with progress, metrics.csv + loss.svg, held-out eval, checkpoints (transformers folder +
/// optimizer + data-order state) every `saveEvery` steps and at the end, and `--resume`.
///
/// `<out>/`: `checkpoint/` (the latest checkpoint), `data_order.json`, `metrics.csv`, `loss.svg`,
/// `feature_cache/`, `run_summary.json` (and `random_tiny_vision/` for `--vision random:tiny`).
public final class TrainingRun {
    public let options: TrainingRunOptions
    /// Plain log lines (errors are thrown, not logged).
    let log: (String) -> Void
    /// One line per step; `isTerminal` lets the caller overwrite it in place.
    let progress: (String) -> Void

    public init(options: TrainingRunOptions, log: @escaping (String) -> Void, progress: ((String) -> Void)? = nil) {
        self.options = options
        self.log = log
        self.progress = progress ?? log
    }

    var checkpointFolder: String { path("checkpoint") }
    var dataOrderPath: String { path("data_order.json") }
    func path(_ name: String) -> String { (options.out as NSString).appendingPathComponent(name) }

    @discardableResult
    public func run() throws -> TrainingRunSummary {
        try options.validate()
        let files = FileManager.default
        let hasCheckpoint = files.fileExists(atPath: checkpointFolder + "/" + Trainer.stateFile)
        if hasCheckpoint && !options.resume {
            guard options.overwrite else {
                throw ForgeError(.usage, "the output folder already holds a checkpoint; pass --resume to continue it or choose another --out", file: options.out)
            }
            for name in ["checkpoint", "data_order.json", "metrics.csv", "loss.svg", "run_summary.json"] { try? files.removeItem(atPath: path(name)) }
        }
        let resuming = options.resume && hasCheckpoint
        if options.resume && !hasCheckpoint { log("no checkpoint in \(options.out) yet: starting from scratch") }
        do { try files.createDirectory(atPath: options.out, withIntermediateDirectories: true) } catch {
            throw ForgeError(.io, "cannot create the output folder: \(error.localizedDescription)", file: options.out)
        }

        // Model, tokenizer, template.
        let tokenizer = try loadTokenizer()
        let loaded = try loadModel(resuming: resuming, tokenizer: tokenizer)
        let model = loaded.model
        let template = try resolveTemplate(tokenizer: tokenizer)
        let preprocessor = try loadPreprocessor(model: model, folders: loaded.preprocessorFolders)
        let positions = model.language.rotary.positions
        let maxLength = min(options.maxLength ?? positions, positions)
        log("model: \(model.language.config.numHiddenLayers)-layer LM (hidden \(model.language.config.hiddenSize)), tower \(model.config.visionConfig.hiddenSize)×\(model.config.visionConfig.numHiddenLayers) (\(model.rowsPerImage) rows/image), image token \(model.config.imageTokenIndex); template \(template.name.rawValue); stage \(options.stage)")

        // Data.
        var trainExamples = try loadExamples(options.data)
        var evalExamples: [TrainingExample] = []
        if let evalData = options.evalData {
            evalExamples = try loadExamples(evalData)
        } else if options.evalFraction > 0, trainExamples.count >= 2 {
            var order = Array(trainExamples.indices)
            var random = SeededRandom(seed: options.seed, key: "eval-split")
            order.shuffle(using: &random)
            let count = min(trainExamples.count - 1, max(1, Int((options.evalFraction * Double(trainExamples.count)).rounded())))
            let held = Set(order.prefix(count))
            evalExamples = trainExamples.indices.filter { held.contains($0) }.map { trainExamples[$0] }
            trainExamples = trainExamples.indices.filter { !held.contains($0) }.map { trainExamples[$0] }
        }
        let encoder = ConversationEncoder(tokenizer: tokenizer, template: template, imageTokenIndex: model.config.imageTokenIndex,
                                          rowsPerImage: model.rowsPerImage, maxLength: maxLength)
        let (train, report) = try encoder.encodeAll(trainExamples)
        let (evaluation, _) = try encoder.encodeAll(evalExamples)
        guard !train.isEmpty else {
            throw ForgeError(.badInput, "no trainable samples in the data (\(trainExamples.count) record(s); \(report.droppedImageCut) cut inside the image, \(report.droppedNoTarget) without a trained token)", file: options.data)
        }
        log("data: \(train.count) training sequences (\(report.textOnly) text-only, \(report.truncated) truncated to \(maxLength) tokens, \(report.droppedImageCut + report.droppedNoTarget) dropped"
            + (report.skippedWithoutImage > 0 ? ", \(report.skippedWithoutImage) without an image skipped by plain" : "") + "), \(evaluation.count) held out")

        // Frozen tower → cached features, once per image.
        let identity = try FeatureCache.towerIdentity(model: model, preprocessor: preprocessor, padToSquare: options.padToSquare)
        let cache = try FeatureCache(directory: options.featureCache ?? path("feature_cache"), towerIdentity: identity,
                                     rows: model.rowsPerImage, width: model.projector.config.inputSize)
        let clip = CLIPPreprocessor(config: preprocessor)
        var features: [String: [Float]] = [:]
        for image in Set((train + evaluation).compactMap(\.imagePath)).sorted() {
            features[image] = try cache.features(imagePath: image) { bytes in
                let decoded = try ImageDecoder.decode(data: bytes, name: image)
                return try model.visionFeatures(pixelValues: clip.pixelValues(decoded, padToSquare: options.padToSquare), images: 1)
            }
        }
        log("features: \(features.count) image(s), \(cache.towerCalls) tower pass(es), \(cache.diskHits) from the cache\(cache.rejectedFiles > 0 ? ", \(cache.rejectedFiles) damaged cache file(s) recomputed" : "")")
        func sequence(_ e: EncodedExample) -> TrainingSequence {
            TrainingSequence(tokens: e.tokens, labels: e.labels, features: e.imagePath.flatMap { features[$0] })
        }

        // Order and schedule.
        let batcher = LengthGroupedBatcher(lengths: train.map(\.tokens.count), hasImage: train.map { $0.imagePath != nil },
                                           batchTokens: options.batchTokens, seed: options.seed)
        var cursor = DataCursor(batcher: batcher, gradientAccumulation: options.gradAccum)
        let totalSteps = options.maxSteps ?? (options.epochs ?? 1) * cursor.stepsPerEpoch
        let fingerprint = Self.fingerprint(train)
        var trainerOptions = TrainerOptions(totalSteps: totalSteps)
        trainerOptions.stage = options.stage == 1 ? .projectorOnly : .projectorAndLanguage
        trainerOptions.learningRate = options.learningRate
        trainerOptions.projectorLearningRate = options.projectorLearningRate
        trainerOptions.warmupRatio = options.warmupRatio
        trainerOptions.weightDecay = options.weightDecay
        trainerOptions.maxGradNorm = options.maxGradNorm
        trainerOptions.lora = options.lora
        let trainer = try Trainer(model: model, options: trainerOptions)

        var rows: [MetricsRow] = []
        var resumedFrom = 0
        if resuming {
            try trainer.resume(from: checkpointFolder)
            let state = try DataOrderLog.state(at: trainer.step, path: dataOrderPath)
            guard state.dataFingerprint == fingerprint, state.seed == options.seed else {
                throw ForgeError(.usage, "the checkpoint was trained on other data or another --seed; resume with the same ones", file: dataOrderPath)
            }
            cursor = DataCursor(batcher: batcher, gradientAccumulation: options.gradAccum, epoch: state.epoch, position: state.position)
            if let text = try? String(contentsOfFile: path("metrics.csv"), encoding: .utf8) {
                rows = try TrainingMetrics.parse(csv: text, file: path("metrics.csv")).filter { $0.step <= trainer.step }
            }
            resumedFrom = trainer.step
            log("resumed at step \(trainer.step) of \(totalSteps) (epoch \(state.epoch + 1), micro-batch \(state.position))")
        }
        log("training: \(totalSteps) optimizer step(s), \(cursor.stepsPerEpoch) per epoch, ≤ \(options.batchTokens) tokens per micro-batch × \(options.gradAccum)")

        let evalSequences = evaluation.map(sequence)
        func evaluate() throws -> Double? { evalSequences.isEmpty ? nil : try trainer.engine.loss(evalSequences) }
        let sourceFolder = resuming ? checkpointFolder : loaded.llavaFolder
        func save() throws {
            try DataOrderLog.append(DataOrderState(step: trainer.step, epoch: cursor.epoch, position: cursor.position, seed: options.seed,
                                                   dataFingerprint: fingerprint), path: dataOrderPath)
            try trainer.saveCheckpoint(to: checkpointFolder, sourceFolder: sourceFolder)
            try completeCheckpoint(tokenizerSource: loaded.tokenizerFolder, preprocessor: preprocessor)
            log("checkpoint: step \(trainer.step) saved to \(checkpointFolder)")
        }

        let started = Date()
        var stepsThisRun = 0
        while trainer.step < totalSteps {
            let (epoch, micro) = cursor.nextStep()
            let step = try trainer.train(microBatches: micro.map { $0.map { sequence(train[$0]) } })
            stepsThisRun += 1
            let rate = step.seconds > 0 ? Double(step.tokens) / step.seconds : 0
            let isLast = step.step == totalSteps
            var evalLoss: Double?
            if let every = options.evalEvery, step.step % every == 0 || isLast { evalLoss = try evaluate() } else if isLast { evalLoss = try evaluate() }
            rows.append(MetricsRow(step: step.step, epoch: epoch + 1, loss: step.loss, learningRate: step.learningRate,
                                   gradNorm: step.gradientNorm, tokens: step.tokens, tokensPerSecond: rate, evalLoss: evalLoss))
            try TrainingMetrics.write(rows, csvPath: path("metrics.csv"), svgPath: path("loss.svg"))
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(stepsThisRun) * Double(totalSteps - step.step)
            progress("step \(step.step)/\(totalSteps)  epoch \(epoch + 1)  " + String(format: "loss %.4f  lr %.3e  grad %.3f  %.0f tok/s  ETA ", step.loss,
                     step.learningRate, step.gradientNorm, rate) + Self.duration(eta) + (evalLoss.map { String(format: "  eval %.4f", $0) } ?? ""))
            if let every = options.saveEvery, step.step % every == 0, !isLast { try save() }
            if let killStep = options.killAfterStep, step.step == killStep {
                log("killing this process after step \(killStep) (--debug-kill-after-step)")
                kill(getpid(), SIGKILL)
            }
        }
        if stepsThisRun > 0 || !resuming { try save() }

        var answer: String?
        if let image = options.askImage, let question = options.askQuestion {
            answer = try TrainedModelAnswer.answer(model: trainer.lora != nil ? try trainer.lora!.mergedModel() : model, tokenizer: tokenizer, template: template, preprocessor: preprocessor,
                                                   padToSquare: options.padToSquare, imagePath: image, question: question, maxTokens: options.maxAnswerTokens)
            log("question: \(question)  [image \(image)]")
            log("answer (trained model): \(answer!)")
        }
        let summary = TrainingRunSummary(steps: trainer.step, resumedFromStep: resumedFrom, firstLoss: rows.first?.loss, lastLoss: rows.last?.loss,
                                         evalLoss: rows.last(where: { $0.evalLoss != nil })?.evalLoss, trainSequences: train.count,
                                         evalSequences: evaluation.count, truncated: report.truncated,
                                         dropped: report.droppedImageCut + report.droppedNoTarget, textOnly: report.textOnly,
                                         towerCalls: cache.towerCalls, featureCacheHits: cache.diskHits, template: template.name.rawValue,
                                         checkpoint: checkpointFolder, answer: answer)
        let summaryEncoder = JSONEncoder()
        summaryEncoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try? summaryEncoder.encode(summary).write(to: URL(fileURLWithPath: path("run_summary.json")), options: .atomic)
        log("metrics: \(path("metrics.csv")), chart: \(path("loss.svg"))")
        return summary
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }

    /// SHA-256 over every sequence's tokens and labels (a resume must see the same data).
    static func fingerprint(_ sequences: [EncodedExample]) -> String {
        var hash = SHA256()
        for s in sequences {
            hash.update(s.tokens.map(String.init).joined(separator: ",") + "|" + s.labels.map(String.init).joined(separator: ",") + "|" + (s.imagePath ?? "") + "\n")
        }
        return FeatureCache.hexString(hash.finalize())
    }
}
