import ForgeCore
import ForgeTestSupport
import Foundation
import GRDB
@testable import Generation
import Ingest
import LLMClient
import MockOpenAI
import Prompts
import Store
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The journal under faults: kill -9 of the real binary at random points, reclaiming a dead
/// run's in-flight rows, what does and does not change a cache key, run totals, and clear
/// stop messages for a wrong key or unknown model.
final class GeneratorResilienceTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    var dir: String!
    var db: ForgeDatabase!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "genres-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/x.db")
        try Self.ingest(images: 480, into: db, dir: dir)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    static func ingest(images count: Int, into db: ForgeDatabase, dir: String) throws {
        try TinyCOCO.ingest(images: count, into: db, dir: dir, caption: { "A dog number \($0) stands on the grass." },
                            firstIDs: (10_000, 20_000))
    }

    func library(prompts: String? = nil) -> PromptLibrary {
        PromptLibrary(promptsDir: prompts ?? Self.repoRoot + "/prompts", seedsDir: Self.repoRoot + "/seeds")
    }

    func generator(_ url: String, type: String = "conversation", limit: Int, key: String? = nil, concurrency: Int = 4,
                   prompts: String? = nil, configure: (inout GenerateOptions) -> Void = { _ in }) throws -> Generator {
        var cfg = ClientConfig(baseURL: url, apiKey: key)
        cfg.maxRetries = 1
        cfg.backoffBase = 0.01
        cfg.backoffCap = 0.02
        cfg.connectTimeout = 2
        var options = GenerateOptions(limit: limit, model: "mock-model", baseURL: url)
        options.concurrency = concurrency
        configure(&options)
        return Generator(database: db, spec: try library(prompts: prompts).load(type: type), client: try OpenAIClient(config: cfg), options: options)
    }

    func count(_ sql: String) throws -> Int { try db.read { try Int.fetchOne($0, sql: sql) ?? -1 } }

    // MARK: - kill -9

    /// The real binary, SIGKILLed at ≥ 5 random moments mid-run, then run to the end: exactly
    /// N unique samples, one request row per sample, and an intact database.
    func testKill9AtRandomPointsThenResumeEndsWithExactlyNSamples() throws {
        let binary = try Self.binaryPath()
        let n = 400
        let server = try MockOpenAIServer(recordRequests: false) { request in
            // 20–60 ms per answer: a run takes ≈ 1.5 s at concurrency 8, so kills land mid-flight.
            guard case .respond(let s, let h, let b, _) = MockOpenAIServer.benchmarkHandler(latency: 0)(request) else { return .closeConnection }
            return .respond(status: s, headers: h, body: b, delay: Double.random(in: 0.02...0.06))
        }
        try server.start()
        defer { server.stop() }
        let arguments = ["generate", "--db", db.path, "--type", "conversation", "--limit", String(n),
                         "--base-url", server.baseURL, "--model", "mock-model", "--concurrency", "8",
                         "--prompts", Self.repoRoot + "/prompts", "--seeds", Self.repoRoot + "/seeds", "--progress-interval", "0.2"]
        var rng = SystemRandomNumberGenerator()
        var kills = 0
        var progressSeen: [Int] = []
        var inFlightAfterKill = 0
        for _ in 0..<12 where kills < 6 {
            let p = try Self.spawn(binary, arguments, log: dir + "/run.log")
            // Kill once the stored samples pass a random point a few samples further on
            // (plus a random 0–40 ms, so kills also land between commits): tied to progress,
            // not to wall time, so a fast or a loaded machine both get mid-run kills.
            let before = try count("SELECT count(*) FROM samples")
            let target = before + Int.random(in: 3...8, using: &rng)
            guard target < n - 60 else { p.terminate(); p.waitUntilExit(); break }  // leave the end to the final run
            let deadline = Date().addingTimeInterval(30)
            while p.isRunning, Date() < deadline, try count("SELECT count(*) FROM samples") < target { usleep(2_000) }
            usleep(UInt32.random(in: 0...40_000, using: &rng))
            if p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                guard p.terminationReason == .uncaughtSignal else { continue }  // it finished first: no kill
                kills += 1
                progressSeen.append(try count("SELECT count(*) FROM samples WHERE type = 'conversation'"))
                inFlightAfterKill += try count("SELECT count(*) FROM requests WHERE status = 'in_flight'")
            } else {
                p.waitUntilExit()
            }
            if try count("SELECT count(*) FROM samples") >= n { break }
        }
        XCTAssertGreaterThanOrEqual(kills, 5, "the generator was killed mid-run at least 5 times (samples after each kill: \(progressSeen))")
        let last = try Self.spawn(binary, arguments, log: dir + "/run.log")
        last.waitUntilExit()
        let log = (try? String(contentsOfFile: dir + "/run.log", encoding: .utf8)) ?? ""
        XCTAssertEqual(last.terminationStatus, 0, log.suffix(2000).description)

        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE type = 'conversation'"), n)
        XCTAssertEqual(try count("SELECT count(DISTINCT image_id) FROM samples WHERE type = 'conversation'"), n)
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE status = 'ok'"), n)
        XCTAssertEqual(try count("SELECT count(*) FROM requests"), n, "no duplicate request rows")
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE status = 'done'"), n)
        XCTAssertEqual(try db.integrityCheck(), "ok")
        XCTAssertGreaterThanOrEqual(try count("SELECT count(*) FROM runs WHERE status = 'killed'"), 4)
        XCTAssertTrue(inFlightAfterKill == 0 || log.contains("reclaimed from an interrupted run"), "a resumed run reclaims in-flight rows: \(log.prefix(3000))")
        // Resent after a kill is allowed (the answer was not stored); stored twice is not.
        XCTAssertGreaterThanOrEqual(server.requestCount, n)
    }

    static func binaryPath() throws -> String {
        var candidates: [String] = []
        let bundleDir = Bundle(for: GeneratorResilienceTests.self).bundleURL.deletingLastPathComponent().path
        candidates.append(bundleDir + "/llava-forge")
        if let arg0 = CommandLine.arguments.first { candidates.append((arg0 as NSString).deletingLastPathComponent + "/llava-forge") }
        candidates.append(repoRoot + "/.build/debug/llava-forge")
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ForgeError(.io, "llava-forge binary not found beside the test bundle (run `swift build --build-tests` first); looked at \(candidates)")
        }
        return found
    }

    static func spawn(_ binary: String, _ arguments: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENAI_API_KEY"] = nil
        p.environment = env
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    // MARK: - Journal

    func testInFlightRowsOfADeadRunAreReclaimed() throws {
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: MockOpenAIServer.sampleAnswer) }
        try server.start()
        defer { server.stop() }
        _ = try generator(server.baseURL, limit: 10).run()
        // Pretend a run died with 3 rows in flight and their samples never written.
        try db.write { d in
            try d.execute(sql: "DELETE FROM samples WHERE request_id IN (SELECT id FROM requests ORDER BY id LIMIT 3)")
            try d.execute(sql: "UPDATE requests SET status = 'in_flight' WHERE id IN (SELECT id FROM requests ORDER BY id LIMIT 3)")
            try d.execute(sql: "INSERT INTO runs(type, base_url, model, params_json, requested) VALUES ('conversation', 'x', 'm', '{}', 10)")
        }
        let before = server.requestCount
        let s = try generator(server.baseURL, limit: 10).run()
        XCTAssertEqual(s.reclaimed, 3)
        XCTAssertEqual(s.sent, 3)
        XCTAssertEqual(server.requestCount - before, 3)
        XCTAssertEqual(try count("SELECT count(*) FROM samples"), 10)
        XCTAssertEqual(try count("SELECT count(*) FROM runs WHERE status = 'killed'"), 1)
    }

    func testCacheKeyChangesWithPromptFilesAndParametersAndNothingElse() throws {
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: MockOpenAIServer.sampleAnswer) }
        try server.start()
        defer { server.stop() }
        // A private copy of prompts/ we can edit.
        let prompts = dir + "/prompts"
        try FileManager.default.copyItem(atPath: Self.repoRoot + "/prompts", toPath: prompts)
        XCTAssertEqual(try generator(server.baseURL, limit: 5, prompts: prompts).run().sent, 5)
        // Not part of what is sent: concurrency, rate limits, retries, timeouts, prices, progress, key.
        let same = try generator(server.baseURL, limit: 5, key: "sk-other-key-000", concurrency: 1, prompts: prompts) { o in
            o.requestsPerMinute = 100_000
            o.tokensPerMinute = 10_000_000
            o.retryBudget = 7
            o.prices = PriceTable()
            o.progressInterval = 0.1
            o.commitBatch = 1
        }.run()
        XCTAssertEqual(same.sent, 0)
        XCTAssertEqual(same.cached, 5)
        // A prompt file's content is: every request of the type changes.
        let system = prompts + "/conversation/system.txt"
        try (try String(contentsOfFile: system, encoding: .utf8) + "\nBe concise.\n").write(toFile: system, atomically: true, encoding: .utf8)
        XCTAssertEqual(try generator(server.baseURL, limit: 5, prompts: prompts).run().sent, 5)
        // So is a sampling parameter.
        XCTAssertEqual(try generator(server.baseURL, limit: 5, prompts: prompts) { $0.maxTokens = 77 }.run().sent, 5)
        XCTAssertEqual(try generator(server.baseURL, limit: 5, prompts: prompts) { $0.maxTokens = 77 }.run().sent, 0)
        XCTAssertEqual(try count("SELECT count(DISTINCT cache_key) FROM requests"), 15)
        XCTAssertEqual(server.requestCount, 15)
        let maxTokens = try XCTUnwrap(server.receivedRequests.last?.json?["max_tokens"] as? Int)
        XCTAssertEqual(maxTokens, 77)
    }

    func testRunTotalsAreStoredAndFailuresKeepTheirClass() throws {
        let tally = Tally()
        let server = try MockOpenAIServer { request in
            let n = tally.bump("n")
            if n % 5 == 0 { return MockOpenAIServer.error(status: 400, message: "Invalid content", headers: ["x-request-id": "req-\(n)"]) }
            if n % 7 == 0 { return MockOpenAIServer.completion(content: "Question:\nWhat?\n===\nAnswer:\nA dog th", finishReason: "length") }
            _ = request
            return MockOpenAIServer.completion(content: MockOpenAIServer.sampleAnswer, promptTokens: 1000, completionTokens: 100)
        }
        try server.start()
        defer { server.stop() }
        let s = try generator(server.baseURL, limit: 20, concurrency: 1) { $0.prices = PriceTable(["mock-model": .init(inputPerMillion: 1, outputPerMillion: 10)]) }.run()
        XCTAssertEqual(s.failed, 4)
        XCTAssertEqual(s.truncated, 2)
        XCTAssertEqual(s.samplesOK, 14)
        XCTAssertEqual(s.errorsByClass["http_400"], 4)
        try db.read { d in
            let run = try XCTUnwrap(Row.fetchOne(d, sql: "SELECT status, sent, ok, failed, truncated, prompt_tokens, completion_tokens, cost_usd, finished_at FROM runs WHERE id = ?", arguments: [s.runID]))
            XCTAssertEqual(run[0] as String, "finished")
            XCTAssertEqual(run[1] as Int, 20)
            XCTAssertEqual(run[2] as Int, 14)
            XCTAssertEqual(run[3] as Int, 4)
            XCTAssertEqual(run[4] as Int, 2)
            XCTAssertEqual(run[5] as Int, s.promptTokens)
            XCTAssertEqual(run[6] as Int, s.completionTokens)
            let cost = (Double(s.promptTokens) * 1 + Double(s.completionTokens) * 10) / 1_000_000
            XCTAssertEqual(run[7] as Double, cost, accuracy: 1e-12)
            XCTAssertNotNil(run[8] as String?)
            let failed = try Row.fetchAll(d, sql: "SELECT error, error_class, server_request_id, http_status FROM requests WHERE status = 'failed'")
            XCTAssertEqual(failed.count, 4)
            for f in failed {
                XCTAssertEqual(f[0] as String, "HTTP 400: Invalid content")
                XCTAssertEqual(f[1] as String, "http_400")
                XCTAssertTrue((f[2] as String).hasPrefix("req-"))
                XCTAssertEqual(f[3] as Int, 400)
            }
        }
        // The failed ones are sent again by a rerun; nothing else is.
        let again = try generator(server.baseURL, limit: 20, concurrency: 1).run()
        XCTAssertEqual(again.sent, 4)
    }

    func testWrongKeyAndUnknownModelStopTheRunWithACause() throws {
        let server = try MockOpenAIServer { request in
            if request.headers["authorization"] != "Bearer sk-right-key-1" {
                return MockOpenAIServer.error(status: 401, message: "Incorrect API key provided", code: "invalid_api_key", headers: ["x-request-id": "req-k"])
            }
            return MockOpenAIServer.error(status: 404, message: "The model `mock-model` does not exist or you do not have access to it.",
                                          code: "model_not_found", headers: ["x-request-id": "req-m"])
        }
        try server.start()
        defer { server.stop() }
        let wrong = try generator(server.baseURL, limit: 40, key: "sk-wrong-key-1", concurrency: 2).run()
        let reason = try XCTUnwrap(wrong.stoppedReason)
        XCTAssertTrue(reason.contains("HTTP 401: Incorrect API key provided") && reason.contains("req-k"), reason)
        XCTAssertLessThan(wrong.sent, 15)
        XCTAssertTrue(wrong.firstErrors.first?.contains("x-request-id req-k") ?? false, "\(wrong.firstErrors)")
        XCTAssertFalse(reason.contains("sk-wrong-key-1"))
        let unknown = try generator(server.baseURL, limit: 40, key: "sk-right-key-1", concurrency: 2).run()
        XCTAssertTrue(unknown.stoppedReason?.contains("does not exist") ?? false, "\(String(describing: unknown.stoppedReason))")
        XCTAssertEqual(try count("SELECT count(*) FROM requests WHERE status = 'in_flight'"), 0)
        XCTAssertEqual(try count("SELECT count(*) FROM runs WHERE status = 'stopped' AND stopped_reason IS NOT NULL"), 2)
    }

    func testQuotaMidRunKeepsEverythingAndRerunFinishes() throws {
        let tally = Tally()
        let quota = QuotaSwitch()
        let server = try MockOpenAIServer { _ in
            if quota.exhausted {
                return MockOpenAIServer.error(status: 429, message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota")
            }
            if tally.bump("ok") == 12 { quota.exhausted = true }
            return MockOpenAIServer.completion(content: MockOpenAIServer.sampleAnswer)
        }
        try server.start()
        defer { server.stop() }
        let first = try generator(server.baseURL, limit: 30, concurrency: 2).run()
        XCTAssertTrue(first.stoppedReason?.contains("quota") ?? false)
        XCTAssertGreaterThanOrEqual(first.samplesOK, 12)
        XCTAssertLessThan(first.samplesOK, 30)
        let stored = try count("SELECT count(*) FROM samples")
        XCTAssertEqual(stored, first.samplesOK)
        XCTAssertEqual(try count("SELECT status = 'stopped' FROM runs WHERE id = \(first.runID)"), 1)
        quota.exhausted = false
        let second = try generator(server.baseURL, limit: 30, concurrency: 2).run()
        XCTAssertNil(second.stoppedReason)
        XCTAssertEqual(second.sent, 30 - stored)
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE status = 'ok'"), 30)
    }
}

final class QuotaSwitch: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var exhausted: Bool {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); value = newValue; lock.unlock() }
    }
}
