import ForgeCore
import Foundation

public struct RunOptions: Sendable {
    public var dryRun = false
    /// Run this stage and everything downstream of it, whatever their fingerprints.
    public var from: String?
    /// Run only this stage, whatever its fingerprint.
    public var only: String?
    public init(dryRun: Bool = false, from: String? = nil, only: String? = nil) { self.dryRun = dryRun; self.from = from; self.only = only }
}

/// One stage's decision: run (and why) or skip (and why).
public struct StagePlan: Sendable {
    public var stage: StageDefinition
    public var components: FingerprintComponents
    public var fingerprint: String { components.fingerprint }
    public var willRun: Bool
    public var reason: String
}

public struct RunReport: Sendable {
    public struct Entry: Sendable {
        public var stage: String
        /// ran | incomplete | failed | skipped | blocked
        public var result: String
        public var message: String
        public var seconds: Double
    }
    public var entries: [Entry] = []
    public var seconds = 0.0
    public var succeeded: Bool { !entries.contains { $0.result == "failed" || $0.result == "blocked" } }
    public var ran: [String] { entries.filter { $0.result == "ran" || $0.result == "incomplete" }.map(\.stage) }
    public func entry(_ stage: String) -> Entry? { entries.first { $0.stage == stage } }
}

/// Plans (fingerprints → what runs and why) and executes a pipeline: stages start as soon as
/// everything they need has finished, independent ones at once (up to `max_parallel`); a failed
/// stage blocks only what is downstream of it.
public final class PipelineRunner: @unchecked Sendable {
    public let env: PipelineEnvironment
    public let registry: StageRegistry
    private let output: @Sendable (String) -> Void

    public init(env: PipelineEnvironment, registry: StageRegistry = .standard, output: @escaping @Sendable (String) -> Void = { print($0) }) {
        self.env = env
        self.registry = registry
        self.output = output
    }

    var pipeline: PipelineDefinition { env.pipeline }

    func executor(_ kind: String) throws -> StageExecutor {
        guard let e = registry.executors[kind] else { throw ForgeError(.config, "no executor for stage kind '\(kind)'") }
        return e
    }

    /// Validates every stage (nothing runs on an error) and decides what would run.
    public func plan(_ options: RunOptions = RunOptions()) throws -> [StagePlan] {
        for name in [options.from, options.only].compactMap({ $0 }) where pipeline.stage(name) == nil {
            throw ForgeError(.usage, "no stage '\(name)' (stages: \(pipeline.stages.map(\.name).joined(separator: ", ")))", file: pipeline.path)
        }
        if options.from != nil && options.only != nil { throw ForgeError(.usage, "use --from or --only, not both") }
        let order = PipelineGraph.topologicalOrder(pipeline)
        for s in order { try executor(s.kind).validate(s, in: env) }
        let database = options.dryRun ? try env.existingDatabase() : try env.database()
        let store = database.map { StageRunStore(database: $0, pipeline: pipeline.name) }
        var selected: Set<String>?
        if let only = options.only { selected = [only] }
        if let from = options.from { selected = PipelineGraph.downstream(of: from, in: pipeline).union([from]) }

        var plans: [String: StagePlan] = [:]
        var out: [StagePlan] = []
        for s in order {
            let ex = try executor(s.kind)
            let inputs = try ex.fingerprintInputs(s, in: env)
            var files: [String: String] = [:]
            for f in inputs.files { files[f] = try FileDigest.digest(path: f, database: database) }
            var params: [PEntry] = []
            if let schema = StageSchemas.schema(s.kind) {
                params = s.params.entries.filter { schema.spec($0.key)?.affectsOutput ?? true }
            }
            let components = FingerprintComponents(
                kind: s.kind, version: registry.versions[s.kind] ?? "0", params: PValue.map(params).canonical,
                inputs: Dictionary(uniqueKeysWithValues: s.needs.map { ($0, plans[$0]!.fingerprint) }),
                files: files, extra: inputs.extra)
            let last = try store?.latest(stage: s.name)
            var willRun = false
            var reason = "up to date"
            if let selected {
                if selected.contains(s.name) {
                    willRun = true
                    reason = options.only != nil ? "selected with --only" : (s.name == options.from ? "selected with --from" : "downstream of --from \(options.from!)")
                } else {
                    reason = "not selected"
                    if last?.status != "done" {
                        let upstreamOfSelection = selected.contains { PipelineGraph.upstream(of: $0, in: pipeline).contains(s.name) }
                        if upstreamOfSelection && !options.dryRun {
                            throw ForgeError(.usage, "stage '\(s.name)' has not completed yet, and the selected stages need it; run without --from/--only first", file: pipeline.path)
                        }
                        if upstreamOfSelection { reason = "not selected (has not completed: the selected stages would lack its output)" }
                    }
                }
            } else if let last {
                if last.status != "done" {
                    willRun = true
                    reason = "last run \(last.status == "running" ? "was interrupted" : last.status)" + (last.message.map { ": \($0)" } ?? "")
                } else if last.fingerprint != components.fingerprint {
                    willRun = true
                    let diffs = last.components.map { components.differences(from: $0) } ?? []
                    reason = diffs.isEmpty ? "fingerprint changed" : diffs.joined(separator: "; ")
                } else if let missing = ex.outputsMissing(s, in: env) {
                    willRun = true
                    reason = missing
                } else if let rerun = s.needs.first(where: { plans[$0]!.willRun }) {
                    willRun = true
                    reason = "input \(rerun) runs again"
                }
            } else {
                willRun = true
                reason = "never run"
            }
            let p = StagePlan(stage: s, components: components, willRun: willRun, reason: reason)
            plans[s.name] = p
            out.append(p)
        }
        return out
    }

