import Foundation

/// Why a chat completion failed. Messages never contain the API key (the client redacts it).
public enum LLMError: Error, CustomStringConvertible, Sendable, Equatable {
    /// DNS, connection refused, reset, TLS, timeout: libcurl's error code and message.
    case transport(code: Int, message: String)
    /// A non-2xx answer. `message` is the OpenAI `error.message` when the body is JSON, otherwise
    /// a trimmed prefix of the body. When the server asked for a delay (`retry-after-ms` /
    /// `Retry-After`), the message ends with ` (retry after N s)`; see `retryAfterSeconds`.
    case http(status: Int, message: String)
    /// 429 whose `error.code`/`error.type` is `insufficient_quota` or `billing_*`: stop the run.
    case quotaExhausted(message: String)
    /// A 2xx answer that is not a chat completion (not JSON, no `choices`, …).
    case malformedResponse(message: String)

    /// Worth trying again: transport failures other than configuration-type ones (bad URL,
    /// unsupported protocol, certificate rejected, …), and HTTP 408, 409, 429 (not quota), 5xx.
    public var isRetryable: Bool {
        switch self {
        case .transport(let code, _):
            return !LLMError.nonRetryableCurlCodes.contains(code)
        case .http(let status, _):
            return status == 408 || status == 409 || status == 429 || (500...599).contains(status)
        case .quotaExhausted, .malformedResponse:
            return false
        }
    }

    /// The delay the server asked for, when it gave one (only `.http` errors carry it).
    public var retryAfterSeconds: Double? {
        guard case .http(_, let message) = self else { return nil }
        return LLMError.parseRetryAfterSuffix(message)
    }

    public var description: String {
        switch self {
        case .transport(let code, let message): return "transport error (curl \(code)): \(message)"
        case .http(let status, let message): return "HTTP \(status): \(message)"
        case .quotaExhausted(let message): return "API quota exhausted: \(message)"
        case .malformedResponse(let message): return "malformed response: \(message)"
        }
    }

    // MARK: - Internals

    /// curl codes that describe a problem with the request or the setup, not the network:
    /// unsupported protocol (1), failed init (2), malformed URL (3), not built in (4),
    /// write error (23), out of memory (27), aborted by callback (42), bad function argument (43),
    /// too many redirects (47), unknown option (48), SSL cert problem (58), SSL cipher (59),
    /// peer failed verification (60), file size exceeded (63), login denied (67),
    /// CA cert bad file (77), SSL crl bad file (82), SSL issuer error (83).
    static let nonRetryableCurlCodes: Set<Int> = [1, 2, 3, 4, 23, 27, 42, 43, 47, 48, 58, 59, 60, 63, 67, 77, 82, 83]

    static let retryAfterPrefix = " (retry after "

    static func httpMessage(_ message: String, retryAfter: Double?) -> String {
        guard let r = retryAfter else { return message }
        return message + retryAfterPrefix + formatSeconds(r) + " s)"
    }

    static func formatSeconds(_ s: Double) -> String {
        let ms = (s * 1000).rounded()
        if ms.truncatingRemainder(dividingBy: 1000) == 0 { return String(Int(ms / 1000)) }
        return String(ms / 1000)
    }

    static func parseRetryAfterSuffix(_ message: String) -> Double? {
        guard message.hasSuffix(" s)"), let r = message.range(of: retryAfterPrefix, options: .backwards) else { return nil }
        let number = message[r.upperBound..<message.index(message.endIndex, offsetBy: -3)]
        guard let v = Double(number), v.isFinite, v >= 0 else { return nil }
        return v
    }
}
