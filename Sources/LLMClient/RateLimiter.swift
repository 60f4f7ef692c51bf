import Foundation

/// Requests-per-minute and tokens-per-minute budgets; `nil` means "no limit known yet".
public struct RateLimits: Sendable, Equatable {
    public var requestsPerMinute: Double?
    public var tokensPerMinute: Double?
    /// When set, every `RateLimiter` built from these limits paces against this one shared
    /// state (several engines, e.g. the concurrent generate branches of a pipeline, under one
    /// budget); `requestsPerMinute`/`tokensPerMinute` here are then ignored (the group's rule).
    public var group: RateLimitGroup?

    public init(requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil, group: RateLimitGroup? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.group = group
    }

    public static let none = RateLimits()
}

/// A continuously refilled token bucket. Capacity is one second's worth of the rate (at least
/// one unit), so the sender never bursts far ahead of a server that enforces the same rate over
/// a short window; a request bigger than the capacity goes out once the bucket is full and
/// drives the level negative (it then waits for the debt to refill).
struct TokenBucket {
    private(set) var perSecond: Double
    private(set) var capacity: Double
    private(set) var level: Double
    private var last: Double
    /// No sending before this (a server said the budget is spent until its reset).
    var blockedUntil: Double = 0

    init(perMinute: Double, now: Double) {
        perSecond = max(perMinute, 1e-9) / 60
        capacity = max(1, perSecond)
        level = capacity
        last = now
    }

    mutating func setRate(perMinute: Double, now: Double) {
        refill(now)
        perSecond = max(perMinute, 1e-9) / 60
        capacity = max(1, perSecond)
        level = min(level, capacity)
    }

    mutating func refill(_ now: Double) {
        if now > last {
            level = min(capacity, level + (now - last) * perSecond)
            last = now
        }
    }

    /// Seconds until `amount` may be taken (0 = now).
    mutating func wait(for amount: Double, now: Double) -> Double {
        refill(now)
        var delay = max(0, blockedUntil - now)
        let needed = min(amount, capacity)
        if level < needed { delay = max(delay, (needed - level) / perSecond) }
        return delay
    }

    mutating func take(_ amount: Double, now: Double) {
        refill(now)
        level -= amount
    }

    /// A server-reported remaining budget: never believe we have more than it says.
    mutating func clamp(remaining: Double, now: Double) {
        refill(now)
        level = min(level, remaining)
    }
}

/// How much had been sent when one request went out (its own share included).
public struct SendMark: Sendable, Equatable {
    public var requests: Int
    public var tokens: Double
}

/// The pacing shared by every sender of one run: an RPM bucket, a TPM bucket (prompt tokens
/// estimated before the call, corrected from `usage` after), live adaption from the
/// `x-ratelimit-*` headers, and a global pause after a 429.
///
/// Not thread-safe: `RateLimiter` locks around it.
final class RateLimiterCore {
    var limits: RateLimits
    /// Limits given by the user: headers may lower them but never raise them.
    private let configured: RateLimits
    private var requests: TokenBucket?
    private var tokens: TokenBucket?
    /// Every sender waits until then (after a 429).
    var pausedUntil: Double = 0
    /// Requests and estimated tokens sent so far (with or without buckets): an answer's
    /// `remaining-*` counts were computed before the requests sent after it reached the server,
    /// so those are subtracted when clamping.
    private var sent = SendMark(requests: 0, tokens: 0)

    init(limits: RateLimits, now: Double) {
        self.limits = limits
        self.configured = limits
        if let r = limits.requestsPerMinute { requests = TokenBucket(perMinute: r, now: now) }
        if let t = limits.tokensPerMinute { tokens = TokenBucket(perMinute: t, now: now) }
    }

    /// Seconds until a request estimated at `tokenCost` tokens may be sent (0 = now).
    func delay(tokenCost: Int, now: Double = RateLimiter.now()) -> Double {
        var d = max(0, pausedUntil - now)
        if var r = requests { d = max(d, r.wait(for: 1, now: now)); requests = r }
        if var t = tokens { d = max(d, t.wait(for: Double(tokenCost), now: now)); tokens = t }
        return d
    }

