import ForgeCore
import Foundation
import LLMClient
import MockOpenAI
import XCTest

/// The multi-interface engine against the loopback mock: every fault class ends in a definite
/// outcome (retried and succeeded, failed with the server's reason, or the run stopped).
final class ChatEngineTests: XCTestCase {
    private func startServer(_ handler: @escaping @Sendable (MockOpenAIServer.Request) -> MockOpenAIServer.Action) throws -> MockOpenAIServer {
        let server = try MockOpenAIServer(handler: handler)
        try server.start()
        addTeardownBlock { server.stop() }
        return server
    }

    private func config(_ url: String, key: String? = nil, retries: Int = 3, timeout: Double = 5, stall: Double = 120) -> ClientConfig {
        ClientConfig(baseURL: url, apiKey: key, connectTimeout: 2, requestTimeout: timeout, maxRetries: retries,
                     backoffBase: 0.01, backoffCap: 0.05, stallTimeout: stall)
    }

    private func body(_ i: Int) -> Data {
        ChatRequest(model: "m", messages: [.user("job \(i)")], params: SamplingParams(maxTokens: 50)).bodyJSON()
    }

    /// Runs `count` jobs; outcomes by job id.
    private func run(_ cfg: ClientConfig, count: Int, options: EngineOptions = EngineOptions()) throws -> ([Int64: ChatOutcome], EngineReport) {
        let engine = try ChatEngine(config: cfg, options: options)
        var next = 0
        var outcomes: [Int64: ChatOutcome] = [:]
        let report = engine.run(next: {
            guard next < count else { return nil }
            next += 1
            return ChatJob(id: Int64(next), body: self.body(next), maxTokens: 50)
        }, deliver: { o in
            XCTAssertNil(outcomes[o.jobID], "each job is delivered once")
            outcomes[o.jobID] = o
        })
        return (outcomes, report)
    }

    // MARK: - Throughput and reuse

    func testConcurrentTransfersShareConnections() throws {
        let server = try startServer { r in
            guard case .respond(let s, let h, let b, _) = MockOpenAIServer.completion(content: "ok") else { return .closeConnection }
            _ = r
            return .respond(status: s, headers: h, body: b, delay: 0.1)
        }
        let started = Date()
        let (outcomes, report) = try run(config(server.baseURL), count: 40, options: EngineOptions(concurrency: 10))
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(outcomes.count, 40)
        XCTAssertTrue(outcomes.values.allSatisfy { (try? $0.result.get().content) == "ok" })
        XCTAssertLessThan(elapsed, 1.5, "40 × 100 ms at concurrency 10 is ≈ 0.4 s when transfers overlap")
        XCTAssertLessThanOrEqual(server.connectionCount, 10, "keep-alive connections are reused")
        XCTAssertEqual(report.httpVersion, 11, "plain http is HTTP/1.1")
        XCTAssertEqual(report.attempts, 40)
    }

    // MARK: - Retried and succeeded

    func testRetryableClassesAreRetriedAndSucceed() throws {
        // Per job: the first attempt fails with a fault chosen by the job number, the second succeeds.
        let seen = Tally()
        let server = try startServer { r in
            let text = String(decoding: r.body, as: UTF8.self)
            guard let n = Int(text.components(separatedBy: "job ").last?.prefix { $0.isNumber } ?? "") else { return .closeConnection }
            if seen.bump("\(n)") > 1 { return MockOpenAIServer.completion(content: "fine \(n)") }
            switch n % 7 {
            case 0: return MockOpenAIServer.html(status: 500)
            case 1: return MockOpenAIServer.html(status: 502)
            case 2: return .closeConnection
            case 3: return MockOpenAIServer.error(status: 408, message: "timeout")
            case 4: return MockOpenAIServer.error(status: 409, message: "conflict")
            case 5: return MockOpenAIServer.error(status: 429, message: "slow down", type: "requests", code: "rate_limit_exceeded")
            default: return .respond(status: 200, headers: [:], body: Data("{not json".utf8))
            }
        }
        let (outcomes, report) = try run(config(server.baseURL), count: 14, options: EngineOptions(concurrency: 4))
        XCTAssertEqual(outcomes.count, 14)
        for (id, o) in outcomes {
            XCTAssertEqual(try o.result.get().content, "fine \(id)")
            // A reset on a reused keep-alive connection is resent by libcurl itself once (no
            // byte of the answer had arrived), so those may count as one attempt here.
            if id % 7 == 2 { XCTAssertTrue((1...2).contains(o.attempts)) } else { XCTAssertEqual(o.attempts, 2) }
        }
        XCTAssertEqual(server.requestCount, 28, "every job: one failed attempt, one success")
        XCTAssertEqual(report.retriesByClass["server_5xx"], 4)
        XCTAssertTrue((1...2).contains(report.retriesByClass["connection"] ?? 0))
        XCTAssertEqual(report.retriesByClass["http_408"], 2)
        XCTAssertEqual(report.retriesByClass["http_409"], 2)
        XCTAssertEqual(report.retriesByClass["rate_limited"], 2)
        XCTAssertEqual(report.retriesByClass["malformed"], 2)
        XCTAssertNil(report.stoppedReason)
    }

