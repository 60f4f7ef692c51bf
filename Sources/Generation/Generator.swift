import Contexts
import ForgeCore
import Foundation
import GRDB
import LLMClient
import Logging
import Parsing
import Prompts
import Store

/// contexts → chat requests → responses → parsed samples, journalled in the store.
///
/// Every request row is written (status `pending`) before anything is sent, keyed by the
/// sha256 of the exact request body. The requests go out through one `ChatEngine` (libcurl
/// multi, rate-limited, retried by class); each answer is stored with its parsed sample by a
/// single writer thread that commits in groups. So a rerun never re-sends a request whose
/// answer is stored, a run killed at any moment resumes where it stopped (rows left
/// `in_flight` by a dead process go back to `pending`), and changing a prompt file or a
/// sampling parameter changes the key of exactly the requests it affects.
public final class Generator {
    public let database: ForgeDatabase
    public let spec: SampleTypeSpec
    public let client: OpenAIClient
    public let options: GenerateOptions
    private let logger = Logger(label: "llava-forge.generate")

    public init(database: ForgeDatabase, spec: SampleTypeSpec, client: OpenAIClient, options: GenerateOptions) {
        self.database = database
        self.spec = spec
        self.client = client
        self.options = options
    }

    /// One planned request. The body is rebuilt from the context when it is sent (the same
    /// bytes, whose hash is the row's key): 158K bodies of ~6 KB each are not kept in memory.
    struct Job {
        var requestID: Int64
        var imageID: Int64
        var context: String
    }

    public func run(progress: ((String) -> Void)? = nil) throws -> GenerateSummary {
        guard options.limit >= 0 else { throw ForgeError(.usage, "--limit must be ≥ 0") }
        guard options.concurrency >= 1 else { throw ForgeError(.usage, "--concurrency must be ≥ 1") }
        // The process's lock on this database (shared with the other Generators of this
        // process; a second process is refused), claiming this type.
        let lock = try RunLock(databasePath: database.path, type: spec.name)
        defer { lock.release() }
        let started = Date()
        let type = spec.name
        let (runID, reclaimed) = try database.write { db -> (Int64, Int) in
            // A previous process died mid-request: those requests were never (durably) answered.
            // Only this type's: no other process is live (the lock), and the other types may be
            // in flight right now in another Generator of this process.
            try db.execute(sql: "UPDATE requests SET status = 'pending' WHERE status = 'in_flight' AND type = ?", arguments: [type])
            let reclaimed = db.changesCount
            try db.execute(sql: "UPDATE runs SET status = 'killed' WHERE status = 'running' AND type = ?", arguments: [type])
            try db.execute(sql: "INSERT INTO runs(type, base_url, model, params_json, requested) VALUES (?, ?, ?, ?, ?)",
                           arguments: [spec.name, options.baseURL, options.model, paramsJSON(), options.limit])
            return (db.lastInsertedRowID, reclaimed)
        }
        var summary = GenerateSummary(type: spec.name, runID: runID)
        summary.reclaimed = reclaimed
        let plan = try planRequests(runID: runID)
        summary.planned = plan.total
        summary.exported = plan.exported
        summary.cached = plan.total - plan.toSend.count - plan.exported
        var head = "\(spec.name): \(plan.total) requests planned, \(summary.cached) already answered, \(plan.toSend.count) to send"
        if reclaimed > 0 { head += ", \(reclaimed) reclaimed from an interrupted run" }
        if plan.exported > 0 { head += ", \(plan.exported) waiting in Batch API files (batch import them, or --include-exported)" }
        progress?(head)

        let state = RunState(summary: summary)
        if !plan.toSend.isEmpty {
            try send(plan.toSend, runID: runID, state: state, progress: progress)
        }
        summary = state.snapshot()
        summary.seconds = Date().timeIntervalSince(started)
        summary.costUSD = options.prices.cost(model: options.model, promptTokens: summary.promptTokens, completionTokens: summary.completionTokens)
        let totals = String(decoding: (try? JSONEncoder().encode(summary)) ?? Data(), as: UTF8.self)
        let final = summary
        try database.write { db in
            // Retries dropped by a stop: those requests were not answered.
            try db.execute(sql: "UPDATE requests SET status = 'pending' WHERE status = 'in_flight' AND type = ?", arguments: [type])
            try writeTotals(final, runID: runID, db: db)
            try db.execute(sql: """
                UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), totals_json = ?, status = ?, stopped_reason = ?
                WHERE id = ?
                """, arguments: [totals, final.stoppedReason == nil ? "finished" : "stopped", final.stoppedReason, runID])
        }
        return summary
    }

