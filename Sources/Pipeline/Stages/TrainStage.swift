import ForgeCore
import Foundation
import GRDB
import TrainingData

/// `kind: train` — LLaVA Stage 1 / 2 training on the pipeline's store (or a LLaVA JSON file), then
/// optionally one answer about one image from the trained model (`ask_image` + `ask_question`).
/// Inputs: the store's ok samples of `types` (or `data`), the models `vision` / `llm` /
/// `projector`; outputs: `out` (checkpoint/, metrics.csv, loss.svg, run_summary.json).
/// With no ok samples it says so and ends `incomplete` (rerun after generation), training nothing;
/// `max_steps: 0` skips training (the data-path tests run the demo that way).
struct TrainStage: StageExecutor {
    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        let p = stage.params
        if let s = p.int("stage"), s != 1 && s != 2 { throw pipelineError("'stage' must be 1 or 2", at: paramMark(stage, "stage"), stage: stage.name) }
        if p.has("ask_image") != p.has("ask_question") {
            throw pipelineError("'ask_image' and 'ask_question' go together", at: stage.mark, stage: stage.name)
        }
        if p.has("types") && p.has("mix") { throw pipelineError("give 'types' or 'mix', not both", at: paramMark(stage, "mix"), stage: stage.name) }
    }

    func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String]) {
        let p = stage.params
        var files: [String] = []
        // Missing files are left to run() to report (a dry run or a skipped stage needs none).
        for key in ["llm", "projector", "ask_image", "data"] {
            if let f = p.string(key), !isDirectory(f), FileManager.default.fileExists(atPath: f) { files.append(f) }
        }
        var extra: [String: String] = [:]
        if p.string("data") == nil, stage.needs.isEmpty, let db = try env.existingDatabase() {
            // Without upstream stages (whose fingerprints cover the samples), the ok samples themselves.
            extra["samples"] = try db.read { db in
                try String.fetchOne(db, sql: "SELECT count(*) || ':' || coalesce(max(id), 0) || ':' || coalesce(sum(id), 0) FROM samples WHERE status = 'ok'") ?? ""
            }
        }
        return (files, extra)
    }

    func outputsMissing(_ stage: StageDefinition, in env: PipelineEnvironment) -> String? {
        guard let out = stage.params.string("out"), stage.params.int("max_steps") != 0 else { return nil }
        let weights = out + "/checkpoint/model.safetensors"
        return FileManager.default.fileExists(atPath: weights) ? nil : "checkpoint \(weights) is missing"
    }

    func isDirectory(_ path: String) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let p = stage.params
        if p.int("max_steps") == 0 { return StageOutcome(.done, "training skipped (max_steps: 0)") }
        let data = p.string("data") ?? env.pipeline.database
        if p.string("data") == nil {
            let db = try env.database()
            let types = p.stringList("types")
            let count = try db.read { db -> Int in
                if let types, !types.isEmpty {
                    return try Int.fetchOne(db, sql: "SELECT count(*) FROM samples WHERE status = 'ok' AND type IN (\(types.map { _ in "?" }.joined(separator: ",")))",
                                            arguments: StatementArguments(types)) ?? 0
                }
                return try Int.fetchOne(db, sql: "SELECT count(*) FROM samples WHERE status = 'ok'") ?? 0
            }
            if count == 0 {
                let message = "no ok samples\(types.map { " of types " + $0.joined(separator: ", ") } ?? "") in \(data) — nothing to train on yet (configure an LLM and run the generate stages first)"
                log(message)
                return StageOutcome(.incomplete, message)
            }
        }
        var options = TrainingRunOptions(data: data, llm: p.string("llm")!, out: p.string("out")!)
        options.images = p.string("images")
        if let mix = p.string("mix") { options.selection = try SampleSelection.parseMix(mix) } else if let types = p.stringList("types") { options.selection = .types(types) }
        options.vision = p.string("vision") ?? "random:tiny"
        options.projector = p.string("projector")
        options.tokenizer = p.string("tokenizer")
        options.stage = p.int("stage") ?? 2
        options.template = p.string("template") ?? "auto"
        options.maxSteps = p.int("max_steps")
        options.epochs = p.int("epochs")
        options.batchTokens = p.int("batch_tokens") ?? 512
        options.gradAccum = p.int("grad_accum") ?? 1
        options.learningRate = p.double("lr") ?? 2e-5
        options.projectorLearningRate = p.double("projector_lr")
        options.warmupRatio = p.double("warmup_ratio") ?? 0.03
        options.maxLength = p.int("max_length")
        options.saveEvery = p.int("save_every")
        options.evalEvery = p.int("eval_every")
        options.evalFraction = p.double("eval_fraction") ?? 0
        options.seed = UInt64(max(0, p.int("seed") ?? 0))
        options.askImage = p.string("ask_image")
        options.askQuestion = p.string("ask_question")
        options.maxAnswerTokens = p.int("max_answer_tokens") ?? 32
        // A rerun means an input changed: train afresh (`llava-forge train --resume` continues by hand).
        options.overwrite = true
        // On the one long-lived training thread, not this stage's own thread (see TrainingThread).
        let run = TrainingRun(options: options, log: log)
        let summary = try TrainingThread.shared.run { try run.run() }
        var line = String(format: "%d steps, loss %.4f → %.4f", summary.steps, summary.firstLoss ?? .nan, summary.lastLoss ?? .nan)
        if let e = summary.evalLoss { line += String(format: ", eval %.4f", e) }
        line += ", checkpoint \(summary.checkpoint)"
        if let answer = summary.answer { line += "; answer: \"\(answer)\"" }
        let details = try? JSONEncoder().encode(summary)
        return StageOutcome(.done, line, detailsJSON: details.map { String(decoding: $0, as: UTF8.self) })
    }
}
