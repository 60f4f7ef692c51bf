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

/// The generate stage end to end against the loopback mock: prompt assembly, journal, cache,
/// parsing into samples, truncation, quota stop, and the one-process lock.
final class GeneratorTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    var dir: String!
    var db: ForgeDatabase!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "gen-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/x.db")
        try TinyCOCO.ingest(images: 6, into: db, dir: dir, caption: { "Caption number \($0) of a dog." })
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func spec(_ type: String) throws -> SampleTypeSpec {
        try PromptLibrary(promptsDir: Self.repoRoot + "/prompts", seedsDir: Self.repoRoot + "/seeds").load(type: type)
    }

    func generator(_ server: MockOpenAIServer, type: String, limit: Int, temperature: Double? = nil) throws -> Generator {
        var cfg = ClientConfig(baseURL: server.baseURL, apiKey: nil)
        cfg.maxRetries = 1
        cfg.backoffBase = 0.01
        var options = GenerateOptions(limit: limit, model: "mock-model", baseURL: server.baseURL)
        options.concurrency = 3
        options.temperature = temperature
        return Generator(database: db, spec: try spec(type), client: try OpenAIClient(config: cfg), options: options)
    }

    static let conversation = "Question:\nWhat animal is shown?\n===\nAnswer:\nA dog.\n===\nQuestion:\nHow many dogs are there?\n===\nAnswer:\nThere is one dog.\n==="

    func testConversationRunStoresSamplesAndRerunSendsNothing() throws {
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: Self.conversation, promptTokens: 321, completionTokens: 45) }
        try server.start()
        defer { server.stop() }
        let s1 = try generator(server, type: "conversation", limit: 4).run()
        XCTAssertEqual(s1.planned, 4)
        XCTAssertEqual(s1.sent, 4)
        XCTAssertEqual(s1.samplesOK, 4)
        XCTAssertEqual(s1.promptTokens, 4 * 321)
        XCTAssertEqual(server.requestCount, 4)

        // Prompt assembly: system, each seed example as a user/assistant pair, then the context.
        let spec = try spec("conversation")
        let body = try XCTUnwrap(server.receivedRequests.first?.json)
        let messages = try XCTUnwrap(body["messages"] as? [[String: String]])
        XCTAssertEqual(messages.count, 2 + 2 * spec.fewShot.count)
        XCTAssertEqual(messages.first?["role"], "system")
        XCTAssertEqual(messages.first?["content"], spec.systemMessage)
        XCTAssertEqual(messages[1]["content"], spec.fewShot[0].context)
        XCTAssertEqual(messages[2]["role"], "assistant")
        XCTAssertEqual(messages.last?["role"], "user")
        XCTAssertTrue(messages.last!["content"]!.hasPrefix("Caption number "), "conversation contexts are captions only")
        XCTAssertFalse(messages.last!["content"]!.contains("dog: ["))
        XCTAssertEqual(body["model"] as? String, "mock-model")

        try db.read { d in
            let rows = try Row.fetchAll(d, sql: "SELECT status, turns, conversations_json FROM samples WHERE type = 'conversation'")
            XCTAssertEqual(rows.count, 4)
            for r in rows {
                XCTAssertEqual(r[0] as String, "ok")
                XCTAssertEqual(r[1] as Int, 2)
                let turns = try JSONSerialization.jsonObject(with: Data((r[2] as String).utf8)) as! [[String: String]]
                XCTAssertEqual(turns.map { $0["from"]! }, ["human", "gpt", "human", "gpt"])
                XCTAssertTrue(turns[0]["value"]!.contains("<image>"))
                XCTAssertEqual(turns[1]["value"], "A dog.")
            }
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM requests WHERE status = 'done'"), 4)
        }

        // Same command again: everything is answered, nothing is sent.
        let s2 = try generator(server, type: "conversation", limit: 4).run()
        XCTAssertEqual(s2.sent, 0)
        XCTAssertEqual(s2.cached, 4)
        XCTAssertEqual(server.requestCount, 4)
        // Topping up sends only the new ones.
        let s3 = try generator(server, type: "conversation", limit: 6).run()
        XCTAssertEqual(s3.sent, 2)
        XCTAssertEqual(server.requestCount, 6)
        // A changed sampling parameter changes the request, so it is sent again.
        let s4 = try generator(server, type: "conversation", limit: 2, temperature: 0.2).run()
        XCTAssertEqual(s4.sent, 2)
        XCTAssertEqual(try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM requests") }, 8)
    }

    func testDetailUsesBoxesAndAnInstruction() throws {
        let server = try MockOpenAIServer { _ in MockOpenAIServer.completion(content: "A brown dog stands on the grass near the left edge of the picture.") }
        try server.start()
        defer { server.stop() }
        let s = try generator(server, type: "detail", limit: 3).run()
        XCTAssertEqual(s.samplesOK, 3)
        let last = try XCTUnwrap((server.receivedRequests.first?.json?["messages"] as? [[String: String]])?.last?["content"])
        XCTAssertTrue(last.contains("\n\ndog: [0.016, 0.042, 0.172, 0.146]"), last)
        let spec = try spec("detail")
        let turns = try db.read { d in try String.fetchAll(d, sql: "SELECT conversations_json FROM samples") }
        for t in turns {
            let conv = try JSONSerialization.jsonObject(with: Data(t.utf8)) as! [[String: String]]
            XCTAssertEqual(conv.count, 2)
            let human = conv[0]["value"]!.replacingOccurrences(of: "<image>", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(spec.instructions.contains(human), "instruction comes from the list: \(human)")
        }
    }

    func testUnparseableAndTruncatedResponsesAreKeptWithReasons() throws {
        let server = try MockOpenAIServer { req in
            let context = ((req.json?["messages"] as? [[String: String]])?.last?["content"]) ?? ""
            if context.contains("number 1 ") || context.hasPrefix("Caption number 1 ") {
                return MockOpenAIServer.completion(content: "I'm sorry, I cannot help with that.")
            }
            return MockOpenAIServer.completion(content: "Question:\nWhat is this?\n===\nAnswer:\nA dog that", finishReason: "length")
        }
        try server.start()
        defer { server.stop() }
        let g = try generator(server, type: "reasoning", limit: 6)
        let s = try g.run()
        XCTAssertEqual(s.samplesOK, 0)
        XCTAssertEqual(s.parseFailed, 1)
        XCTAssertEqual(s.truncated, 5)
        try db.read { d in
            let failed = try Row.fetchOne(d, sql: "SELECT reason FROM samples WHERE status = 'parse_failed'")
            XCTAssertEqual((failed?[0] as String?)?.hasPrefix("no_question"), true, "\(String(describing: failed))")
            let trunc = try String.fetchAll(d, sql: "SELECT reason FROM samples WHERE status = 'truncated'")
            XCTAssertTrue(trunc.allSatisfy { $0.contains("finish_reason=length") })
        }
    }

    func testQuotaStopsTheRunAndKeepsWhatWasDone() throws {
        let counter = Counter()
        let server = try MockOpenAIServer { _ in
            if counter.increment() <= 2 { return MockOpenAIServer.completion(content: Self.conversation) }
            return MockOpenAIServer.error(status: 429, message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota")
        }
        try server.start()
        defer { server.stop() }
        var cfg = ClientConfig(baseURL: server.baseURL, apiKey: "sk-test-secret")
        cfg.maxRetries = 0
        var options = GenerateOptions(limit: 6, model: "m", baseURL: server.baseURL)
        options.concurrency = 1
        let s = try Generator(database: db, spec: try spec("conversation"), client: try OpenAIClient(config: cfg), options: options).run()
        XCTAssertNotNil(s.stoppedReason)
        XCTAssertEqual(s.samplesOK, 2)
        XCTAssertEqual(s.errorsByClass["quota"], 1)
        XCTAssertEqual(server.requestCount, 3, "the run stops at the first quota error")
        XCTAssertFalse(s.firstErrors.joined().contains("sk-test-secret"))
        try db.read { d in
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM samples WHERE status = 'ok'"), 2)
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM requests WHERE status IN ('pending', 'failed')"), 4)
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM requests WHERE status = 'in_flight'"), 0)
        }
    }

    /// A real second process (flock(1)) holds the database's lock: the Generator is refused.
    func testSecondProcessIsRefused() throws {
        let other = Process()
        other.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        let ready = dir + "/locked"
        other.arguments = ["-n", db.path + ".lock", "-c", "touch \(ready); sleep 30"]
        try other.run()
        defer { other.terminate(); other.waitUntilExit() }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: ready) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: ready), "flock(1) took the lock")
        let server = try MockOpenAIServer()
        try server.start()
        defer { server.stop() }
        XCTAssertThrowsError(try generator(server, type: "conversation", limit: 1).run()) { e in
            XCTAssertTrue("\(e)".contains("another llava-forge process"), "\(e)")
        }
        XCTAssertEqual(server.requestCount, 0)
        XCTAssertEqual(RunLock.holders(databasePath: db.path), 0, "a refused Generator holds nothing")
    }

    /// Inside one process the lock is shared, but one type is generated by one Generator at a time.
    func testSameTypeTwiceInOneProcessIsRefused() throws {
        let held = try RunLock(databasePath: db.path, type: "conversation")
        defer { held.release() }
        let other = try RunLock(databasePath: db.path, type: "detail")
        XCTAssertEqual(RunLock.holders(databasePath: db.path), 2)
        other.release()
        XCTAssertThrowsError(try RunLock(databasePath: db.path, type: "conversation")) { e in
            XCTAssertTrue("\(e)".contains("already generating 'conversation'"), "\(e)")
        }
        XCTAssertEqual(RunLock.holders(databasePath: db.path), 1)
    }

    /// Two Generators of different types, on one database, in one process, at the same time,
    /// under one `SharedLimiter` (budget 4): both send at once, the in-flight total never exceeds
    /// the budget, each ends with exactly its N samples, and neither reclaims the other's
    /// in-flight rows.
    func testTwoTypesInOneProcessRunTogetherUnderOneSharedLimiter() throws {
        let probe = InFlightProbe(latency: 0.1)
        let server = try MockOpenAIServer { r in
            let system = ((r.json?["messages"] as? [[String: Any]])?.first?["content"] as? String) ?? ""
            let isDetail = system.contains("detailed description")
            probe.enter(isDetail ? "detail" : "conversation")
            return MockOpenAIServer.completion(content: isDetail
                ? "A dog stands near the middle of the frame, with a few smaller objects around it and a plain background that keeps the attention on the scene."
                : Self.conversation)
        }
        try server.start()
        defer { server.stop() }
        let shared = SharedLimiter(maxInFlight: 4)
        shared.budget.participants = 2
        var results: [String: Result<GenerateSummary, Error>] = [:]
        let lock = NSLock()
        let group = DispatchGroup()
        for type in ["conversation", "detail"] {
            let g = try generator(server, type: type, limit: 6)
            var o = g.options
            o.concurrency = 8
            o.sharedLimiter = shared
            let gen = Generator(database: db, spec: g.spec, client: g.client, options: o)
            group.enter()
            Thread.detachNewThread {
                let r = Result { try gen.run() }
                lock.lock(); results[type] = r; lock.unlock()
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        for type in ["conversation", "detail"] {
            let s = try XCTUnwrap(results[type]).get()
            XCTAssertEqual(s.samplesOK, 6, type)
            XCTAssertEqual(s.sent, 6, type)
            XCTAssertEqual(s.reclaimed, 0, "\(type) took nothing of the other Generator's in-flight rows")
            XCTAssertEqual(s.concurrency, 2, "\(type) leased its fair share of the budget")
        }
        XCTAssertLessThanOrEqual(probe.maxInFlight, 4, "the shared budget is honoured")
        XCTAssertGreaterThan(probe.maxInFlight, 2, "both Generators had requests in flight at once")
        XCTAssertTrue(probe.overlaps("conversation", "detail"), probe.describe())
        XCTAssertEqual(shared.budget.available, 4, "every lease returned")
        XCTAssertEqual(RunLock.holders(databasePath: db.path), 0)
        try db.read { d in
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM samples WHERE type = 'conversation' AND status = 'ok'"), 6)
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM samples WHERE type = 'detail' AND status = 'ok'"), 6)
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM requests WHERE status != 'done'"), 0)
            XCTAssertEqual(try Int.fetchOne(d, sql: "SELECT count(*) FROM runs WHERE status = 'finished'"), 2)
            XCTAssertEqual(try String.fetchOne(d, sql: "PRAGMA integrity_check"), "ok")
        }
    }
}

/// Counts requests being answered at the same moment (the handler holds each for `latency`)
/// and keeps each kind's first and last arrival.
final class InFlightProbe: @unchecked Sendable {
    let latency: Double
    private let lock = NSLock()
    private var current = 0
    private(set) var maxInFlight = 0
    private var spans: [String: (first: Double, last: Double)] = [:]

    init(latency: Double) { self.latency = latency }

    func enter(_ kind: String) {
        let now = Date().timeIntervalSinceReferenceDate
        lock.lock()
        current += 1
        maxInFlight = max(maxInFlight, current)
        let s = spans[kind] ?? (now, now)
        spans[kind] = (min(s.first, now), max(s.last, now))
        lock.unlock()
        Thread.sleep(forTimeInterval: latency)
        lock.lock(); current -= 1; lock.unlock()
    }

    /// Each kind's [first, last + latency] span intersects the other's.
    func overlaps(_ a: String, _ b: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard let x = spans[a], let y = spans[b] else { return false }
        return x.first < y.last + latency && y.first < x.last + latency
    }

    func describe() -> String {
        lock.lock(); defer { lock.unlock() }
        return spans.map { "\($0.key): \($0.value.first)…\($0.value.last)" }.sorted().joined(separator: ", ") + ", max in flight \(maxInFlight)"
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
}
