import Export
import ForgeCore
import Foundation
import GRDB
import MockOpenAI
@testable import Pipeline
import Store
import XCTest

/// pipelines/demo.yaml end to end against the loopback mock, on a temporary copy of prompts/,
/// seeds/ and the pipeline (the repository is never written): the whole path, a second run that
/// does nothing, one edited prompt file rerunning only its type and what follows, the shared
/// request budget, and the no-LLM stop.
final class DemoPipelineTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    var root: String!

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "demo-" + UUID().uuidString
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/pipelines", withIntermediateDirectories: true)
        for d in ["prompts", "seeds"] { try fm.copyItem(atPath: Self.repoRoot + "/" + d, toPath: root + "/" + d) }
        try fm.copyItem(atPath: Self.repoRoot + "/pipelines/demo.yaml", toPath: root + "/pipelines/demo.yaml")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    final class Lines: @unchecked Sendable {
        let lock = NSLock()
        var all: [String] = []
        func add(_ s: String) { lock.lock(); all.append(s); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return all.joined(separator: "\n") }
    }

    /// Answers like an LLM would for each type (from the system message), with the context's first
    /// caption in it; plants a source leak for contexts mentioning "photo" and the same reasoning
    /// answer for every context mentioning a flag (exact duplicates). Records arrival times.
    final class FakeLLM: @unchecked Sendable {
        let lock = NSLock()
        var requests: [(type: String, context: String, at: Double, system: String)] = []
        static let delay = 0.05

        func answer(_ r: MockOpenAIServer.Request) -> MockOpenAIServer.Action {
            let messages = r.json?["messages"] as? [[String: Any]] ?? []
            let system = messages.first?["content"] as? String ?? ""
            let context = messages.last?["content"] as? String ?? ""
            let type = system.contains("detailed description") ? "detail" : (system.contains("real reasoning") ? "reasoning" : "conversation")
            lock.lock(); requests.append((type, context, Date().timeIntervalSinceReferenceDate, system)); lock.unlock()
            let caption = String(context.split(separator: "\n").first ?? "").trimmingCharacters(in: .whitespaces)
            let text: String
            switch type {
            case "detail":
                text = "\(caption) The main subject sits near the middle of the frame, with a few smaller objects around it and a plain background that keeps the attention on the scene."
            case "reasoning":
                let answer = context.contains("flag")
                    ? "The flag and the formal clothing suggest an official portrait taken for an organization, which explains the careful pose and the neat, symmetric framing."
                    : "\(caption) The setting and the objects suggest why the scene looks this way, since each detail points to an ordinary moment captured on purpose."
                text = "Question:\nWhat does the scene suggest about the moment it shows?\n===\nAnswer:\n\(answer)\n==="
            default:
                let first = context.contains("photo") ? "According to the captions, \(caption)" : "It shows this: \(caption)"
                text = "Question:\nWhat does the picture show?\n===\nAnswer:\n\(first)\n===\nQuestion:\nIs it indoors or outdoors?\n===\nAnswer:\nIt is hard to say exactly, but the light and the surroundings give a good hint about the place.\n==="
            }
            guard case .respond(let status, let headers, let body, _) = MockOpenAIServer.completion(content: text) else { return .closeConnection }
            return .respond(status: status, headers: headers, body: body, delay: Self.delay)
        }

        func snapshot() -> [(type: String, context: String, at: Double, system: String)] { lock.lock(); defer { lock.unlock() }; return requests }

        /// Most requests that were being answered at the same moment.
        func maxOverlap() -> Int {
            let ts = snapshot().map(\.at).sorted()
            var best = 0
            for (i, t) in ts.enumerated() { best = max(best, ts[i...].prefix { $0 < t + Self.delay * 0.9 }.count) }
            return best
        }
    }

    func run(_ sets: [String], _ options: RunOptions = RunOptions(), lines: Lines = Lines()) throws -> (RunReport, PipelineRunner) {
        let p = try PipelineLoader.load(path: root + "/pipelines/demo.yaml", overrides: sets, environment: [:])
        let runner = PipelineRunner(env: PipelineEnvironment(pipeline: p, environment: [:]), output: { lines.add($0) })
        return (try runner.run(options), runner)
    }

    func database() throws -> ForgeDatabase { try ForgeDatabase(path: root + "/out/demo/demo.db") }

    func count(_ sql: String) throws -> Int { try database().read { try Int.fetchOne($0, sql: sql) ?? -1 } }

    func testWithoutAnLLMTheGenerateStagesSayWhatToSet() throws {
        let lines = Lines()
        // No API and no local model (the offline default needs models/, see LocalServer).
        let (report, _) = try run(["local_model=/nonexistent/SmolLM2.gguf"], lines: lines)
        XCTAssertFalse(report.succeeded)
        for s in ["ingest", "contexts", "sample-images"] { XCTAssertEqual(report.entry(s)?.result, "ran", s) }
        for t in ["conversation", "detail", "reasoning"] {
            let e = report.entry("generate-\(t)")!
            XCTAssertEqual(e.result, "failed")
            XCTAssertTrue(e.message.contains("set LLAVA_FORGE_BASE_URL"), e.message)
            XCTAssertTrue(e.message.contains("LLAVA_FORGE_MODEL"), e.message)
            XCTAssertTrue(e.message.contains("scripts/fetch_model.sh"), e.message)
        }
        XCTAssertEqual(report.entry("export")?.result, "blocked")
        XCTAssertEqual(try count("SELECT count(*) FROM images"), 14)
        XCTAssertEqual(try count("SELECT count(*) FROM pipeline_image_choices"), 15)
        // The detail images are not given to conversation (exclude), and both box types got boxed images.
        XCTAssertEqual(try count("""
            SELECT count(*) FROM pipeline_image_choices a JOIN pipeline_image_choices b ON a.image_id = b.image_id
            WHERE a.type = 'conversation' AND b.type = 'detail'
            """), 0)
        XCTAssertEqual(try count("SELECT count(*) FROM pipeline_image_choices WHERE type != 'conversation' AND image_id NOT IN (SELECT image_id FROM image_boxes WHERE count > 0)"), 0)
    }

    func testDemoEndToEndRerunAndOneEditedPrompt() throws {
        let llm = FakeLLM()
        let server = try MockOpenAIServer { llm.answer($0) }
        try server.start()
        defer { server.stop() }
        // train_steps=0: the demo's final train stage is skipped here (TrainingDataTests run it for real).
        let sets = ["base_url=\(server.baseURL)", "model=mock-model", "in_flight=2", "train_steps=0"]

        // 1. Everything runs.
        let (first, _) = try run(sets)
        XCTAssertTrue(first.succeeded, first.entries.map { "\($0.stage): \($0.result) \($0.message)" }.joined(separator: "\n"))
        XCTAssertEqual(first.ran.count, 13)
        let sent = llm.snapshot()
        XCTAssertEqual(sent.filter { $0.type == "conversation" }.count, 7)
        XCTAssertEqual(sent.filter { $0.type == "detail" }.count, 4)
        XCTAssertEqual(sent.filter { $0.type == "reasoning" }.count, 4)
        XCTAssertLessThanOrEqual(llm.maxOverlap(), 2, "max_in_flight is honoured across the generate stages")
        // Filter and dedup did what the planted responses call for.
        let leaks = sent.filter { $0.type == "conversation" && $0.context.contains("photo") }.count
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE status = 'filtered' AND reason LIKE 'filter source_leak:%'"), leaks)
        let flags = sent.filter { $0.type == "reasoning" && $0.context.contains("flag") }.count
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE status = 'duplicate' AND reason LIKE 'exact duplicate of sample %'"), max(0, flags - 1))
        let ok = try count("SELECT count(*) FROM samples WHERE status = 'ok'")
        // The mock's reasoning template repeats a long sentence, so some of those are near duplicates too.
        let duplicates = try count("SELECT count(*) FROM samples WHERE status = 'duplicate' AND reason LIKE '%of sample % [dedup]'")
        XCTAssertGreaterThanOrEqual(duplicates, max(0, flags - 1))
        XCTAssertEqual(ok, 15 - leaks - duplicates)
        // Which sample was kept and why, and why a sample was filtered, are inspectable.
        if duplicates > 0 {
            let text = try Inspector.render(database: try database(), type: "reasoning", limit: 5, status: "duplicate")
            XCTAssertTrue(text.contains("reason:  ") && text.contains("duplicate of sample "), text)
        }
        if leaks > 0 {
            let text = try Inspector.render(database: try database(), type: "conversation", limit: 5, status: "filtered")
            XCTAssertTrue(text.contains("reason:  filter source_leak: turn 2 mentions \"caption\""), text)
        }
        let exportDir = root + "/out/demo/export"
        let files = try FileManager.default.contentsOfDirectory(atPath: exportDir)
        XCTAssertTrue(files.contains("llava_instruct_\(ok).json"), "\(files)")
        XCTAssertTrue(files.contains("detail_4.json"), "\(files)")
        let exported = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: exportDir + "/llava_instruct_\(ok).json"))) as! [[String: Any]]
        XCTAssertEqual(exported.count, ok)

        // 2. A second run does nothing and says so.
        let lines = Lines()
        let (second, _) = try run(sets, lines: lines)
        XCTAssertEqual(second.ran, [])
        XCTAssertTrue(lines.text.contains("nothing to do"), lines.text)
        XCTAssertEqual(llm.snapshot().count, 15, "no request sent")

        // 3. Edit one prompt file: only that type's generation and what follows rerun.
        let system = root + "/prompts/detail/system.txt"
        try (try String(contentsOfFile: system, encoding: .utf8) + "\nKeep it under 120 words.\n").write(toFile: system, atomically: true, encoding: .utf8)
        let (_, planner) = try run(sets, RunOptions(dryRun: true))
        let plan = try planner.plan(RunOptions(dryRun: true))
        let reasons = Dictionary(uniqueKeysWithValues: plan.map { ($0.stage.name, $0) })
        XCTAssertTrue(reasons["generate-detail"]!.reason.contains("file \(root!)/prompts/detail/system.txt changed"), reasons["generate-detail"]!.reason)
        let (third, _) = try run(sets)
        XCTAssertEqual(Set(third.ran), ["generate-detail", "parse-detail", "filter", "dedup", "export", "train"])
        let after = llm.snapshot()
        XCTAssertEqual(after.count, 19)
        XCTAssertEqual(after.suffix(4).map(\.type), ["detail", "detail", "detail", "detail"])
        XCTAssertTrue(after.suffix(4).allSatisfy { $0.system.contains("Keep it under 120 words.") }, "the rerun sends the edited system message")
        XCTAssertFalse(after.prefix(15).contains { $0.system.contains("Keep it under 120 words.") })
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE type = 'detail' AND status = 'superseded'"), 4)
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE type = 'detail' AND status = 'ok'"), 4)
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: exportDir).contains("detail_4.json"))
        XCTAssertEqual(try count("SELECT count(*) FROM samples WHERE status = 'ok'"), ok, "the export still has one sample per chosen image")

        // 4. Touching a seed file (mtime only) reruns that type's generation, which sends nothing new.
        let seed = root + "/seeds/conversation/01-kitchen.context.txt"
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(5)], ofItemAtPath: seed)
        let (fourth, _) = try run(sets)
        XCTAssertEqual(Set(fourth.ran), ["generate-conversation", "parse-conversation", "filter", "dedup", "export", "train"])
        XCTAssertEqual(llm.snapshot().count, 19, "the request journal answers everything")
        XCTAssertEqual(try run(sets).0.ran, [])
    }
}
