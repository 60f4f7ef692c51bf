import ForgeCore
import Foundation
import GRDB
import Pipeline
import Store
import TensorMath
import XCTest

/// The pipeline's `train` stage on a store: nothing to train is said clearly; with samples it
/// trains, writes the checkpoint and answers the question with the trained model.
final class TrainStageTests: XCTestCase {
    /// As `main` does in the CLI: OpenBLAS's core is (re)selected before any other thread exists
    /// (the switch sets and restores an environment variable, which must not race other threads).
    override class func setUp() {
        super.setUp()
        _ = BLASRuntime.ensureBestCore()
    }

    func pipelineText(database: String, model: String, out: String, steps: Int) -> String {
        """
        name: train-test
        database: \(database)
        stages:
          train:
            kind: train
            params:
              llm: \(model)
              out: \(out)
              max_steps: \(steps)
              max_length: 64
              batch_tokens: 96
              lr: 0.003
              types: [conversation]
              ask_image: \(TestPaths.repoRoot)/seeds/images/chelsea_cat.jpg
              ask_question: What is it?
              max_answer_tokens: 5
        """
    }

    func run(_ text: String, dir: String) throws -> RunReport {
        let pipeline = try PipelineLoader.parse(text: text, path: dir + "/p.yaml")
        return try PipelineRunner(env: PipelineEnvironment(pipeline: pipeline, environment: [:]), output: { _ in }).run(RunOptions())
    }

    func runPipelineProcess(_ path: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TrainCommandTests.binaryPath())
        process.arguments = ["run", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testWithoutSamplesTheStageSaysSoAndTrainsNothing() throws {
        let w = try makeTinyLlavaWorkspace("stage-empty")
        _ = try ForgeDatabase(path: w.dir + "/empty.db")
        let report = try run(pipelineText(database: w.dir + "/empty.db", model: w.model, out: w.dir + "/out", steps: 2), dir: w.dir)
        let entry = try XCTUnwrap(report.entry("train"))
        XCTAssertEqual(entry.result, "incomplete")
        XCTAssertTrue(entry.message.contains("no ok samples of types conversation"), entry.message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.dir + "/out/checkpoint"))
    }

    func testWithSamplesTheStageTrainsAndAnswers() throws {
        let w = try makeTinyLlavaWorkspace("stage-train")
        let dbPath = w.dir + "/forge.db"
        let db = try ForgeDatabase(path: dbPath)
        let names = ["chelsea_cat.jpg", "astronaut.jpg", "brick_wall.jpg"]
        try db.write { db in
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('image_root', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [w.images])
            for (i, name) in names.enumerated() {
                try db.execute(sql: "INSERT INTO images(id, file_name, width, height) VALUES (?, ?, 10, 10)", arguments: [i + 1, name])
                try db.execute(sql: "INSERT INTO requests(id, cache_key, image_id, type, model, context, body_json, status) VALUES (?, ?, ?, 'conversation', 'm', 'c', '{}', 'done')",
                               arguments: [i + 1, "k\(i)", i + 1])
                let turns = #"[{"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A thing."}]"#
                try db.execute(sql: "INSERT INTO samples(request_id, image_id, type, status, conversations_json, turns) VALUES (?, ?, 'conversation', 'ok', ?, 1)",
                               arguments: [i + 1, i + 1, turns])
            }
        }
        // Through `llava-forge run` (a process, as users run it; it also checks the exit code, which
        // an abort at teardown would spoil — see TrainingThread).
        TestPaths.write(pipelineText(database: dbPath, model: w.model, out: w.dir + "/out", steps: 2), to: w.dir + "/p.yaml")
        let first = try runPipelineProcess(w.dir + "/p.yaml")
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertTrue(first.output.contains("[train] done in "), first.output)
        XCTAssertTrue(first.output.contains(": 2 steps, loss "), first.output)
        XCTAssertTrue(first.output.contains("; answer: \""), first.output)
        XCTAssertTrue(first.output.contains("answer (trained model):"), first.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.dir + "/out/checkpoint/model.safetensors"))
        // Nothing changed: the second run skips it.
        let second = try runPipelineProcess(w.dir + "/p.yaml")
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertTrue(second.output.contains("nothing to do"), second.output)
    }
}