    /// The plan as text: the DAG by level, then run/skip per stage with the reason.
    public func describe(_ plans: [StagePlan]) -> String {
        let width = max(8, plans.map(\.stage.name.count).max() ?? 8)
        var lines = ["pipeline \(pipeline.name) (\(pipeline.path)) · database \((pipeline.database as NSString).standardizingPath)", "DAG:", PipelineGraph.text(pipeline), "plan:"]
        for p in plans {
            let name = p.stage.name.padding(toLength: width, withPad: " ", startingAt: 0)
            lines.append("  \(name)  \(p.willRun ? "run " : "skip")  \(p.reason)  [\(p.fingerprint.prefix(12))]")
        }
        let n = plans.filter(\.willRun).count
        lines.append(n == 0 ? "nothing to do: all \(plans.count) stages are up to date" : "\(n) of \(plans.count) stages would run")
        return lines.joined(separator: "\n")
    }

    /// Plans, then runs what needs to run.
    public func run(_ options: RunOptions = RunOptions()) throws -> RunReport {
        let plans = try plan(options)
        if options.dryRun {
            output(describe(plans))
            return RunReport()
        }
        let started = Date()
        let toRun = plans.filter(\.willRun)
        if toRun.isEmpty {
            output("\(pipeline.name): nothing to do — all \(plans.count) stages are up to date (fingerprints unchanged)")
            var r = RunReport()
            r.entries = plans.map { .init(stage: $0.stage.name, result: "skipped", message: $0.reason, seconds: 0) }
            return r
        }
        for p in plans where !p.willRun { output("[\(p.stage.name)] skip: \(p.reason)") }
        let report = execute(plans)
        var r = report
        r.seconds = Date().timeIntervalSince(started)
        let ran = r.entries.filter { $0.result == "ran" }.count
        let incomplete = r.entries.filter { $0.result == "incomplete" }.count
        let failed = r.entries.filter { $0.result == "failed" }.count
        let blocked = r.entries.filter { $0.result == "blocked" }.count
        let skipped = r.entries.filter { $0.result == "skipped" }.count
        var line = "\(pipeline.name): \(ran) ran, \(skipped) up to date"
        if incomplete > 0 { line += ", \(incomplete) incomplete (rerun to retry)" }
        if failed > 0 { line += ", \(failed) failed" }
        if blocked > 0 { line += ", \(blocked) not run (an input failed)" }
        output(line + String(format: " in %.1f s", r.seconds))
        return r
    }

