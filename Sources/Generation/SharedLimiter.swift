import Foundation
import LLMClient

/// How many LLM requests may be in flight at once across several Generators. A Generator
/// leases slots before it starts sending and returns them when done; a lease is at most the
/// fair share (total / participants) so concurrent branches split the budget instead of the
/// first one taking it all. The sum of the leases never exceeds `total`.
public final class RequestBudget: @unchecked Sendable {
    public let total: Int
    private let cond = NSCondition()
    private var free: Int
    private var _participants = 1

    public init(total: Int) { self.total = max(1, total); free = max(1, total) }

    /// Generators expected to send at the same time (sets the fair share).
    public var participants: Int {
        get { cond.lock(); defer { cond.unlock() }; return _participants }
        set { cond.lock(); _participants = max(1, newValue); cond.unlock() }
    }

    /// Slots not leased right now.
    public var available: Int { cond.lock(); defer { cond.unlock() }; return free }

    /// Blocks until at least one slot is free; takes up to min(wanted, fair share) slots.
    public func acquire(wanted: Int) -> Int {
        cond.lock(); defer { cond.unlock() }
        let share = max(1, min(wanted, total / _participants))
        while free < 1 { cond.wait() }
        let n = min(share, free)
        free -= n
        return n
    }

    public func release(_ n: Int) {
        cond.lock(); free += n; cond.broadcast(); cond.unlock()
    }
}

/// What several Generators in one process share when they talk to one server: one pacing
/// state (RPM/TPM buckets, the server's `x-ratelimit-*` adaption and the pause after a 429)
/// and one in-flight budget. Set it as `GenerateOptions.sharedLimiter` on each of them; their
/// own `requestsPerMinute`/`tokensPerMinute` are then ignored and `concurrency` is only what
/// each asks of the budget.
public final class SharedLimiter: @unchecked Sendable {
    public let rate: RateLimitGroup
    public let budget: RequestBudget

    public init(maxInFlight: Int, requestsPerMinute: Double? = nil, tokensPerMinute: Double? = nil) {
        rate = RateLimitGroup(requestsPerMinute: requestsPerMinute, tokensPerMinute: tokensPerMinute)
        budget = RequestBudget(total: maxInFlight)
    }

    /// A pacing state of its own over a budget shared with other limiters (other servers).
    public init(rate: RateLimitGroup, budget: RequestBudget) {
        self.rate = rate
        self.budget = budget
    }
}