    func testRetryAfterPausesEverySender() throws {
        // The first answer is a 429 asking for 400 ms; nothing else may arrive before that.
        let arrivals = Arrivals()
        let server = try startServer { _ in
            if arrivals.record() == 1 {
                return MockOpenAIServer.error(status: 429, message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded",
                                              headers: ["retry-after-ms": "400"])
            }
            return MockOpenAIServer.completion(content: "ok")
        }
        let (outcomes, _) = try run(config(server.baseURL), count: 6, options: EngineOptions(concurrency: 1))
        XCTAssertEqual(outcomes.count, 6)
        let times = arrivals.times
        XCTAssertEqual(times.count, 7)
        XCTAssertGreaterThanOrEqual(times[1] - times[0], 0.39, "the pause honours retry-after-ms")
    }

    func testRetryAfterSecondsAndHTTPDate() throws {
        let arrivals = Arrivals()
        let date = Date().addingTimeInterval(2)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let httpDate = formatter.string(from: date)
        let server = try startServer { _ in
            switch arrivals.record() {
            case 1: return MockOpenAIServer.error(status: 429, message: "busy", headers: ["Retry-After": "1"])
            case 2: return MockOpenAIServer.error(status: 503, message: "busy", headers: ["Retry-After": httpDate])
            default: return MockOpenAIServer.completion(content: "ok")
            }
        }
        let (outcomes, _) = try run(config(server.baseURL), count: 1)
        XCTAssertEqual(try outcomes[1]?.result.get().content, "ok")
        let t = arrivals.times
        XCTAssertGreaterThanOrEqual(t[1] - t[0], 0.95, "Retry-After: 1 → one second")
        XCTAssertGreaterThanOrEqual(t[2] - t[0], 1.0, "Retry-After as an HTTP date waits until then")
    }

    // MARK: - Failed with the server's reason

    func testClientErrorsFailOnceWithTheServerMessage() throws {
        let server = try startServer { r in
            let text = String(decoding: r.body, as: UTF8.self)
            if text.contains("job 1\"") { return MockOpenAIServer.error(status: 400, message: "Invalid 'messages': too long", headers: ["x-request-id": "req-400"]) }
            if text.contains("job 2\"") { return MockOpenAIServer.error(status: 403, message: "Country not supported") }
            if text.contains("job 3\"") { return MockOpenAIServer.error(status: 404, message: "The model `m` does not exist", code: "model_not_found") }
            return MockOpenAIServer.completion(content: "ok")
        }
        let (outcomes, report) = try run(config(server.baseURL), count: 4)
        XCTAssertEqual(server.requestCount, 4, "4xx answers are not retried")
        XCTAssertEqual(outcomes[1]?.failureClass, .badRequest)
        XCTAssertEqual(outcomes[1]?.serverRequestID, "req-400")
        guard case .failure(let e1)? = outcomes[1]?.result else { return XCTFail("job 1 should fail") }
        XCTAssertTrue("\(e1)".contains("HTTP 400: Invalid 'messages': too long"), "\(e1)")
        XCTAssertEqual(outcomes[2]?.failureClass, .forbidden)
        XCTAssertEqual(outcomes[3]?.failureClass, .notFound)
        guard case .failure(let e3)? = outcomes[3]?.result else { return XCTFail("job 3 should fail") }
        XCTAssertTrue("\(e3)".contains("does not exist"))
        XCTAssertEqual(try outcomes[4]?.result.get().content, "ok")
        XCTAssertEqual(report.failuresByClass, ["http_400": 1, "http_403": 1, "http_404": 1])
    }

