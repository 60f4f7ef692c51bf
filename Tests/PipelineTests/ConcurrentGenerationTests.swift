import ForgeCore
import Foundation
import MockOpenAI
@testable import Pipeline
import XCTest

/// The three generate branches of pipelines/demo.yaml against the loopback mock: they send at
/// the same time, through one in-flight budget (`max_in_flight`) and one pacing state
/// (`requests_per_minute`) shared by the whole run.
final class ConcurrentGenerationTests: XCTestCase {
    var root: String!

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "conc-" + UUID().uuidString
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/pipelines", withIntermediateDirectories: true)
        for d in ["prompts", "seeds"] { try fm.copyItem(atPath: DemoPipelineTests.repoRoot + "/" + d, toPath: root + "/" + d) }
        try fm.copyItem(atPath: DemoPipelineTests.repoRoot + "/pipelines/demo.yaml", toPath: root + "/pipelines/demo.yaml")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    /// The demo's fake LLM, holding each request for `latency` in the handler so the requests
    /// being answered at once are counted exactly; per type the first and last arrival.
    final class TimedLLM: @unchecked Sendable {
        let llm = DemoPipelineTests.FakeLLM()
        let latency: Double
        private let lock = NSLock()
        private var current = 0
        private(set) var maxInFlight = 0
        private(set) var arrivals: [(type: String, at: Double)] = []

        init(latency: Double) { self.latency = latency }

        func answer(_ r: MockOpenAIServer.Request) -> MockOpenAIServer.Action {
            let action = llm.answer(r)
            let system = ((r.json?["messages"] as? [[String: Any]])?.first?["content"] as? String) ?? ""
            let type = system.contains("detailed description") ? "detail" : (system.contains("real reasoning") ? "reasoning" : "conversation")
            let now = Date().timeIntervalSinceReferenceDate
            lock.lock()
            current += 1
            maxInFlight = max(maxInFlight, current)
            arrivals.append((type, now))
            lock.unlock()
            Thread.sleep(forTimeInterval: latency)
            lock.lock(); current -= 1; lock.unlock()
            guard case .respond(let status, let headers, let body, _) = action else { return action }
            return .respond(status: status, headers: headers, body: body, delay: 0)
        }

        func span(_ type: String) -> (first: Double, last: Double)? {
            lock.lock(); defer { lock.unlock() }
            let ts = arrivals.filter { $0.type == type }.map(\.at)
            guard let f = ts.min(), let l = ts.max() else { return nil }
            return (f, l + latency)
        }

        func times() -> [Double] { lock.lock(); defer { lock.unlock() }; return arrivals.map(\.at).sorted() }
    }

    func run(_ sets: [String]) throws -> RunReport {
        let p = try PipelineLoader.load(path: root + "/pipelines/demo.yaml", overrides: sets, environment: [:])
        return try PipelineRunner(env: PipelineEnvironment(pipeline: p, environment: [:]), output: { _ in }).run(RunOptions())
    }

    func testThreeGenerateBranchesOverlapWithinTheSharedBudget() throws {
        let llm = TimedLLM(latency: 0.2)
        let server = try MockOpenAIServer { llm.answer($0) }
        try server.start()
        defer { server.stop() }
        // 6 slots for 3 branches: 2 each (their `concurrency: 4` is more than the fair share).
        let report = try run(["base_url=\(server.baseURL)", "model=mock-model", "in_flight=6", "train_steps=0"])
        XCTAssertTrue(report.succeeded, report.entries.map { "\($0.stage): \($0.result) \($0.message)" }.joined(separator: "\n"))
        let counts = Dictionary(grouping: llm.llm.snapshot(), by: \.type).mapValues(\.count)
        XCTAssertEqual(counts, ["conversation": 7, "detail": 4, "reasoning": 4])
        let spans = ["conversation", "detail", "reasoning"].map { (type: $0, span: llm.span($0)!) }
        let text = spans.map { "\($0.type) \($0.span.first)…\($0.span.last)" }.joined(separator: ", ")
        for i in 0..<spans.count {
            for j in (i + 1)..<spans.count {
                let a = spans[i].span, b = spans[j].span
                XCTAssertTrue(a.first < b.last && b.first < a.last, "\(spans[i].type) and \(spans[j].type) overlap in time: \(text)")
            }
        }
        XCTAssertLessThanOrEqual(llm.maxInFlight, 6, "max_in_flight is honoured across the branches")
        XCTAssertGreaterThan(llm.maxInFlight, 2, "more than one branch's lease was in flight at once")
        for t in ["conversation", "detail", "reasoning"] {
            XCTAssertTrue(report.entry("generate-\(t)")!.message.contains("(2 at a time)"), report.entry("generate-\(t)")!.message)
        }
    }

    func testRequestsPerMinuteIsOneLimitForAllBranches() throws {
        // 240 RPM = 4 per second with a bucket of 4: 15 requests take ≥ (15 − 4) / 4 ≈ 2.75 s in
        // all; three limiters of 240 RPM each would send them in a quarter of that.
        let path = root + "/pipelines/demo.yaml"
        let yaml = try String(contentsOfFile: path, encoding: .utf8)
        try yaml.replacingOccurrences(of: "max_in_flight: ${in_flight}\n", with: "max_in_flight: ${in_flight}\nrequests_per_minute: 240\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let llm = TimedLLM(latency: 0.01)
        let server = try MockOpenAIServer { llm.answer($0) }
        try server.start()
        defer { server.stop() }
        let report = try run(["base_url=\(server.baseURL)", "model=mock-model", "in_flight=6", "train_steps=0"])
        XCTAssertTrue(report.succeeded, report.entries.map { "\($0.stage): \($0.result) \($0.message)" }.joined(separator: "\n"))
        let ts = llm.times()
        XCTAssertEqual(ts.count, 15)
        XCTAssertGreaterThan(ts.last! - ts.first!, 11.0 / 4 * 0.85, "the combined rate stays within 240/min")
        for (i, t) in ts.enumerated() {
            let inWindow = ts[i...].prefix { $0 < t + 1 }.count
            XCTAssertLessThanOrEqual(inWindow, 9, "at most the bucket (4) + 4/s (+1 of timing slack) in any second")
        }
        XCTAssertEqual(Set(llm.llm.snapshot().map(\.type)), ["conversation", "detail", "reasoning"])
    }

    func testRequestsPerMinuteMustBePositive() throws {
        let path = root + "/pipelines/demo.yaml"
        let yaml = try String(contentsOfFile: path, encoding: .utf8)
        try yaml.replacingOccurrences(of: "max_in_flight: ${in_flight}\n", with: "max_in_flight: ${in_flight}\nrequests_per_minute: 0\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineLoader.load(path: path, overrides: [], environment: [:])) { e in
            XCTAssertTrue("\(e)".contains("requests_per_minute"), "\(e)")
        }
    }
}
