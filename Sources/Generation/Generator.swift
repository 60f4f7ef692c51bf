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
/// sha256 of the exact request body; a response is stored together with its parsed sample in
/// one transaction. So a rerun never re-sends a request whose answer is stored, an interrupted
/// run resumes where it stopped, and changing a prompt file or a sampling parameter changes the
/// key of exactly the requests it affects.
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

    /// One planned request.
    struct Job {
        var requestID: Int64
        var imageID: Int64
        var body: Data
        var request: ChatRequest
    }

    public func run(progress: ((String) -> Void)? = nil) throws -> GenerateSummary {
        guard options.limit >= 0 else { throw ForgeError(.usage, "--limit must be ≥ 0") }
        let lock = try RunLock(databasePath: database.path)
        defer { lock.release() }
        let started = Date()
        let runID = try database.write { db -> Int64 in
            // A previous process died mid-request: those requests were never answered.
            try db.execute(sql: "UPDATE requests SET status = 'pending' WHERE status = 'in_flight'")
            try db.execute(sql: "INSERT INTO runs(type, base_url, model, params_json, requested) VALUES (?, ?, ?, ?, ?)",
                           arguments: [spec.name, options.baseURL, options.model, paramsJSON(), options.limit])
            return db.lastInsertedRowID
        }
        var summary = GenerateSummary(type: spec.name, runID: runID)
        let plan = try planRequests(runID: runID)
        summary.planned = plan.total
        summary.cached = plan.total - plan.toSend.count
        progress?("\(spec.name): \(plan.total) requests planned, \(summary.cached) already answered, \(plan.toSend.count) to send")

        let state = RunState(summary: summary)
        let queue = JobQueue(plan.toSend)
        let reporter = ProgressReporter(total: plan.toSend.count, interval: options.progressInterval, sink: progress)
        let workers = max(1, min(options.concurrency, max(1, plan.toSend.count)))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while !state.stopped, let job = queue.next() {
                process(job, state: state)
                reporter.tick(state: state)
            }
        }
        summary = state.snapshot()
        summary.seconds = Date().timeIntervalSince(started)
        let totals = String(decoding: (try? JSONEncoder().encode(summary)) ?? Data(), as: UTF8.self)
        try database.write { db in
            try db.execute(sql: "UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), totals_json = ? WHERE id = ?", arguments: [totals, runID])
        }
        return summary
    }

    // MARK: planning

    struct Plan {
        var total: Int
        var toSend: [Job]
    }

    /// Chooses the images (seeded order), builds each request and journals it as `pending`.
    private func planRequests(runID: Int64) throws -> Plan {
        let source = AnnotationSource(database: database)
        var candidates: [ImageAnnotations] = []
        if let ids = options.imageIDs {
            for id in ids {
                guard let a = try source.annotations(imageID: id) else {
                    throw ForgeError(.badInput, "no image with id \(id) in the database", file: database.path)
                }
                candidates.append(a)
            }
        } else {
            let order = try imageOrder()
            // Only the first `limit` usable images are needed; read them one by one.
            for id in order where candidates.count < options.limit {
                if let a = try source.annotations(imageID: id), !a.captions.isEmpty { candidates.append(a) }
            }
        }
        let chosen = candidates.prefix(options.limit)
        var jobs: [Job] = []
        var total = 0
        try database.write { db in
            for ann in chosen {
                let ctx = SymbolicContextFormatter.format(ann, kind: spec.context)
                let request = ChatRequest(
                    model: options.model,
                    messages: spec.messages(forContext: ctx.text).map { ChatMessage(role: $0.role, content: $0.content) },
                    params: SamplingParams(
                        temperature: options.temperature ?? spec.temperature,
                        topP: options.topP,
                        maxTokens: options.maxTokens ?? spec.maxTokens,
                        seed: nil, stop: nil))
                let body = request.bodyJSON()
                let key = SHA256.hex(Array(body))
                try db.execute(sql: """
                    INSERT INTO requests(cache_key, run_id, image_id, type, model, context, body_json, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT(cache_key) DO NOTHING
                    """, arguments: [key, runID, ann.imageID, spec.name, options.model, ctx.text, String(decoding: body, as: UTF8.self)])
                guard let row = try Row.fetchOne(db, sql: "SELECT id, status FROM requests WHERE cache_key = ?", arguments: [key]) else { continue }
                total += 1
                let status: String = row[1]
                if status != "done" {
                    jobs.append(Job(requestID: row[0], imageID: ann.imageID, body: body, request: request))
                } else {
                    // Answered before (maybe under an older parser): make sure its sample exists.
                    try ensureSample(requestID: row[0], imageID: ann.imageID, db: db)
                }
            }
        }
        return Plan(total: total, toSend: jobs)
    }

    /// All image ids, shuffled deterministically by the seed and the type (so each type draws
    /// its own images, as LLaVA sampled per type) — stable when images are added later.
    private func imageOrder() throws -> [Int64] {
        let ids = try database.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM images") }
        var keyed: [(key: UInt64, id: Int64)] = []
        keyed.reserveCapacity(ids.count)
        for id in ids {
            var r = SeededRandom(seed: options.seed, key: "order/\(spec.name)/\(id)")
            keyed.append((r.next(), id))
        }
        keyed.sort { a, b in a.key != b.key ? a.key < b.key : a.id < b.id }
        return keyed.map { $0.id }
    }

    private func paramsJSON() -> String {
        var o: [String: Any] = [:]
        o["limit"] = options.limit
        o["concurrency"] = options.concurrency
        o["seed"] = options.seed
        o["prompt_fingerprint"] = spec.fingerprint
        if let t = options.temperature { o["temperature"] = t }
        if let m = options.maxTokens { o["max_tokens"] = m }
        if let p = options.topP { o["top_p"] = p }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    // MARK: sending

    private func process(_ job: Job, state: RunState) {
        do {
            try database.write { db in
                try db.execute(sql: "UPDATE requests SET status = 'in_flight', attempts = attempts + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?", arguments: [job.requestID])
            }
        } catch {
            state.recordError(class: "database", message: "\(error)")
            return
        }
        state.markSent()
        switch client.complete(job.request) {
        case .success(let result):
            do {
                let outcome = try database.write { db -> SampleOutcome in
                    try db.execute(sql: """
                        UPDATE requests SET status = 'done', http_status = ?, error = NULL, response_text = ?, finish_reason = ?,
                          prompt_tokens = ?, completion_tokens = ?, latency_ms = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                        WHERE id = ?
                        """, arguments: [result.httpStatus, result.content, result.finishReason, result.promptTokens, result.completionTokens, result.latencyMs, job.requestID])
                    return try storeSample(requestID: job.requestID, imageID: job.imageID, response: result.content, finishReason: result.finishReason, db: db)
                }
                state.recordSuccess(outcome, promptTokens: result.promptTokens ?? 0, completionTokens: result.completionTokens ?? 0)
            } catch {
                state.recordError(class: "database", message: "request \(job.requestID): \(error)")
            }
        case .failure(let error):
            let cls = Self.errorClass(error)
            let message = "request \(job.requestID) (image \(job.imageID)): \(error)"
            var httpStatus: Int?
            if case .http(let status, _) = error { httpStatus = status }
            try? database.write { db in
                try db.execute(sql: "UPDATE requests SET status = 'failed', http_status = ?, error = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?",
                               arguments: [httpStatus, "\(error)", job.requestID])
            }
            state.recordError(class: cls, message: message)
            if case .quotaExhausted(let msg) = error {
                state.stop(reason: "the API reports the quota is exhausted (\(msg)); everything answered so far is stored — rerun the same command after topping up")
            }
        }
    }

    static func errorClass(_ e: LLMError) -> String {
        switch e {
        case .transport: return "transport"
        case .http(let status, _): return "http_\(status)"
        case .quotaExhausted: return "quota"
        case .malformedResponse: return "malformed"
        }
    }

    // MARK: samples

    enum SampleOutcome { case ok, parseFailed, truncated }

    /// Parses a stored response into a sample row (replacing an older parse of the same request).
    private func storeSample(requestID: Int64, imageID: Int64, response: String, finishReason: String?, db: Database) throws -> SampleOutcome {
        let format = ResponseFormat(rawValue: spec.format) ?? .conversation
        var placement = SeededRandom(seed: options.seed, key: "image-placement/\(spec.name)/\(imageID)")
        var instruction: String?
        if !spec.instructions.isEmpty {
            var pick = SeededRandom(seed: options.seed, key: "instruction/\(spec.name)/\(imageID)")
            instruction = spec.instructions[Int(pick.next() % UInt64(spec.instructions.count))]
        }
        let built = ConversationBuilder.build(format: format, response: response, instruction: instruction, rng: &placement)
        var status = "ok", reason: String?
        var conversations: String?
        var turns = 0
        switch built {
        case .success(let t):
            conversations = String(decoding: try JSONEncoder.llava.encode(t), as: UTF8.self)
            turns = t.count / 2
        case .failure(let f):
            status = "parse_failed"
            reason = f.description
        }
        if finishReason == "length" {
            status = "truncated"
            reason = "finish_reason=length (the response hit max_tokens)" + (reason.map { "; " + $0 } ?? "")
        }
        try db.execute(sql: """
            INSERT INTO samples(request_id, image_id, type, status, reason, conversations_json, turns) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(request_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
              conversations_json = excluded.conversations_json, turns = excluded.turns
            """, arguments: [requestID, imageID, spec.name, status, reason, conversations, turns])
        return status == "ok" ? .ok : (status == "truncated" ? .truncated : .parseFailed)
    }

    private func ensureSample(requestID: Int64, imageID: Int64, db: Database) throws {
        guard try Int.fetchOne(db, sql: "SELECT 1 FROM samples WHERE request_id = ?", arguments: [requestID]) == nil else { return }
        guard let row = try Row.fetchOne(db, sql: "SELECT response_text, finish_reason FROM requests WHERE id = ?", arguments: [requestID]) else { return }
        _ = try storeSample(requestID: requestID, imageID: imageID, response: row[0] ?? "", finishReason: row[1], db: db)
    }
}

extension JSONEncoder {
    /// Turn arrays as LLaVA writes them: {"from": …, "value": …}, key order fixed.
    static var llava: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
