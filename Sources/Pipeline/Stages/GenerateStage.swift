import ForgeCore
import Foundation
import Generation
import GRDB
import LLMClient
import Prompts
import Store

/// What every generate stage of one run shares: one client per server (one libcurl handle pool,
/// keep-alive connections reused across the branches), one in-flight budget for the whole run
/// (`max_in_flight`) and, per server, one pacing state (`requests_per_minute`,
/// `tokens_per_minute`, the server's `x-ratelimit-*` headers, the pause after a 429). The
/// Generators of the branches run at the same time on the one database (the process holds one
/// lock on it; see `Generation.RunLock`), each with the `SharedLimiter` of its server.
public final class SharedGeneration: @unchecked Sendable {
    public let budget: RequestBudget
    public let requestsPerMinute: Double?
    public let tokensPerMinute: Double?
    private let lock = NSLock()
    private var clients: [String: OpenAIClient] = [:]
    private var limiters: [String: SharedLimiter] = [:]

    public init(maxInFlight: Int, requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil) {
        budget = RequestBudget(total: maxInFlight)
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
    }

    private static func key(_ config: ClientConfig) -> String {
        "\(config.baseURL)|\(config.apiKey.map { SHA256.hex($0) } ?? "-")"
    }

    /// One client per (base URL, key, timeout, retries).
    public func client(_ config: ClientConfig) throws -> OpenAIClient {
        let key = "\(Self.key(config))|\(config.requestTimeout)|\(config.maxRetries)"
        lock.lock(); defer { lock.unlock() }
        if let c = clients[key] { return c }
        let c = try OpenAIClient(config: config)
        clients[key] = c
        return c
    }

    /// The limiter of one server (base URL and key) over the run's budget.
    public func limiter(_ config: ClientConfig) -> SharedLimiter {
        let key = Self.key(config)
        lock.lock(); defer { lock.unlock() }
        if let l = limiters[key] { return l }
        let l = SharedLimiter(rate: RateLimitGroup(requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute), budget: budget)
        limiters[key] = l
        return l
    }
}

/// `generate`: the adapter between the pipeline and `Generation.Generator` — the only file that
/// knows the Generator's API. Images come from the upstream sample-images stage when there is
/// one (else the Generator's own seeded order with `limit`).
struct GenerateStage: StageExecutor {
    static let noLLMHelp = "no LLM configured: set LLAVA_FORGE_BASE_URL (an OpenAI-compatible base URL with /v1, e.g. http://127.0.0.1:8080/v1) and LLAVA_FORGE_MODEL (and OPENAI_API_KEY if the server wants a key), or pass --set base_url=URL --set model=NAME; the stages before generation have run and are stored"

