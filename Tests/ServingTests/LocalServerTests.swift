import XCTest
import Foundation
import ForgeCore
import Pipeline

/// The generate stage's offline default: `LocalServer` starts `llava-forge serve` (the debug
/// binary) on a free port, shares it, stops it with the last lease; reuses a server already on
/// the well-known port; and the demo pipeline with no API generates through it.
final class LocalServerTests: XCTestCase {
    func environment(localPort: Int = 1) throws -> [String: String] {
        ["LLAVA_FORGE_EXECUTABLE": try ServingFixtures.binary, "LLAVA_FORGE_LOCAL_PORT": String(localPort)]
    }

    func port(of baseURL: String) -> Int {
        Int(baseURL.split(separator: ":").last!.split(separator: "/").first!)!
    }

    func testStartsSharesAndStopsTheServer() throws {
        let lines = LogLines()
        let env = try environment()
        let a = try LocalServer.acquire(modelPath: ServingFixtures.tinyChatGGUF, environment: env, log: { lines.add($0) })
        let b = try LocalServer.acquire(modelPath: ServingFixtures.tinyChatGGUF, environment: env, log: { lines.add($0) })
        XCTAssertEqual(a.baseURL, b.baseURL, "one server for every generate stage of the process")
        XCTAssertEqual(a.modelName, "tiny_chat.Q8_0")
        let port = port(of: a.baseURL)
        let r = try RawHTTP.post(port: port, chatBody([["role": "user", "content": "hi"]], ["max_tokens": 3]))
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(r.json["model"] as? String, "tiny_chat.Q8_0")
        a.release()
        a.release()  // twice is once
        XCTAssertEqual(try RawHTTP.request(port: port, method: "GET", path: "/health").status, 200, "b still holds it")
        b.release()
        XCTAssertThrowsError(try RawHTTP.connect(port: port), "stopped with the last lease")
        XCTAssertTrue(lines.all.contains { $0.contains("stopped the local model server (exit 0)") }, lines.all.joined(separator: "\n"))
    }

    func testUsesAServerAlreadyRunningOnTheWellKnownPort() throws {
        let running = try ServeProcessTests.ServeProcess(["--model", ServingFixtures.tinyChatGGUF, "--model-name", "tiny_chat.Q8_0"])
        defer { _ = running.stop() }
        let lease = try LocalServer.acquire(modelPath: ServingFixtures.tinyChatGGUF, environment: try environment(localPort: running.port), log: { _ in })
        XCTAssertEqual(lease.baseURL, "http://127.0.0.1:\(running.port)/v1")
        lease.release()
        XCTAssertEqual(try RawHTTP.request(port: running.port, method: "GET", path: "/health").status, 200, "a server we did not start stays up")
    }

    func testMissingModelSaysToFetchIt() throws {
        XCTAssertThrowsError(try LocalServer.acquire(modelPath: "/nonexistent/SmolLM2.gguf", environment: try environment(), log: { _ in })) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("scripts/fetch_model.sh") && text.contains("/nonexistent/SmolLM2.gguf") && text.contains("LLAVA_FORGE_BASE_URL"), text)
        }
    }

    func testDefaultModelPathIsBesideThePrompts() {
        XCTAssertEqual(LocalServer.modelPath(param: "/x/m.gguf", environment: ["LLAVA_FORGE_LOCAL_MODEL": "/y.gguf"], promptsDir: nil), "/x/m.gguf")
        XCTAssertEqual(LocalServer.modelPath(param: nil, environment: ["LLAVA_FORGE_LOCAL_MODEL": "/y.gguf"], promptsDir: nil), "/y.gguf")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("localserver-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir + "/models", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/models/" + LocalServer.defaultModelFile, contents: Data("GGUF".utf8))
        XCTAssertEqual(LocalServer.modelPath(param: nil, environment: [:], promptsDir: dir + "/prompts"), dir + "/models/" + LocalServer.defaultModelFile)
    }

    /// pipelines/demo.yaml with no API and the tiny model as the local model: the three generate
    /// stages start, share and stop one server, and every request is answered.
    func testDemoPipelineGeneratesThroughTheLocalServer() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("localserver-demo-\(getpid())").path
        try? FileManager.default.removeItem(atPath: out)
        let pipeline = try PipelineLoader.load(path: ServingFixtures.repoRoot + "/pipelines/demo.yaml",
                                               overrides: ["out=\(out)", "local_model=\(ServingFixtures.tinyChatGGUF)", "conversations=1", "details=1", "reasonings=1",
                                                           "generate-conversation.max_tokens=8", "generate-detail.max_tokens=8", "generate-reasoning.max_tokens=8"],
                                               environment: [:])
        let lines = LogLines()
        let runner = PipelineRunner(env: PipelineEnvironment(pipeline: pipeline, environment: try environment()), output: { lines.add($0) })
        let report = try runner.run(RunOptions())
        for t in ["conversation", "detail", "reasoning"] {
            let e = report.entry("generate-\(t)")
            XCTAssertEqual(e?.result, "ran", "\(t): \(e?.message ?? "") \n\(lines.all.joined(separator: "\n"))")
            XCTAssertTrue(e?.message.contains("1 sent") ?? false, e?.message ?? "")
            XCTAssertTrue(e?.message.contains("request failures 0") ?? false, e?.message ?? "")
        }
        // Usually one server for the three concurrent stages; each one started is stopped by the end.
        let started = lines.all.filter { $0.contains("local model server ready") }
        XCTAssertGreaterThanOrEqual(started.count, 1, lines.all.joined(separator: "\n"))
        XCTAssertEqual(lines.all.filter { $0.contains("stopped the local model server (exit 0)") }.count, started.count, lines.all.joined(separator: "\n"))
        for line in started {
            let port = Int(line.split(separator: ":").last!.split(separator: " ").first!)!
            XCTAssertThrowsError(try RawHTTP.connect(port: port), "stopped at the end of the run")
        }
    }
}

final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}