    // MARK: sending

    private func send(_ jobs: [Job], runID: Int64, state: RunState, progress: ((String) -> Void)?) throws {
        // With a shared limiter: one pacing state for every Generator of the process, and a
        // lease of the shared in-flight budget held while this run sends.
        let wanted = min(options.concurrency, max(1, jobs.count))
        let shared = options.sharedLimiter
        let slots = shared?.budget.acquire(wanted: wanted) ?? wanted
        defer { shared?.budget.release(slots) }
        state.update { $0.concurrency = slots }
        let limits = shared.map { RateLimits(group: $0.rate) }
            ?? RateLimits(requestsPerMinute: options.requestsPerMinute, tokensPerMinute: options.tokensPerMinute)
        let engine = try ChatEngine(config: client.config, options: EngineOptions(
            concurrency: slots,
            limits: limits,
            retryBudget: options.retryBudget ?? max(100, jobs.count / 10),
            circuitBreaker: options.circuitBreaker))
        var byID: [Int64: Job] = [:]
        byID.reserveCapacity(jobs.count)
        for j in jobs { byID[j.requestID] = j }
        let jobsByID = byID
        let writer = JournalWriter(batch: options.commitBatch, interval: options.commitInterval)
        let reporter = ProgressReporter(total: jobs.count, interval: options.progressInterval, style: options.progressStyle,
                                        prices: options.prices, model: options.model, sink: progress)
        let samples = SampleWriter(spec: spec, seed: options.seed, structured: options.structuredOutput)
        let writerDone = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            writer.drain(tick: options.progressStyle == .terminal ? 0.5 : min(1, options.progressInterval), apply: { group in
                do {
                    try database.write { db in
                        for event in group { try apply(event, jobs: jobsByID, samples: samples, state: state, db: db) }
                        try writeTotals(state.snapshot(), runID: runID, db: db)
                    }
                } catch {
                    state.recordError(class: "database", message: "storing \(group.count) results failed: \(error)")
                    engine.stop(reason: "the store cannot be written (\(error)); everything committed so far is kept")
                }
                reporter.tick(state.snapshot())
            }, idle: { reporter.tick(state.snapshot()) })
            writerDone.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()

        var index = 0
        let planner = try RequestPlanner(database: database, spec: spec, options: options)
        let maxTokens = options.maxTokens ?? spec.maxTokens
        let sendStarted = Date()
        let report = engine.run(next: { () -> ChatJob? in
            guard index < jobs.count else { return nil }
            let j = jobs[index]
            index += 1
            return ChatJob(id: j.requestID, body: planner.chatRequest(context: j.context).bodyJSON(), maxTokens: maxTokens)
        }, started: { job, retries in
            writer.post(.started(jobID: retries == 0 ? job.id : -job.id))
        }, deliver: { outcome in
            writer.post(.finished(outcome))
        })
        writer.close()
        writerDone.wait()
        let sendSeconds = Date().timeIntervalSince(sendStarted)
        state.update { s in
            s.sendSeconds = sendSeconds
            s.retriesByClass = report.retriesByClass
            s.http429 = report.http429
            if s.stoppedReason == nil { s.stoppedReason = report.stoppedReason }
        }
        reporter.tick(state.snapshot(), final: true)
    }

