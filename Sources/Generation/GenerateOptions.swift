import ForgeCore

public struct GenerateOptions: Sendable {
    /// Samples (one request each) this type should have when the run ends; a rerun tops up.
    public var limit: Int
    public var model: String
    public var baseURL: String
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
    public var sent = 0
    public var succeeded = 0
    public var failed = 0
    public var samplesOK = 0
    public var parseFailed = 0
    public var truncated = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var seconds = 0.0
    /// Set when the run stopped early (e.g. the API quota is exhausted).
    public var stoppedReason: String?
    public var errorsByClass: [String: Int] = [:]
    public var firstErrors: [String] = []
}