    func testPersistentHTMLFailureAndStallEndAsFailures() throws {
        let server = try startServer { r in
            String(decoding: r.body, as: UTF8.self).contains("job 1\"") ? MockOpenAIServer.html(status: 502) : .stall(seconds: 5)
        }
        let started = Date()
        let (outcomes, report) = try run(config(server.baseURL, retries: 1, timeout: 0.6), count: 2)
        XCTAssertLessThan(Date().timeIntervalSince(started), 4)
        guard case .failure(let e1)? = outcomes[1]?.result else { return XCTFail("502 should fail") }
        XCTAssertEqual(outcomes[1]?.attempts, 2)
        XCTAssertTrue("\(e1)".contains("502 Bad Gateway"), "HTML reduced to its text: \(e1)")
        XCTAssertEqual(outcomes[2]?.failureClass, .timeout)
        XCTAssertEqual(report.retriesByClass["timeout"], 1)
    }

    func testStallIsDetectedByTheLowSpeedLimit() throws {
        // Nothing arrives: the stall timeout ends it long before the 30 s total timeout. libcurl
        // averages speed over a ~5 s window, so "1 s below 1 byte/s" fires after about 6 s.
        let stalling = try startServer { _ in .stall(seconds: 10) }
        let started = Date()
        let (outcomes, _) = try run(config(stalling.baseURL, retries: 0, timeout: 30, stall: 1), count: 1)
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        XCTAssertEqual(outcomes[1]?.failureClass, .timeout)
    }

    // MARK: - Run stopped

