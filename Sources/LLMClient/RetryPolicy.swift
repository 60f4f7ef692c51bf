import Foundation

/// What to do after a failed attempt.
public enum FailureDecision: Equatable, Sendable {
    /// Try again after this many seconds.
    case retry(after: Double)
    /// Give up on this request; the run goes on.
    case fail
    /// Give up on the whole run (quota or billing exhausted); everything so far is kept.
    case stopRun
}

/// Failure classes, for counting and for choosing the retry rule. Raw values appear in logs,
/// progress lines and the `requests.error_class` column.
public enum FailureClass: String, Sendable, CaseIterable, Codable {
    case rateLimited = "rate_limited"        // 429 (not quota)
    case quota                               // 429 insufficient_quota / billing_*
    case server = "server_5xx"               // 500–599 (often HTML)
    case requestTimeout = "http_408"         // 408
    case conflict = "http_409"               // 409
    case badRequest = "http_400"
    case unauthorized = "http_401"
    case forbidden = "http_403"
    case notFound = "http_404"
    case otherHTTP = "http_other"
    case timeout                             // curl 28: connect, total or stall timeout
    case connection                          // reset, refused, DNS, partial read, …
    case tls                                 // certificate / handshake problems
    case malformed                           // 2xx that is not a chat completion

    public static func of(_ error: LLMError) -> FailureClass {
        switch error {
        case .quotaExhausted: return .quota
        case .malformedResponse: return .malformed
        case .http(let status, _):
            switch status {
            case 429: return .rateLimited
            case 408: return .requestTimeout
            case 409: return .conflict
            case 400: return .badRequest
            case 401: return .unauthorized
            case 403: return .forbidden
            case 404: return .notFound
            case 500...599: return .server
            default: return .otherHTTP
            }
        case .transport(let code, _):
            switch code {
            case 28: return .timeout
            case 35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91: return .tls
            default: return .connection
            }
        }
    }
}

/// Retries by class: capped exponential back-off with full jitter, a per-request attempt cap and
/// a global budget shared by the run (so a server that is down does not get N × retries).
/// 429s are pacing, not failures: they get their own, larger per-request cap and do not spend
/// the global budget. Malformed 2xx answers are retried once (a proxy glitch), then fail.
///
/// Not thread-safe: used on the engine's event-loop thread.
public final class RetryPolicy {
    public let maxRetries: Int
    public let maxRateLimitRetries: Int
    public let backoffBase: Double
    public let backoffCap: Double
    /// Retries left for the whole run (429s excluded).
    public private(set) var budget: Int
    /// The longest server-requested wait we honour as given.
    public let maxHonouredRetryAfter: Double

    public init(maxRetries: Int, backoffBase: Double, backoffCap: Double, budget: Int = 1000,
                maxRateLimitRetries: Int? = nil, maxHonouredRetryAfter: Double = 120) {
        self.maxRetries = maxRetries
        self.maxRateLimitRetries = maxRateLimitRetries ?? max(maxRetries, 12)
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
        self.budget = budget
        self.maxHonouredRetryAfter = maxHonouredRetryAfter
    }

    public convenience init(config: ClientConfig, budget: Int = 1000) {
        self.init(maxRetries: config.maxRetries, backoffBase: config.backoffBase, backoffCap: config.backoffCap, budget: budget)
    }

    /// Whether this failure is worth another attempt at all.
    public static func isRetryable(_ error: LLMError) -> Bool {
        if case .malformedResponse = error { return true }
        return error.isRetryable
    }

    /// The decision after attempt number `retriesSoFar + 1` failed with `error`.
    public func decide(_ error: LLMError, retriesSoFar: Int) -> FailureDecision {
        let cls = FailureClass.of(error)
        if cls == .quota { return .stopRun }
        guard RetryPolicy.isRetryable(error) else { return .fail }
        if cls == .rateLimited {
            guard retriesSoFar < maxRateLimitRetries else { return .fail }
            return .retry(after: delay(retry: retriesSoFar, retryAfter: error.retryAfterSeconds))
        }
        let cap = cls == .malformed ? min(1, maxRetries) : maxRetries
        guard retriesSoFar < cap, budget > 0 else { return .fail }
        budget -= 1
        return .retry(after: delay(retry: retriesSoFar, retryAfter: error.retryAfterSeconds))
    }

    /// The server's requested delay (capped, plus up to 10 % jitter so paused senders do not
    /// return in lockstep), else full jitter: uniform in [0, min(cap, base · 2^retry)].
    public func delay(retry: Int, retryAfter: Double?) -> Double {
        if let asked = retryAfter {
            let honoured = min(asked, maxHonouredRetryAfter)
            return honoured + honoured * Double.random(in: 0...0.1)
        }
        let ceiling = min(backoffCap, backoffBase * pow(2, Double(min(retry, 30))))
        return Double.random(in: 0...max(ceiling, 0))
    }
}