    /// One engine event into the journal (inside the writer's transaction). A started event
    /// carries `-id` for a retry (counted as an attempt, not as a new request sent).
    private func apply(_ event: JournalWriter.Event, jobs: [Int64: Job], samples: SampleWriter, state: RunState, db: Database) throws {
        switch event {
        case .started(let signed):
            try db.cachedStatement(sql: "UPDATE requests SET status = 'in_flight', attempts = attempts + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?")
                .execute(arguments: [abs(signed)])
            state.update { s in
                s.attempts += 1
                if signed > 0 { s.sent += 1 }
            }
        case .finished(let outcome):
            guard let job = jobs[outcome.jobID] else { return }
            switch outcome.result {
            case .success(let result):
                try db.cachedStatement(sql: """
                    UPDATE requests SET status = 'done', http_status = ?, error = NULL, error_class = NULL, response_text = ?, finish_reason = ?,
                      prompt_tokens = ?, completion_tokens = ?, latency_ms = ?, server_request_id = ?,
                      updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                    WHERE id = ?
                    """).execute(arguments: [result.httpStatus, result.content, result.finishReason, result.promptTokens,
                                             result.completionTokens, result.latencyMs, outcome.serverRequestID, job.requestID])
                let stored = try samples.store(requestID: job.requestID, imageID: job.imageID, response: result.content,
                                               finishReason: result.finishReason, db: db)
                state.recordSuccess(stored, promptTokens: result.promptTokens ?? 0, completionTokens: result.completionTokens ?? 0)
            case .failure(let error):
                let cls = FailureClass.of(error).rawValue
                var httpStatus: Int?
                if case .http(let status, _) = error { httpStatus = status }
                if case .quotaExhausted = error { httpStatus = 429 }
                try db.cachedStatement(sql: """
                    UPDATE requests SET status = 'failed', http_status = ?, error = ?, error_class = ?, server_request_id = ?,
                      updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?
                    """).execute(arguments: [httpStatus, "\(error)", cls, outcome.serverRequestID, job.requestID])
                let rid = outcome.serverRequestID.map { ", x-request-id \($0)" } ?? ""
                state.recordError(class: cls, message: "request \(job.requestID) (image \(job.imageID)\(rid), \(outcome.attempts) attempt\(outcome.attempts == 1 ? "" : "s")): \(error)")
            }
        }
    }

    private func writeTotals(_ s: GenerateSummary, runID: Int64, db: Database) throws {
        let cost = options.prices.cost(model: options.model, promptTokens: s.promptTokens, completionTokens: s.completionTokens)
        try db.cachedStatement(sql: """
            UPDATE runs SET sent = ?, cached = ?, ok = ?, parse_failed = ?, truncated = ?, failed = ?, retries = ?,
              prompt_tokens = ?, completion_tokens = ?, cost_usd = ? WHERE id = ?
            """).execute(arguments: [s.sent, s.cached, s.samplesOK, s.parseFailed, s.truncated, s.failed, max(0, s.attempts - s.sent),
                                     s.promptTokens, s.completionTokens, cost, runID])
    }

    static func errorClass(_ e: LLMError) -> String { FailureClass.of(e).rawValue }

    // MARK: planning

    typealias Plan = RequestPlanner.Plan

    func planRequests(runID: Int64) throws -> Plan {
        try RequestPlanner(database: database, spec: spec, options: options).plan(runID: runID)
    }

    /// Run parameters for the runs row. Concurrency and limits are recorded for the record
    /// only: they never enter a request, so they never change a cache key.
    private func paramsJSON() -> String {
        var o: [String: Any] = [:]
        o["limit"] = options.limit
        o["concurrency"] = options.concurrency
        o["seed"] = options.seed
        o["prompt_fingerprint"] = spec.fingerprint
        if let t = options.temperature { o["temperature"] = t }
        if let m = options.maxTokens { o["max_tokens"] = m }
        if let p = options.topP { o["top_p"] = p }
        if let r = options.requestsPerMinute { o["rpm"] = r }
        if let t = options.tokensPerMinute { o["tpm"] = t }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