    func sampler(_ stage: StageDefinition, _ env: PipelineEnvironment) -> StageDefinition? {
        env.upstream(of: stage, kind: "sample-images").last
    }

    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        let type = stage.params.string("type")!
        do { _ = try env.spec(type) } catch let e as ForgeError {
            throw pipelineError(e.description, at: paramMark(stage, "type"), stage: stage.name)
        }
        if let s = sampler(stage, env) {
            guard SampleImagesStage.declaredTypes(s).contains(type) else {
                throw pipelineError("type '\(type)' is not sampled by '\(s.name)' (it samples: \(SampleImagesStage.declaredTypes(s).joined(separator: ", ")))", at: paramMark(stage, "type"), stage: stage.name)
            }
        } else if stage.params.int("limit") == nil {
            throw pipelineError("give 'limit' or put a sample-images stage upstream (needs:)", at: stage.mark, stage: stage.name)
        }
        if stage.params.string("structured") == "on", (try? env.spec(type))?.responseSchema == nil {
            throw pipelineError("'structured: on' needs prompts/\(type)/schema.json", at: paramMark(stage, "structured"), stage: stage.name)
        }
        for key in ["limit", "concurrency", "max_tokens", "max_retries"] {
            if let v = stage.params.int(key), v < (key == "limit" || key == "max_retries" ? 0 : 1) {
                throw pipelineError("'\(key)' must be \(key == "limit" || key == "max_retries" ? "≥ 0" : "≥ 1"), got \(v)", at: paramMark(stage, key), stage: stage.name)
            }
        }
    }

    /// Every prompt and seed file of the type (path, size, mtime, content) and the model.
    func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String]) {
        let type = stage.params.string("type")!
        let lib = try env.library()
        var files: [String] = []
        for dir in ["\(lib.promptsDir)/\(type)", "\(lib.seedsDir)/\(type)"] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            files += names.sorted().map { "\(dir)/\($0)" }.filter { !$0.hasSuffix("~") }
        }
        let model = resolvedModel(stage, env) ?? (resolvedBaseURL(stage, env) == nil ? LocalServer.modelName(forPath: localModelPath(stage, env)) : "")
        return (files, ["model": model])
    }

    func localModelPath(_ stage: StageDefinition, _ env: PipelineEnvironment) -> String {
        LocalServer.modelPath(param: stage.params.string("local_model"), environment: env.environment, promptsDir: env.pipeline.promptsDir)
    }

    /// `structured: on | off | auto` (default auto). Auto asks for JSON only from our own local
    /// engine (no base URL configured: the offline default), which enforces the schema by
    /// constrained sampling; hosted APIs keep the free-text layout unless configured.
    static func structuredOutput(_ value: String?, localEngine: Bool) -> Bool {
        switch value ?? "auto" {
        case "on": return true
        case "off": return false
        default: return localEngine
        }
    }

    func resolvedModel(_ stage: StageDefinition, _ env: PipelineEnvironment) -> String? {
        let m = stage.params.string("model") ?? env.environment["LLAVA_FORGE_MODEL"] ?? ""
        return m.isEmpty ? nil : m
    }

    func resolvedBaseURL(_ stage: StageDefinition, _ env: PipelineEnvironment) -> String? {
        let u = stage.params.string("base_url") ?? ""
        if !u.isEmpty { return u }
        let e = env.environment["LLAVA_FORGE_BASE_URL"] ?? env.environment["OPENAI_BASE_URL"] ?? ""
        return e.isEmpty ? nil : e
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let p = stage.params
        let type = p.string("type")!
        // No API configured: our own server with the local model (Stages/LocalServer.swift).
        var local: LocalServer.Lease?
        if resolvedBaseURL(stage, env) == nil { local = try LocalServer.acquire(modelPath: localModelPath(stage, env), environment: env.environment, log: log) }
        defer { local?.release() }
        guard let baseURL = resolvedBaseURL(stage, env) ?? local?.baseURL, let model = resolvedModel(stage, env) ?? local?.modelName else {
            throw ForgeError(.config, Self.noLLMHelp, location: "stage '\(stage.name)'")
        }
        let database = try env.database()
        let spec = try env.spec(type)
        var imageIDs: [Int64]?
        if let s = sampler(stage, env) { imageIDs = try SampleImagesStage.choices(stage: s.name, type: type, database: database) }
        let limit = min(p.int("limit") ?? Int.max, imageIDs?.count ?? Int.max)

        var cfg = ClientConfig(baseURL: baseURL, apiKey: try APIKey.resolve(keyFile: p.string("api_key_file")))
        if let t = p.double("timeout") { cfg.requestTimeout = t }
        if let r = p.int("max_retries") { cfg.maxRetries = r }
        if local != nil {
            // A small local model on a few cores answers a long few-shot prompt slowly and sends
            // nothing until it is done: no stall cut-off, and never a duplicate request piling on.
            cfg.requestTimeout = max(cfg.requestTimeout, 3600)
            cfg.stallTimeout = cfg.requestTimeout
        }
        let client = try env.shared.client(cfg)

        var options = GenerateOptions(limit: limit, model: model, baseURL: baseURL)
        options.seed = UInt64(bitPattern: Int64(p.int("seed") ?? 0))
        options.temperature = p.double("temperature")
        options.maxTokens = p.int("max_tokens")
        options.topP = p.double("top_p")
        if let ids = imageIDs { options.imageIDs = Array(ids.prefix(limit)) }
        options.concurrency = p.int("concurrency") ?? env.pipeline.maxInFlight
        options.sharedLimiter = env.shared.limiter(cfg)
        options.structuredOutput = Self.structuredOutput(p.string("structured"), localEngine: resolvedBaseURL(stage, env) == nil)
        let summary = try Generator(database: database, spec: spec, client: client, options: options).run(progress: log)
        let slots = summary.concurrency
        let retired = try retireStaleSamples(type: type, keep: options.imageIDs, database: database)

        let details = String(decoding: (try? JSONEncoder().encode(summary)) ?? Data(), as: UTF8.self)
        var line = "\(summary.planned) planned, \(summary.cached) from the store, \(summary.sent) sent (\(slots) at a time); ok \(summary.samplesOK), parse failed \(summary.parseFailed), truncated \(summary.truncated), request failures \(summary.failed)"
        if retired > 0 { line += "; \(retired) older samples superseded" }
        for e in summary.firstErrors { log("error: \(e)") }
        if let reason = summary.stoppedReason { throw ForgeError(.network, "stopped: \(reason)", location: "stage '\(stage.name)'") }
        if summary.failed > 0 && summary.succeeded == 0 && summary.sent > 0 {
            throw ForgeError(.network, "every request failed (\(summary.errorsByClass.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))); first: \(summary.firstErrors.first ?? "?")", location: "stage '\(stage.name)'")
        }
        return StageOutcome(summary.failed > 0 ? .incomplete : .done, line, detailsJSON: details)
    }

    /// After a prompt or parameter change the Generator writes new samples beside the old ones
    /// (new request keys). For each image only the sample of the newest request stays current;
    /// older ones, and samples of images no longer chosen, become `superseded` (export skips them).
    func retireStaleSamples(type: String, keep: [Int64]?, database: ForgeDatabase) throws -> Int {
        try database.write { db in
            try db.execute(sql: """
                UPDATE samples SET status = 'superseded', reason = 'superseded by sample ' || (
                    SELECT s2.id FROM samples s2 WHERE s2.type = samples.type AND s2.image_id = samples.image_id ORDER BY s2.request_id DESC LIMIT 1
                  ) || ' (the prompt or the generation parameters changed)'
                WHERE type = ? AND status != 'superseded'
                  AND request_id < (SELECT max(s3.request_id) FROM samples s3 WHERE s3.type = samples.type AND s3.image_id = samples.image_id)
                """, arguments: [type])
            var n = db.changesCount
            if let keep {
                try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS pipeline_keep_images(id INTEGER PRIMARY KEY)")
                try db.execute(sql: "DELETE FROM pipeline_keep_images")
                for id in keep { try db.execute(sql: "INSERT OR IGNORE INTO pipeline_keep_images(id) VALUES (?)", arguments: [id]) }
                try db.execute(sql: """
                    UPDATE samples SET status = 'superseded', reason = 'its image is no longer chosen for this type by the pipeline'
                    WHERE type = ? AND status != 'superseded' AND image_id NOT IN (SELECT id FROM pipeline_keep_images)
                    """, arguments: [type])
                n += db.changesCount
                try db.execute(sql: "DELETE FROM pipeline_keep_images")
            }
            return n
        }
    }
}