    /// Records a request going out; the mark lets its answer's headers be read in order.
    @discardableResult
    func consume(tokenCost: Int, now: Double = RateLimiter.now()) -> SendMark {
        requests?.take(1, now: now)
        tokens?.take(Double(tokenCost), now: now)
        sent.requests += 1
        sent.tokens += Double(tokenCost)
        return sent
    }

    /// Adjusts the token bucket once the server reports what a request really cost.
    func correct(estimated: Int, actual: Int, now: Double = RateLimiter.now()) {
        guard tokens != nil, actual >= 0 else { return }
        tokens!.take(Double(actual - estimated), now: now)
    }

    /// Every sender waits at least until `until` (a 429 answer).
    func pause(until: Double) { pausedUntil = max(pausedUntil, until) }

    /// Learns from `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*`.
    /// A lower server limit replaces the configured one; remaining counts clamp the buckets;
    /// a remaining count of 0 blocks that bucket until its reset. `mark` (from `consume`) is
    /// when the answered request went out: what was sent after it is not in its counts yet.
    func observe(headers: [String: String], mark: SendMark? = nil, now: Double = RateLimiter.now()) {
        let sentAfterRequests = mark.map { Double(sent.requests - $0.requests) } ?? 0
        let sentAfterTokens = mark.map { sent.tokens - $0.tokens } ?? 0
        func number(_ name: String) -> Double? {
            guard let v = headers[name], let d = Double(v.trimmingCharacters(in: .whitespaces)), d.isFinite, d >= 0 else { return nil }
            return d
        }
        if let limit = number("x-ratelimit-limit-requests"), limit > 0 {
            let effective = min(limit, configured.requestsPerMinute ?? .infinity)
            if limits.requestsPerMinute != effective {
                limits.requestsPerMinute = effective
                if requests == nil { requests = TokenBucket(perMinute: effective, now: now) } else { requests!.setRate(perMinute: effective, now: now) }
            }
        }
        if let limit = number("x-ratelimit-limit-tokens"), limit > 0 {
            let effective = min(limit, configured.tokensPerMinute ?? .infinity)
            if limits.tokensPerMinute != effective {
                limits.tokensPerMinute = effective
                if tokens == nil { tokens = TokenBucket(perMinute: effective, now: now) } else { tokens!.setRate(perMinute: effective, now: now) }
            }
        }
        if let remaining = number("x-ratelimit-remaining-requests"), requests != nil {
            requests!.clamp(remaining: remaining - sentAfterRequests, now: now)
            if remaining < 1, let reset = headers["x-ratelimit-reset-requests"].flatMap(RateLimiter.parseDuration) {
                requests!.blockedUntil = max(requests!.blockedUntil, now + reset)
            }
        }
        if let remaining = number("x-ratelimit-remaining-tokens"), tokens != nil {
            tokens!.clamp(remaining: remaining - sentAfterTokens, now: now)
            if remaining < 1, let reset = headers["x-ratelimit-reset-tokens"].flatMap(RateLimiter.parseDuration) {
                tokens!.blockedUntil = max(tokens!.blockedUntil, now + reset)
            }
        }
    }
}

/// One pacing state several engines share (one process, one server): an RPM and a TPM bucket,
/// the header adaption and the 429 pause apply to all of them together.
public final class RateLimitGroup: @unchecked Sendable, Equatable {
    let core: RateLimiterCore
    let lock = NSLock()

    public init(requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil, now: Double = RateLimiter.now()) {
        core = RateLimiterCore(limits: RateLimits(requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute), now: now)
    }

    public var limits: RateLimits { lock.lock(); defer { lock.unlock() }; return core.limits }

    public static func == (a: RateLimitGroup, b: RateLimitGroup) -> Bool { a === b }
}

