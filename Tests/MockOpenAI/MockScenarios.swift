import Foundation

/// An RPM/TPM budget the mock enforces like a hosted API: continuously refilled buckets
/// holding `burstSeconds` of each limit; every answer carries `x-ratelimit-limit-*`,
/// `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` (durations like `1.5s`, `6m0s`, `12ms`);
/// a request over budget gets 429 `rate_limit_exceeded`, with `retry-after-ms` +
/// `Retry-After` when `sendRetryAfter` is set. A request costs its prompt tokens (body bytes / 4)
/// plus its completion tokens.
public final class MockRateLimit: @unchecked Sendable {
    public let requestsPerMinute: Double
    public let tokensPerMinute: Double
    public let burstSeconds: Double
    public let sendRetryAfter: Bool
    private let lock = NSLock()
    private var requestLevel: Double
    private var tokenLevel: Double
    private var last: Double
    public private(set) var admitted = 0
    public private(set) var rejected = 0

    public init(requestsPerMinute: Double, tokensPerMinute: Double, burstSeconds: Double = 2, sendRetryAfter: Bool = true) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.burstSeconds = burstSeconds
        self.sendRetryAfter = sendRetryAfter
        requestLevel = requestsPerMinute / 60 * burstSeconds
        tokenLevel = tokensPerMinute / 60 * burstSeconds
        last = MockRateLimit.now()
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    public var counts: (admitted: Int, rejected: Int) {
        lock.lock(); defer { lock.unlock() }
        return (admitted, rejected)
    }

    /// Charges one request of `tokens`; nil = over budget (answer with `rejection`), otherwise
    /// the headers to send with the answer.
    public func admit(tokens: Int) -> (allowed: Bool, headers: [String: String], wait: Double) {
        lock.lock(); defer { lock.unlock() }
        let now = MockRateLimit.now()
        let rps = requestsPerMinute / 60, tps = tokensPerMinute / 60
        let rCap = max(1, rps * burstSeconds), tCap = max(1, tps * burstSeconds)
        requestLevel = min(rCap, requestLevel + (now - last) * rps)
        tokenLevel = min(tCap, tokenLevel + (now - last) * tps)
        last = now
        var allowed = requestLevel >= 1 && tokenLevel >= Double(min(tokens, Int(tCap)))
        var wait = 0.0
        if allowed {
            requestLevel -= 1
            tokenLevel -= Double(tokens)
            admitted += 1
        } else {
            rejected += 1
            wait = max((1 - requestLevel) / rps, (Double(min(tokens, Int(tCap))) - tokenLevel) / tps, 0.001)
            allowed = false
        }
        let headers = [
            "x-ratelimit-limit-requests": String(Int(requestsPerMinute)),
            "x-ratelimit-limit-tokens": String(Int(tokensPerMinute)),
            "x-ratelimit-remaining-requests": String(max(0, Int(requestLevel))),
            "x-ratelimit-remaining-tokens": String(max(0, Int(tokenLevel))),
            "x-ratelimit-reset-requests": MockRateLimit.goDuration(max(0, rCap - requestLevel) / rps),
            "x-ratelimit-reset-tokens": MockRateLimit.goDuration(max(0, tCap - tokenLevel) / tps),
        ]
        return (allowed, headers, wait)
    }

    /// The 429 for a rejected request (with the rate-limit headers).
    public func rejection(headers: [String: String], wait: Double) -> MockOpenAIServer.Action {
        var h = headers
        if sendRetryAfter {
            h["retry-after-ms"] = String(Int((wait * 1000).rounded(.up)))
            h["Retry-After"] = String(Int(wait.rounded(.up)))
        }
        return MockOpenAIServer.error(status: 429, message: "Rate limit reached for requests", type: "requests",
                                      code: "rate_limit_exceeded", headers: h)
    }

