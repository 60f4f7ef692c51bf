import ForgeCore
import Foundation
import Prompts
import Store

/// What a stage run ended as. `incomplete` (e.g. some requests failed) is stored and makes the
/// next run retry the stage.
public struct StageOutcome: Sendable {
    public enum Status: String, Sendable { case done, incomplete }
    public var status: Status
    /// One line for the run log.
    public var summary: String
    /// Stored as the run's summary_json.
    public var detailsJSON: String?

    public init(_ status: Status = .done, _ summary: String, detailsJSON: String? = nil) {
        self.status = status; self.summary = summary; self.detailsJSON = detailsJSON
    }
}

/// One stage kind's behaviour. Validation and fingerprint inputs are asked for every stage
/// before anything runs; `run` only for the stages that need to.
public protocol StageExecutor: Sendable {
    /// Checks beyond the parameter schema (types that must exist, files that must be there).
    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws
    /// Files whose size, mtime and content the fingerprint covers, and other values it depends on.
    func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String])
    /// A reason to rerun although the fingerprint is unchanged (an output was deleted).
    func outputsMissing(_ stage: StageDefinition, in env: PipelineEnvironment) -> String?
    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome
}

extension StageExecutor {
    public func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {}
    public func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String]) { ([], [:]) }
    public func outputsMissing(_ stage: StageDefinition, in env: PipelineEnvironment) -> String? { nil }
}

/// Kind → executor. `standard` has every built-in kind; tests may swap one.
public struct StageRegistry: Sendable {
    public var executors: [String: StageExecutor]
    /// Implementation versions, part of every fingerprint.
    public var versions: [String: String]

    public static var standard: StageRegistry {
        StageRegistry(executors: [
            "ingest": IngestStage(), "contexts": ContextsStage(), "sample-images": SampleImagesStage(),
            "generate": GenerateStage(), "parse": ParseStage(), "filter": FilterStage(), "dedup": DedupStage(),
            "export": ExportStage(), "train": TrainStage(),
        ], versions: ["ingest": "1", "contexts": "1", "sample-images": "1", "generate": "1", "parse": "1", "filter": "1", "dedup": "1", "export": "1",
                      "train": "1"])
    }
}

/// Everything a stage can reach: the pipeline, the store, the prompt library, the shared LLM
/// client/limiter, the environment.
public final class PipelineEnvironment: @unchecked Sendable {
    public let pipeline: PipelineDefinition
    public let environment: [String: String]
    public let shared: SharedGeneration
    private let lock = NSLock()
    private var _database: ForgeDatabase?
    private var _library: PromptLibrary?
    private var specs: [String: SampleTypeSpec] = [:]

    public init(pipeline: PipelineDefinition, environment: [String: String] = ProcessInfo.processInfo.environment, shared: SharedGeneration? = nil) {
        self.pipeline = pipeline
        self.environment = environment
        self.shared = shared ?? SharedGeneration(maxInFlight: pipeline.maxInFlight, requestsPerMinute: pipeline.requestsPerMinute.map { Double($0) },
                                                        tokensPerMinute: pipeline.tokensPerMinute.map { Double($0) })
    }

    /// The store, opened (and created) on first use.
    public func database() throws -> ForgeDatabase {
        lock.lock(); defer { lock.unlock() }
        if let d = _database { return d }
        let d = try ForgeDatabase(path: pipeline.database)
        _database = d
        return d
    }

    /// The store only if it exists already (dry runs create nothing).
    public func existingDatabase() throws -> ForgeDatabase? {
        if FileManager.default.fileExists(atPath: pipeline.database) { return try database() }
        return nil
    }

    public func library() throws -> PromptLibrary {
        lock.lock(); defer { lock.unlock() }
        if let l = _library { return l }
        let l = try PromptLibrary.locate(prompts: pipeline.promptsDir, seeds: pipeline.seedsDir ?? pipeline.promptsDir.map { ($0 as NSString).deletingLastPathComponent + "/seeds" })
        _library = l
        return l
    }

    public func spec(_ type: String) throws -> SampleTypeSpec {
        let lib = try library()
        lock.lock()
        if let s = specs[type] { lock.unlock(); return s }
        lock.unlock()
        let s = try lib.load(type: type)
        lock.lock(); specs[type] = s; lock.unlock()
        return s
    }

    /// Stages of `kind` that `stage` needs, directly or through others.
    public func upstream(of stage: StageDefinition, kind: String) -> [StageDefinition] {
        let names = PipelineGraph.upstream(of: stage.name, in: pipeline)
        return pipeline.stages.filter { names.contains($0.name) && $0.kind == kind }
    }

    /// The types of the generate stages upstream of `stage` (nil when there are none: all types).
    public func upstreamTypes(of stage: StageDefinition) -> [String]? {
        let types = upstream(of: stage, kind: "generate").compactMap { $0.params.string("type") }
        return types.isEmpty ? nil : Array(Set(types)).sorted()
    }

    /// type → response format, from the prompt library (LLaVA's defaults when a type is unknown).
    public func formats(for types: [String]?) -> [String: String] {
        var out: [String: String] = [:]
        let all = types ?? ((try? library().availableTypes()) ?? [])
        for t in all { if let s = try? spec(t) { out[t] = s.format } }
        return out
    }
}