    func testQuotaStopsTheRunAndDeliversWhatIsInFlight() throws {
        let count = Tally()
        let server = try startServer { _ in
            if count.bump("n") == 3 {
                return MockOpenAIServer.error(status: 429, message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota")
            }
            guard case .respond(let s, let h, let b, _) = MockOpenAIServer.completion(content: "ok") else { return .closeConnection }
            return .respond(status: s, headers: h, body: b, delay: 0.05)
        }
        let (outcomes, report) = try run(config(server.baseURL), count: 50, options: EngineOptions(concurrency: 2))
        XCTAssertTrue(report.stoppedReason?.contains("quota") ?? false, "\(String(describing: report.stoppedReason))")
        XCTAssertLessThan(server.requestCount, 10, "no new requests after the quota error")
        XCTAssertEqual(outcomes.values.filter { $0.failureClass == .quota }.count, 1)
        XCTAssertEqual(outcomes.count, server.requestCount, "everything sent was delivered")
    }

    func testWrongKeyStopsTheRunWithTheCauseAndRequestID() throws {
        let server = try startServer { _ in
            MockOpenAIServer.error(status: 401, message: "Incorrect API key provided: sk-wro****", type: "invalid_request_error",
                                   code: "invalid_api_key", headers: ["x-request-id": "req-401"])
        }
        let (outcomes, report) = try run(config(server.baseURL, key: "sk-wrong-key-123"), count: 100,
                                         options: EngineOptions(concurrency: 2, circuitBreaker: 5))
        let reason = try XCTUnwrap(report.stoppedReason)
        XCTAssertTrue(reason.contains("HTTP 401: Incorrect API key"), reason)
        XCTAssertTrue(reason.contains("x-request-id req-401"), reason)
        XCTAssertLessThan(outcomes.count, 10)
        XCTAssertFalse(reason.contains("sk-wrong-key-123"))
    }

    func testUnreachableServerAndDNSFailureStopWithTransportCause() throws {
        // A port nobody listens on.
        let closed = try MockOpenAIServer()
        let url = closed.baseURL
        closed.stop()
        let (o1, r1) = try run(config(url, retries: 1), count: 20, options: EngineOptions(concurrency: 2, circuitBreaker: 3))
        XCTAssertTrue(r1.stoppedReason?.contains("curl 7") ?? false, "\(String(describing: r1.stoppedReason))")
        XCTAssertTrue(o1.values.allSatisfy { $0.failureClass == .connection && $0.attempts == 2 })

        let (o2, r2) = try run(config("http://no-such-host.invalid/v1", retries: 0), count: 5, options: EngineOptions(concurrency: 1, circuitBreaker: 3))
        XCTAssertTrue(r2.stoppedReason?.contains("curl 6") ?? false, "DNS failure is named: \(String(describing: r2.stoppedReason))")
        XCTAssertEqual(o2.count, 3)
    }

    func testTLSFailureNamesTheCause() throws {
        // https to a plain-http port: the handshake fails; the class and curl's words say so.
        let server = try startServer { _ in MockOpenAIServer.completion(content: "never") }
        let url = server.baseURL.replacingOccurrences(of: "http://", with: "https://")
        let (outcomes, report) = try run(config(url, retries: 0), count: 3, options: EngineOptions(concurrency: 1, circuitBreaker: 3))
        XCTAssertTrue(outcomes.values.allSatisfy { $0.failureClass == .tls }, "\(outcomes.values.map { $0.result })")
        XCTAssertTrue(report.stoppedReason?.contains("curl 35") ?? false, "\(String(describing: report.stoppedReason))")
    }

    func testGlobalRetryBudgetCapsRetries() throws {
        let server = try startServer { _ in MockOpenAIServer.html(status: 503) }
        let (outcomes, report) = try run(config(server.baseURL, retries: 5), count: 10,
                                         options: EngineOptions(concurrency: 2, retryBudget: 4, circuitBreaker: 0))
        XCTAssertEqual(outcomes.count, 10)
        XCTAssertEqual(report.retriesByClass["server_5xx"], 4, "the run-wide budget, not 10 × 5")
        XCTAssertEqual(server.requestCount, 14)
    }

    // MARK: - Rate limits

    func testAdaptsToRateLimitHeadersWithFewRejections() throws {
        // 1,200 RPM (20/s) enforced over 1 s of burst; 45 requests need ≈ 1.2 s and must not be
        // hammered into 429s: the engine learns the limit from the first answers' headers.
        let limit = MockRateLimit(requestsPerMinute: 1200, tokensPerMinute: 10_000_000, burstSeconds: 1)
        let server = try startServer(MockOpenAIServer.benchmarkHandler(latency: 0, limit: limit))
        let started = Date()
        let (outcomes, report) = try run(config(server.baseURL), count: 45, options: EngineOptions(concurrency: 8))
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(outcomes.values.filter { (try? $0.result.get()) != nil }.count, 45)
        XCTAssertLessThanOrEqual(limit.counts.rejected, 3, "429s: \(limit.counts.rejected)")
        XCTAssertGreaterThan(elapsed, 1.0, "paced near 20/s")
        XCTAssertLessThan(elapsed, 3.5)
        XCTAssertEqual(report.http429, limit.counts.rejected)
    }

    func testConfiguredRequestBudgetPacesRequests() throws {
        let server = try startServer(MockOpenAIServer.benchmarkHandler(latency: 0))
        // 120 RPM = 2/s with a one-second bucket: 2 at once, then one every 0.5 s.
        let started = Date()
        let (outcomes, _) = try run(config(server.baseURL), count: 5,
                                    options: EngineOptions(concurrency: 4, limits: RateLimits(requestsPerMinute: 120)))
        XCTAssertEqual(outcomes.count, 5)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertGreaterThan(elapsed, 1.4)
        XCTAssertLessThan(elapsed, 2.5)
    }
}

/// Counts by key, shared across the mock's connection threads.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    func bump(_ key: String) -> Int { lock.lock(); defer { lock.unlock() }; counts[key, default: 0] += 1; return counts[key]! }
}

/// Arrival times of requests at the mock.
final class Arrivals: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Double] = []
    func record() -> Int {
        lock.lock(); defer { lock.unlock() }
        list.append(Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
        return list.count
    }
    var times: [Double] { lock.lock(); defer { lock.unlock() }; return list }
}