    /// `6m0s`, `1.5s`, `12ms` — the way OpenAI (Go) writes durations.
    public static func goDuration(_ seconds: Double) -> String {
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 { return String(format: "%.3gs", seconds) }
        let m = Int(seconds / 60)
        return "\(m)m\(Int(seconds - Double(m) * 60))s"
    }
}

extension MockOpenAIServer {
    /// Prompt tokens the mock charges for a request body: bytes / 4.
    public static func promptTokens(_ request: Request) -> Int { max(1, request.body.count / 4) }

    /// A canned LLaVA-style answer (parses as conversation, reasoning and detail samples).
    public static let sampleAnswer = """
        Question:
        What is the dog doing in the picture?
        ===
        Answer:
        The dog is standing on the grass near the left edge of the picture, looking toward the camera.
        ===
        Question:
        How many dogs are there?
        ===
        Answer:
        There is one dog.
        ===
        """

    /// One question and answer (the `reasoning` layout).
    public static let singleAnswer = """
        Question:
        Why might the dog be standing so still?
        ===
        Answer:
        The dog is probably waiting for its owner to throw a ball: its ears are up, it faces the camera and its body leans forward, which is how dogs wait for a game to start.
        """

    /// A plain description (the `detail` layout).
    public static let descriptionAnswer = """
        A brown dog stands on a lawn near the left edge of the picture, looking toward the camera. Behind it a wooden fence runs across the whole scene, and a red ball lies in the grass in front of its paws.
        """

    /// The answer layout a request asks for, judged from its system message (the repository's
    /// prompts): description for `detail`, one Q/A for `reasoning`, else a conversation.
    public static func answer(for request: Request) -> String {
        let head = request.body.prefix(700)
        if head.range(of: Data("detailed description".utf8)) != nil { return descriptionAnswer }
        if head.range(of: Data("real reasoning".utf8)) != nil { return singleAnswer }
        return sampleAnswer
    }

    /// A fast handler for benchmarks: an answer in the layout the type wants (see
    /// `answer(for:)`) after `latency`, optionally under a `MockRateLimit`.
    public static func benchmarkHandler(latency: Double, limit: MockRateLimit? = nil) -> @Sendable (Request) -> Action {
        // Answers differ only in their layout and their prompt tokens: encode each pair once
        // (the mock shares the benchmark's cores; JSON encoding per request was its hot spot).
        let cache = CompletionCache()
        return { request in
            guard request.path == "/v1/chat/completions" else {
                return error(status: 404, message: "Unknown request URL: \(request.method) \(request.path)", code: "unknown_url")
            }
            let body = answer(for: request)
            let completionTokens = max(1, body.utf8.count / 4)
            let prompt = promptTokens(request)
            var headers: [String: String] = ["x-request-id": "req-mock"]
            if let limit {
                let verdict = limit.admit(tokens: prompt + completionTokens)
                guard verdict.allowed else { return limit.rejection(headers: verdict.headers, wait: verdict.wait) }
                headers.merge(verdict.headers) { $1 }
            }
            let data = cache.body(content: body, promptTokens: prompt, completionTokens: completionTokens)
            return .respond(status: 200, headers: headers, body: data, delay: latency)
        }
    }
}

/// Encoded `completion(...)` bodies by (content, prompt tokens, completion tokens).
final class CompletionCache: @unchecked Sendable {
    private struct Key: Hashable {
        var content: String
        var prompt: Int
        var completion: Int
    }
    private let lock = NSLock()
    private var bodies: [Key: Data] = [:]

    func body(content: String, promptTokens: Int, completionTokens: Int) -> Data {
        let key = Key(content: content, prompt: promptTokens, completion: completionTokens)
        lock.lock()
        if let hit = bodies[key] { lock.unlock(); return hit }
        lock.unlock()
        guard case .respond(_, _, let data, _) = MockOpenAIServer.completion(
            content: content, promptTokens: promptTokens, completionTokens: completionTokens) else { return Data() }
        lock.lock()
        if bodies.count < 100_000 { bodies[key] = data }
        lock.unlock()
        return data
    }
}