    /// Runs the planned stages concurrently in dependency order.
    /// Scheduler state shared with the stage threads (always under `cond`).
    final class Board: @unchecked Sendable {
        let cond = NSCondition()
        var state: [String: String] = [:]  // pending | running | ran | incomplete | failed | skipped | blocked
        var entries: [String: RunReport.Entry] = [:]
        var running = 0
    }

    func execute(_ plans: [StagePlan]) -> RunReport {
        let board = Board()
        for p in plans {
            board.state[p.stage.name] = p.willRun ? "pending" : "skipped"
            if !p.willRun { board.entries[p.stage.name] = .init(stage: p.stage.name, result: "skipped", message: p.reason, seconds: 0) }
        }
        let generating = plans.filter { $0.willRun && $0.stage.kind == "generate" }.count
        env.shared.budget.participants = max(1, generating)
        let group = DispatchGroup()
        board.cond.lock()
        while true {
            // Block what can no longer run; start what is ready.
            var progressed = true
            while progressed {
                progressed = false
                for p in plans where board.state[p.stage.name] == "pending" {
                    let bad = p.stage.needs.filter { board.state[$0] == "failed" || board.state[$0] == "blocked" }
                    if !bad.isEmpty {
                        board.state[p.stage.name] = "blocked"
                        board.entries[p.stage.name] = .init(stage: p.stage.name, result: "blocked", message: "not run: \(bad.joined(separator: ", ")) did not complete", seconds: 0)
                        output("[\(p.stage.name)] not run: \(bad.joined(separator: ", ")) did not complete")
                        progressed = true
                    }
                }
            }
            let ready = plans.filter { p in
                board.state[p.stage.name] == "pending" && p.stage.needs.allSatisfy { ["ran", "incomplete", "skipped"].contains(board.state[$0]!) }
            }
            for plan in ready where board.running < pipeline.maxParallel {
                board.state[plan.stage.name] = "running"
                board.running += 1
                group.enter()
                Thread.detachNewThread { [self] in
                    let entry = self.runOne(plan)
                    board.cond.lock()
                    board.state[plan.stage.name] = entry.result
                    board.entries[plan.stage.name] = entry
                    board.running -= 1
                    board.cond.broadcast()
                    board.cond.unlock()
                    group.leave()
                }
            }
            if !board.state.values.contains(where: { $0 == "pending" || $0 == "running" }) { break }
            board.cond.wait()
        }
        board.cond.unlock()
        group.wait()
        var r = RunReport()
        r.entries = plans.compactMap { board.entries[$0.stage.name] }
        return r
    }

    func runOne(_ p: StagePlan) -> RunReport.Entry {
        let name = p.stage.name
        let started = Date()
        let out = output
        output("[\(name)] run (\(p.reason))")
        var runID: Int64?
        do {
            let database = try env.database()
            let store = StageRunStore(database: database, pipeline: pipeline.name)
            runID = try store.begin(stage: p.stage, components: p.components)
            let outcome = try executor(p.stage.kind).run(p.stage, in: env) { line in out("[\(name)] \(line)") }
            let secs = Date().timeIntervalSince(started)
            try store.finish(id: runID!, status: outcome.status.rawValue, message: outcome.status == .done ? nil : outcome.summary, summary: outcome.detailsJSON, seconds: secs)
            output("[\(name)] \(outcome.status == .done ? "done" : "incomplete") in \(String(format: "%.2f", secs)) s: \(outcome.summary)")
            return .init(stage: name, result: outcome.status == .done ? "ran" : "incomplete", message: outcome.summary, seconds: secs)
        } catch {
            let secs = Date().timeIntervalSince(started)
            let message = (error as? ForgeError)?.description ?? "\(error)"
            if let runID, let db = try? env.database() {
                try? StageRunStore(database: db, pipeline: pipeline.name).finish(id: runID, status: "failed", message: message, summary: nil, seconds: secs)
            }
            output("[\(name)] FAILED after \(String(format: "%.2f", secs)) s: \(message)")
            return .init(stage: name, result: "failed", message: message, seconds: secs)
        }
    }
}
