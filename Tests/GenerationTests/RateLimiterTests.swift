import Foundation
import LLMClient
import XCTest

/// Buckets, header adaption, durations and the retry rules, on a virtual clock.
final class RateLimiterTests: XCTestCase {
    func testDurations() {
        XCTAssertEqual(RateLimiter.parseDuration("6m0s"), 360)
        XCTAssertEqual(RateLimiter.parseDuration("1s"), 1)
        XCTAssertEqual(RateLimiter.parseDuration("12ms")!, 0.012, accuracy: 1e-12)
        XCTAssertEqual(RateLimiter.parseDuration("0.5s"), 0.5)
        XCTAssertEqual(RateLimiter.parseDuration("1h2m3.5s"), 3723.5)
        XCTAssertEqual(RateLimiter.parseDuration("250us")!, 0.00025, accuracy: 1e-12)
        XCTAssertEqual(RateLimiter.parseDuration("20"), 20)
        XCTAssertNil(RateLimiter.parseDuration("soon"))
        XCTAssertNil(RateLimiter.parseDuration("5x"))
        XCTAssertNil(RateLimiter.parseDuration(""))
    }

    func testRequestBucketPacesAtTheRate() {
        let t0 = 1000.0
        let limiter = RateLimiter(limits: RateLimits(requestsPerMinute: 120), now: t0)  // 2/s, holds 2
        XCTAssertEqual(limiter.delay(tokenCost: 1, now: t0), 0)
        limiter.consume(tokenCost: 1, now: t0)
        limiter.consume(tokenCost: 1, now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 1, now: t0), 0.5, accuracy: 1e-9)
        XCTAssertEqual(limiter.delay(tokenCost: 1, now: t0 + 0.5), 0, accuracy: 1e-9)
    }

    /// Two engines' limiters on one group spend one bucket; a passing `delay` takes the
    /// request's share at once, so the other limiter sees it before any `consume`.
    func testLimitersOfOneGroupShareTheBuckets() {
        let t0 = 1000.0
        let group = RateLimitGroup(requestsPerMinute: 120, now: t0)  // 2/s, holds 2
        let a = RateLimiter(limits: RateLimits(requestsPerMinute: 6000, group: group), now: t0)
        let b = RateLimiter(limits: RateLimits(group: group), now: t0)
        XCTAssertTrue(a.isShared)
        XCTAssertEqual(a.limits.requestsPerMinute, 120, "the group's limits rule, not the RateLimits' own")
        XCTAssertEqual(a.delay(tokenCost: 1, now: t0), 0)
        XCTAssertEqual(a.delay(tokenCost: 1, now: t0), 0, "a held reservation is not taken twice")
        XCTAssertEqual(b.delay(tokenCost: 1, now: t0), 0)
        let c = RateLimiter(limits: RateLimits(group: group), now: t0)
        XCTAssertEqual(c.delay(tokenCost: 1, now: t0), 0.5, accuracy: 1e-9, "a's and b's reservations spent the bucket")
        a.consume(tokenCost: 1, now: t0)  // confirms a's reservation, takes nothing more
        b.consume(tokenCost: 1, now: t0)
        XCTAssertEqual(c.delay(tokenCost: 1, now: t0), 0.5, accuracy: 1e-9)
        c.consume(tokenCost: 1, now: t0)  // c held no reservation: this one is taken now
        XCTAssertEqual(c.delay(tokenCost: 1, now: t0), 1.0, accuracy: 1e-9)
        a.pause(until: t0 + 5)
        XCTAssertEqual(b.pausedUntil, t0 + 5, "a 429 seen by one engine pauses the other")
        let alone = RateLimiter(limits: RateLimits(requestsPerMinute: 120), now: t0)
        XCTAssertFalse(alone.isShared)
        XCTAssertEqual(alone.delay(tokenCost: 1, now: t0), 0)
        XCTAssertEqual(alone.delay(tokenCost: 1, now: t0), 0, "without a group delay takes nothing")
    }

    func testTokenBucketEstimateAndCorrection() {
        let t0 = 50.0
        let limiter = RateLimiter(limits: RateLimits(tokensPerMinute: 6000), now: t0)  // 100/s, holds 100
        limiter.consume(tokenCost: 100, now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 50, now: t0), 0.5, accuracy: 1e-9)
        // usage says it cost 150, not 100: 50 more to wait for.
        limiter.correct(estimated: 100, actual: 150, now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 50, now: t0), 1.0, accuracy: 1e-9)
        // A request bigger than the bucket waits for a full bucket, then goes.
        XCTAssertEqual(limiter.delay(tokenCost: 500, now: t0), 1.5, accuracy: 1e-9)
        XCTAssertEqual(RateLimiter.estimatePromptTokens(bodyBytes: 4000), 1000)
        XCTAssertEqual(RateLimiter.estimatePromptTokens(bodyBytes: 4000, scale: 0.5), 500)
    }

    func testHeadersLowerLimitsAndBlockUntilReset() {
        let t0 = 10.0
        let limiter = RateLimiter(limits: RateLimits(requestsPerMinute: 6000), now: t0)
        // No configured TPM: learned from the header; a lower RPM replaces ours, a higher one does not.
        limiter.observe(headers: ["x-ratelimit-limit-requests": "600", "x-ratelimit-limit-tokens": "150000",
                                  "x-ratelimit-remaining-requests": "599", "x-ratelimit-remaining-tokens": "149000"], now: t0)
        XCTAssertEqual(limiter.limits.requestsPerMinute, 600)
        XCTAssertEqual(limiter.limits.tokensPerMinute, 150000)
        limiter.observe(headers: ["x-ratelimit-limit-requests": "100000"], now: t0)
        XCTAssertEqual(limiter.limits.requestsPerMinute, 6000, "a server may raise its limit up to, never beyond, ours")
        // Nothing left until the reset: every sender waits for it.
        limiter.observe(headers: ["x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"], now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 1, now: t0), 360, accuracy: 1e-6)
        limiter.observe(headers: ["x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "12ms"], now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 1, now: t0 + 360), 0, accuracy: 0.02)
    }

    /// Eight requests go out before any answer; the first answer's `remaining` was counted
    /// before the other seven reached the server, so they are subtracted from it.
    func testRemainingCountsExcludeWhatWasSentAfterTheAnsweredRequest() {
        let t0 = 10.0
        let limiter = RateLimiter(limits: RateLimits(), now: t0)  // no limits known yet
        let marks = (0..<8).map { _ in limiter.consume(tokenCost: 10, now: t0) }
        XCTAssertEqual(marks.map { $0.requests }, Array(1...8))
        XCTAssertEqual(marks.last?.tokens, 80)
        // The server holds 20 (1,200 RPM over 1 s) and had 19 left after the first request.
        limiter.observe(headers: ["x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "19"],
                        mark: marks[0], now: t0)
        XCTAssertEqual(limiter.limits.requestsPerMinute, 1200)
        for _ in 0..<12 {
            XCTAssertEqual(limiter.delay(tokenCost: 10, now: t0), 0)
            limiter.consume(tokenCost: 10, now: t0)
        }
        XCTAssertEqual(limiter.delay(tokenCost: 10, now: t0), 0.05, accuracy: 1e-9, "19 − 7 in flight = 12, then one per 50 ms")
        // The last of the first eight answers (remaining 12) changes nothing: the twelve sent
        // after it are already spent here.
        limiter.observe(headers: ["x-ratelimit-remaining-requests": "12"], mark: marks[7], now: t0)
        XCTAssertEqual(limiter.delay(tokenCost: 10, now: t0), 0.05, accuracy: 1e-9)
        // Without the mark the same header would have let twelve more go at once.
    }

    func testPauseAfter429HoldsEverySender() {
        let limiter = RateLimiter(limits: .none, now: 0)
        XCTAssertEqual(limiter.delay(tokenCost: 10, now: 0), 0)
        limiter.pause(until: 2.5)
        XCTAssertEqual(limiter.delay(tokenCost: 10, now: 1), 1.5, accuracy: 1e-9)
        XCTAssertEqual(limiter.delay(tokenCost: 10, now: 3), 0)
    }

    func testRetryDecisionsByClass() {
        let policy = RetryPolicy(maxRetries: 2, backoffBase: 0.5, backoffCap: 4, budget: 100)
        for status in [408, 409, 429, 500, 502, 503] {
            guard case .retry = policy.decide(.http(status: status, message: "x"), retriesSoFar: 0) else { return XCTFail("\(status) is retried") }
        }
        for status in [400, 401, 403, 404, 422] {
            XCTAssertEqual(policy.decide(.http(status: status, message: "x"), retriesSoFar: 0), .fail, "\(status) fails the request")
        }
        XCTAssertEqual(policy.decide(.quotaExhausted(message: "q"), retriesSoFar: 0), .stopRun)
        let fresh = RetryPolicy(maxRetries: 2, backoffBase: 0.5, backoffCap: 4, budget: 2)
        XCTAssertNotEqual(fresh.decide(.transport(code: 56, message: "reset"), retriesSoFar: 0), .fail)
        XCTAssertEqual(fresh.decide(.transport(code: 28, message: "timeout"), retriesSoFar: 2), .fail, "per-request cap")
        XCTAssertNotEqual(fresh.decide(.transport(code: 28, message: "timeout"), retriesSoFar: 1), .fail)
        XCTAssertEqual(fresh.decide(.transport(code: 56, message: "reset"), retriesSoFar: 0), .fail, "global budget spent")
        XCTAssertNotEqual(fresh.decide(.http(status: 429, message: "slow"), retriesSoFar: 5), .fail, "429 pacing is not budgeted")
        XCTAssertEqual(fresh.decide(.transport(code: 60, message: "cert"), retriesSoFar: 0), .fail, "TLS verification is not retried")
        // Full jitter stays within [0, min(cap, base·2^n)]; Retry-After wins.
        for n in 0..<8 {
            let d = policy.delay(retry: n, retryAfter: nil)
            XCTAssertGreaterThanOrEqual(d, 0)
            XCTAssertLessThanOrEqual(d, min(4, 0.5 * pow(2, Double(n))))
        }
        let asked = policy.delay(retry: 0, retryAfter: 3)
        XCTAssertGreaterThanOrEqual(asked, 3)
        XCTAssertLessThanOrEqual(asked, 3.3)
        XCTAssertEqual(FailureClass.of(.transport(code: 28, message: "")), .timeout)
        XCTAssertEqual(FailureClass.of(.transport(code: 6, message: "")), .connection)
        XCTAssertEqual(FailureClass.of(.http(status: 503, message: "")), .server)
    }
}
