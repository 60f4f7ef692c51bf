import ForgeCore
import Foundation
import Generation
@testable import Pipeline
import XCTest

/// The scheduler with stand-in executors: independent stages overlap, failures block only
/// what is downstream, fingerprints decide reruns, --only/--from select.
final class RunnerTests: XCTestCase {
    final class Recorder: @unchecked Sendable {
        let lock = NSLock()
        var active = 0, maxActive = 0
        var order: [String] = []
        func enter(_ s: String) { lock.lock(); active += 1; maxActive = max(maxActive, active); order.append(s); lock.unlock() }
        func leave() { lock.lock(); active -= 1; lock.unlock() }
    }

    /// Sleeps, records overlap; fails when its `type` param is "fail".
    struct SlowStage: StageExecutor {
        let recorder: Recorder
        func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
            recorder.enter(stage.name)
            defer { recorder.leave() }
            Thread.sleep(forTimeInterval: 0.3)
            if stage.params.string("type") == "fail" { throw ForgeError(.badInput, "planned failure") }
            return StageOutcome(.done, "slept")
        }
    }

    var dir: String!
    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "runner-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func runner(_ yaml: String, _ rec: Recorder, overrides: [String] = [], lines: LineBox = LineBox()) throws -> PipelineRunner {
        let p = try PipelineLoader.parse(text: "name: r\ndatabase: \(dir!)/r.db\n" + yaml, path: dir + "/r.yaml", overrides: overrides)
        var reg = StageRegistry.standard
        reg.executors["parse"] = SlowStage(recorder: rec)
        return PipelineRunner(env: PipelineEnvironment(pipeline: p, environment: [:]), registry: reg, output: { lines.append($0) })
    }

    final class LineBox: @unchecked Sendable {
        let lock = NSLock()
        var lines: [String] = []
        func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    let diamond = """
    stages:
      root: {kind: parse, params: {type: a}}
      b1: {kind: parse, needs: root, params: {type: b}}
      b2: {kind: parse, needs: root, params: {type: c}}
      b3: {kind: parse, needs: root, params: {type: "${third}"}}
      join: {kind: parse, needs: [b1, b2, b3], params: {type: d}}
      side: {kind: parse, needs: b1, params: {type: e}}
    vars: {third: x}
    """

    func testIndependentStagesRunConcurrentlyAndRerunDoesNothing() throws {
        let rec = Recorder()
        let started = Date()
        let report = try runner(diamond, rec).run()
        XCTAssertTrue(report.succeeded)
        XCTAssertEqual(Set(report.ran), ["root", "b1", "b2", "b3", "join", "side"])
        XCTAssertEqual(rec.order.first, "root")
        XCTAssertEqual(rec.maxActive, 3, "b1, b2, b3 overlap")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.6, "4 levels × 0.3 s, not 6 stages × 0.3 s")
        let rec2 = Recorder()
        let lines = LineBox()
        let again = try runner(diamond, rec2, lines: lines).run()
        XCTAssertEqual(again.ran, [])
        XCTAssertEqual(rec2.order, [])
        XCTAssertTrue(lines.text.contains("nothing to do"), lines.text)
    }

    func testChangedParamRerunsTheStageAndWhatFollowsOnly() throws {
        _ = try runner(diamond, Recorder()).run()
        let rec = Recorder()
        let r = try runner(diamond, rec, overrides: ["third=y"])
        let plan = try r.plan()
        let why = Dictionary(uniqueKeysWithValues: plan.map { ($0.stage.name, $0.reason) })
        XCTAssertEqual(why["b3"], "parameters changed")
        XCTAssertEqual(why["join"], "input b3 changed")
        XCTAssertEqual(why["b1"], "up to date")
        XCTAssertEqual(Set(try r.run().ran), ["b3", "join"])
        XCTAssertEqual(Set(rec.order), ["b3", "join"])
    }

    func testFailureBlocksOnlyDownstreamAndIsRetried() throws {
        let rec = Recorder()
        let report = try runner(diamond, rec, overrides: ["b2.type=fail"]).run()
        XCTAssertFalse(report.succeeded)
        XCTAssertEqual(report.entry("b2")?.result, "failed")
        XCTAssertEqual(report.entry("join")?.result, "blocked")
        XCTAssertEqual(report.entry("side")?.result, "ran", "an independent branch still runs")
        // Same fingerprint, but the last run failed: retried.
        let plan = try runner(diamond, Recorder(), overrides: ["b2.type=fail"]).plan()
        XCTAssertTrue(plan.first { $0.stage.name == "b2" }!.reason.hasPrefix("last run failed: "))
        XCTAssertEqual(plan.first { $0.stage.name == "join" }!.reason, "never run")
    }

    func testOnlyAndFrom() throws {
        _ = try runner(diamond, Recorder()).run()
        let rec = Recorder()
        XCTAssertEqual(try runner(diamond, rec).run(RunOptions(only: "b2")).ran, ["b2"])
        let rec2 = Recorder()
        XCTAssertEqual(Set(try runner(diamond, rec2).run(RunOptions(from: "b1")).ran), ["b1", "join", "side"])
        XCTAssertThrowsError(try runner(diamond, Recorder()).run(RunOptions(only: "nope")))
    }

    func testDryRunRunsNothingAndExplains() throws {
        let rec = Recorder()
        let lines = LineBox()
        _ = try runner(diamond, rec, lines: lines).run(RunOptions(dryRun: true))
        XCTAssertEqual(rec.order, [])
        XCTAssertTrue(lines.text.contains("root [parse]"), lines.text)
        XCTAssertTrue(lines.text.contains("6 of 6 stages would run"), lines.text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/r.db"), "a dry run creates no database")
    }

    func testRequestBudgetFairShareAndBlocking() throws {
        let b = RequestBudget(total: 8)
        b.participants = 3
        let first = b.acquire(wanted: 8)
        XCTAssertEqual(first, 2, "fair share of 8 among 3")
        XCTAssertEqual(b.acquire(wanted: 1), 1)
        let rest = b.acquire(wanted: 8)
        XCTAssertEqual(rest, 2)
        _ = b.acquire(wanted: 8); // 2 more → 7 taken, 1 free
        XCTAssertEqual(b.acquire(wanted: 8), 1)
        let got = LineBox()
        let t = Thread { got.append("\(b.acquire(wanted: 2))") }
        t.start()
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(got.text, "", "no slot free: waits")
        b.release(first)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(got.text, "2")
    }
}