/// The engine's view of the pacing: its own state, or a `RateLimitGroup` shared with other
/// engines on other threads. Each instance is used by one event-loop thread.
///
/// With a group, `delay` returning 0 also takes the request's share of the buckets at once
/// (under the group's lock) and the following `consume` only confirms it, so two engines can
/// never both spend the last token between each other's check and take.
public final class RateLimiter {
    private let core: RateLimiterCore
    private let lock: NSLock?
    private var reserved: SendMark?

    public init(limits: RateLimits, now: Double = RateLimiter.now()) {
        if let g = limits.group {
            core = g.core
            lock = g.lock
        } else {
            core = RateLimiterCore(limits: limits, now: now)
            lock = nil
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock?.lock(); defer { lock?.unlock() }
        return body()
    }

    public var limits: RateLimits { locked { core.limits } }
    /// Every sender waits until then (after a 429).
    public var pausedUntil: Double { locked { core.pausedUntil } }
    /// True when this limiter paces against a shared group.
    public var isShared: Bool { lock != nil }

    /// Seconds until a request estimated at `tokenCost` tokens may be sent (0 = now).
    public func delay(tokenCost: Int, now: Double = RateLimiter.now()) -> Double {
        guard lock != nil else { return core.delay(tokenCost: tokenCost, now: now) }
        return locked {
            if reserved != nil { return 0 }
            let d = core.delay(tokenCost: tokenCost, now: now)
            if d == 0 { reserved = core.consume(tokenCost: tokenCost, now: now) }
            return d
        }
    }

    /// Records a request going out; pass the mark back to `observe` with its answer.
    @discardableResult
    public func consume(tokenCost: Int, now: Double = RateLimiter.now()) -> SendMark {
        locked {
            if let mark = reserved { reserved = nil; return mark }
            return core.consume(tokenCost: tokenCost, now: now)
        }
    }

    /// Adjusts the token bucket once the server reports what a request really cost.
    public func correct(estimated: Int, actual: Int, now: Double = RateLimiter.now()) {
        locked { core.correct(estimated: estimated, actual: actual, now: now) }
    }

    /// Every sender waits at least until `until` (a 429 answer).
    public func pause(until: Double) { locked { core.pause(until: until) } }

    /// Learns from `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*`.
    public func observe(headers: [String: String], mark: SendMark? = nil, now: Double = RateLimiter.now()) {
        locked { core.observe(headers: headers, mark: mark, now: now) }
    }

    /// Go-style durations as OpenAI sends them: `6m0s`, `1s`, `12ms`, `0.5s`, `1h2m3.5s`,
    /// `250us`; a bare number is seconds. Nil for anything else.
    public static func parseDuration(_ text: String) -> Double? {
        let s = Array(text.trimmingCharacters(in: .whitespaces).lowercased().utf8)
        guard !s.isEmpty else { return nil }
        if let plain = Double(String(decoding: s, as: UTF8.self)) { return plain.isFinite && plain >= 0 ? plain : nil }
        var total = 0.0
        var i = 0
        while i < s.count {
            let start = i
            while i < s.count, (s[i] >= 0x30 && s[i] <= 0x39) || s[i] == 0x2E { i += 1 }
            guard i > start, let value = Double(String(decoding: s[start..<i], as: UTF8.self)) else { return nil }
            let unitStart = i
            while i < s.count, !(s[i] >= 0x30 && s[i] <= 0x39), s[i] != 0x2E { i += 1 }
            let unit = String(decoding: s[unitStart..<i], as: UTF8.self)
            switch unit {
            case "h": total += value * 3600
            case "m": total += value * 60
            case "s": total += value
            case "ms": total += value / 1000
            case "us", "µs": total += value / 1_000_000
            case "ns": total += value / 1_000_000_000
            default: return nil
            }
        }
        return total
    }

    /// Monotonic seconds.
    public static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Prompt tokens guessed from the request body before sending: about 4 bytes of UTF-8 per
    /// token for English text, times `scale` (learned from `usage` by the engine).
    public static func estimatePromptTokens(bodyBytes: Int, scale: Double = 1) -> Int {
        max(1, Int((Double(bodyBytes) / 4 * scale).rounded(.up)))
    }
}
