import ForgeCore
import LLMClient

/// How live progress is shown.
public enum ProgressStyle: Sendable {
    /// One plain line per `progressInterval` through the `progress` callback (logs, pipes).
    case lines
    /// A status line rewritten in place on stderr (a terminal), refreshed twice a second.
    case terminal
}

public struct GenerateOptions: Sendable {
    /// Samples (one request each) this type should have when the run ends; a rerun tops up.
    public var limit: Int
    public var model: String
    public var baseURL: String
    /// Requests in flight at once (default suits a local server; raise it for hosted APIs).
    public var concurrency: Int = 8
    /// Seeds image order, instruction choice and `<image>` placement.
    public var seed: UInt64 = 0
    /// Overrides of the type's type.yaml sampling settings.
    public var temperature: Double?
    public var maxTokens: Int?
    public var topP: Double?
    /// Restrict to these images (default: all images with captions, in seeded order).
    public var imageIDs: [Int64]?
    /// Seconds between plain progress lines (when stderr is not a TTY).
    public var progressInterval: Double = 5
    public var progressStyle: ProgressStyle = .lines
    /// Client-side pacing; the server's `x-ratelimit-*` headers can lower these, never raise them.
    public var requestsPerMinute: Double?
    public var tokensPerMinute: Double?
    /// Retries allowed for the whole run (429 pacing excluded); nil = max(100, 10 % of the requests).
    public var retryBudget: Int?
    /// Stop after this many final failures in a row with no success (0 = never).
    public var circuitBreaker: Int = 8
    /// $ per 1M tokens, for the cost estimate.
    public var prices: PriceTable = .examples
    /// Store writes are committed together: at most this many results or this many seconds.
    public var commitBatch: Int = 64
    public var commitInterval: Double = 0.05
    /// Send requests that were exported to a Batch API file and not imported yet (default: skip them).
    public var includeExported = false
    /// Pacing and in-flight budget shared with other Generators of this process (see
    /// `SharedLimiter`); nil = this run's own limiter from `requestsPerMinute`/`tokensPerMinute`
    /// and `concurrency`.
    public var sharedLimiter: SharedLimiter?
    /// Ask for JSON matching the type's `schema.json` (`response_format: json_schema`) instead of
    /// the free-text layout; responses are then parsed as JSON. Off by default (hosted APIs);
    /// the local engine enforces it by constrained sampling.
    public var structuredOutput = false

    public init(limit: Int, model: String, baseURL: String) {
        self.limit = limit
        self.model = model
        self.baseURL = baseURL
    }
}

/// What a generate run did.
public struct GenerateSummary: Sendable, Codable {
    public var type: String
    public var runID: Int64
    public var planned = 0
    /// Requests answered from the store (their response was already there).
    public var cached = 0
    /// Requests sitting in Batch API files, not sent live.
    public var exported = 0
    /// In-flight rows of a dead run put back to pending at start.
    public var reclaimed = 0
    public var sent = 0
    /// Requests this run had in flight at most (its concurrency, or its lease of a shared budget).
    public var concurrency = 0
    public var succeeded = 0
    public var failed = 0
    public var samplesOK = 0
    public var parseFailed = 0
    public var truncated = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var seconds = 0.0
    /// Of `seconds`, the sending phase (first request out → last result committed).
    public var sendSeconds = 0.0
    /// Set when the run stopped early (e.g. the API quota is exhausted).
    public var stoppedReason: String?
    public var errorsByClass: [String: Int] = [:]
    public var retriesByClass: [String: Int] = [:]
    public var attempts = 0
    public var http429 = 0
    public var costUSD: Double?
    public var firstErrors: [String] = []
}
