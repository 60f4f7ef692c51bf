import ArgumentParser
import ForgeCore
import Foundation
import Pipeline

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline file (pipelines/*.yaml): its stages as a DAG, redoing only what changed.",
        discussion: """
        Stages run in dependency order (needs:), independent ones at the same time. Each stage's
        fingerprint (kind, parameters, input stages' fingerprints, the prompt/seed/COCO files it
        reads) is stored with its status and timing; a rerun skips stages whose fingerprint is
        unchanged and redoes everything downstream of a change. The file is validated first —
        unknown kinds or keys, wrong types, missing parameters, needs: naming nothing, cycles are
        reported as file:line:column with the stage, and nothing runs.
        Examples:
          llava-forge run pipelines/demo.yaml
          llava-forge run pipelines/demo.yaml --dry-run
          llava-forge run pipelines/demo.yaml --dot | dot -Tsvg > dag.svg
          llava-forge run pipelines/llava-158k.yaml --set model=gpt-4o-mini --set generate-detail.temperature=0.5
        """)

    @Argument(help: "The pipeline file.") var file: String
    @Flag(name: .customLong("dry-run"), help: "Print the DAG and what would run and why; run nothing.") var dryRun = false
    @Flag(help: "Print the DAG as Graphviz DOT (with what would run); run nothing.") var dot = false
    @Option(help: "Run this stage and everything downstream of it.") var from: String?
    @Option(help: "Run only this stage.") var only: String?
    @Option(name: .customLong("set"), help: "Override a variable (key=value) or a stage parameter (stage.param=value). Repeatable.") var sets: [String] = []

    func run() throws {
        try runReportingErrors {
            let pipeline = try PipelineLoader.load(path: file, overrides: sets)
            let env = PipelineEnvironment(pipeline: pipeline)
            let runner = PipelineRunner(env: env) { line in
                print(line)
                fflush(stdout)
            }
            let options = RunOptions(dryRun: dryRun || dot, from: from, only: only)
            if dot {
                let plans = try runner.plan(options)
                var actions: [String: String] = [:]
                for p in plans { actions[p.stage.name] = p.willRun ? "run: \(p.reason)" : "skip" }
                print(PipelineGraph.dot(pipeline, actions: actions), terminator: "")
                return
            }
            let report = try runner.run(options)
            if !report.succeeded {
                let failed = report.entries.filter { $0.result == "failed" }
                throw ForgeError(.config, "\(failed.count) stage\(failed.count == 1 ? "" : "s") failed: " + failed.map(\.stage).joined(separator: ", ") + " (see the messages above)", file: file)
            }
        }
    }
}
