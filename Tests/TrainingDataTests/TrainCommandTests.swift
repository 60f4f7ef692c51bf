import ForgeCore
import Foundation
import TrainingData
import XCTest

/// `llava-forge train` run as a process on the tiny LLaVA fixture (Tests/TrainingTests/Fixtures,
/// vocab 300, 42-px tower with 9 rows) with the ChatML tokenizer fixture of Tests/CLITests.
final class TrainCommandTests: XCTestCase {
    struct Run {
        var status: Int32
        var signalled: Bool
        var stdout: String
        var stderr: String
    }

    static func binaryPath() throws -> String {
        let bundleDir = Bundle(for: TrainCommandTests.self).bundleURL.deletingLastPathComponent().path
        for candidate in [bundleDir + "/llava-forge", TestPaths.repoRoot + "/.build/debug/llava-forge"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw ForgeError(.io, "llava-forge binary not found (run `swift build --build-tests` first)")
    }

    func train(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binaryPath())
        process.arguments = ["train"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                   stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }

    func makeWorkspace(_ name: String) throws -> TinyWorkspace { try makeTinyLlavaWorkspace(name) }

    func losses(_ out: String) throws -> [Double] {
        let text = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8)
        return try TrainingMetrics.parse(csv: text, file: out + "/metrics.csv").map(\.loss)
    }

    func common(_ w: TinyWorkspace, out: String) -> [String] {
        ["--data", w.data, "--images", w.images, "--llm", w.model, "--out", out, "--batch-tokens", "96", "--max-length", "64",
         "--lr", "3e-3", "--warmup-ratio", "0", "--seed", "3"]
    }

    func testAFewStepsLowerTheLossAndWriteACompleteRun() throws {
        let w = try makeWorkspace("train-few")
        let out = w.dir + "/run"
        let run = try train(common(w, out: out) + ["--max-steps", "8", "--eval-fraction", "0.2", "--eval-every", "4"])
        XCTAssertEqual(run.status, 0, run.stderr + run.stdout)
        let l = try losses(out)
        XCTAssertEqual(l.count, 8)
        XCTAssertLessThan(l.suffix(2).reduce(0, +) / 2, l.prefix(2).reduce(0, +) / 2 * 0.9, "loss goes down: \(l)")
        XCTAssertTrue(run.stdout.contains("step 8/8"), run.stdout)
        XCTAssertTrue(run.stdout.contains("template chatml"), run.stdout)
        for file in ["checkpoint/model.safetensors", "checkpoint/config.json", "checkpoint/optimizer.safetensors", "checkpoint/trainer_state.json",
                     "checkpoint/tokenizer.json", "checkpoint/preprocessor_config.json", "data_order.json", "loss.svg", "run_summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + file), file)
        }
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run_summary.json"))) as! [String: Any]
        XCTAssertNotNil(summary["evalLoss"] as? Double)
        XCTAssertEqual((summary["textOnly"] as? Int).map { $0 <= 1 }, true)
        let towerCalls = summary["towerCalls"] as! Int
        XCTAssertGreaterThanOrEqual(towerCalls, 4)
        let csvLines = try String(contentsOfFile: out + "/metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(csvLines[3].hasSuffix(","), "no eval loss at step 3")
        XCTAssertFalse(csvLines[4].hasSuffix(","), "eval loss at step 4")

        // A second run over the same feature cache makes no tower pass.
        let again = try train(common(w, out: out) + ["--max-steps", "2", "--overwrite", "--eval-fraction", "0.2"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let second = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/run_summary.json"))) as! [String: Any]
        XCTAssertEqual(second["towerCalls"] as? Int, 0)
        XCTAssertEqual(second["featureCacheHits"] as? Int, towerCalls)
        // The checkpoint is a llava folder our loader (and predict) reads.
        XCTAssertTrue(try String(contentsOfFile: out + "/checkpoint/config.json", encoding: .utf8).contains("\"llava\""))
    }

    func testKilledAndResumedRunGivesTheSameLossesAsAnUninterruptedOne() throws {
        let w = try makeWorkspace("train-resume")
        let straight = try train(common(w, out: w.dir + "/straight") + ["--max-steps", "6", "--save-every", "3"])
        XCTAssertEqual(straight.status, 0, straight.stderr)
        let expected = try losses(w.dir + "/straight")
        XCTAssertEqual(expected.count, 6)

        let out = w.dir + "/killed"
        let killed = try train(common(w, out: out) + ["--max-steps", "6", "--save-every", "3", "--debug-kill-after-step", "4"])
        XCTAssertTrue(killed.signalled, "the process was killed: \(killed.status) \(killed.stderr)")
        XCTAssertEqual(try losses(out).count, 4, "step 4 ran, its checkpoint was never written")
        let resumed = try train(common(w, out: out) + ["--max-steps", "6", "--save-every", "3", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("resumed at step 3 of 6"), resumed.stdout)
        XCTAssertEqual(try losses(out), expected, "same six losses, data order included")
        // Without --resume an existing run is refused, not overwritten.
        let refused = try train(common(w, out: out) + ["--max-steps", "6"])
        XCTAssertEqual(refused.status, 64)
        XCTAssertTrue(refused.stderr.contains("--resume"), refused.stderr)
    }

    func testStageOneTrainsTheProjectorWithThePlainTemplate() throws {
        let w = try makeWorkspace("train-stage1")
        let out = w.dir + "/run"
        let run = try train(common(w, out: out) + ["--stage", "1", "--max-steps", "4", "--lr", "1e-2"])
        XCTAssertEqual(run.status, 0, run.stderr + run.stdout)
        XCTAssertTrue(run.stdout.contains("template plain; stage 1"), run.stdout)
        XCTAssertTrue(run.stdout.contains("1 without an image skipped by plain"), run.stdout)
        let l = try losses(out)
        XCTAssertEqual(l.count, 4)
        XCTAssertLessThan(l.last!, l.first!, "\(l)")
    }

    func testLoRAFlagsTrainAdaptersAndSaveAMergedCheckpoint() throws {
        let w = try makeWorkspace("train-lora")
        let out = w.dir + "/run"
        let run = try train(common(w, out: out) + ["--max-steps", "4", "--lora-rank", "4", "--lora-alpha", "8", "--lora-targets", "q_proj,v_proj"])
        XCTAssertEqual(run.status, 0, run.stderr + run.stdout)
        let l = try losses(out)
        XCTAssertEqual(l.count, 4)
        XCTAssertLessThan(l.last!, l.first!, "\(l)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/checkpoint/lora_trainable.safetensors"), "the unmerged adapters for --resume")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/checkpoint/model.safetensors"), "the merged model")
        let stage1 = try train(common(w, out: w.dir + "/s1") + ["--stage", "1", "--max-steps", "1", "--lora-rank", "4"])
        XCTAssertEqual(stage1.status, 64, stage1.stderr)
        XCTAssertTrue(stage1.stderr.contains("--stage 2"), stage1.stderr)
        let badTarget = try train(common(w, out: w.dir + "/bt") + ["--max-steps", "1", "--lora-rank", "4", "--lora-targets", "qq_proj"])
        XCTAssertNotEqual(badTarget.status, 0)
        XCTAssertTrue(badTarget.stderr.contains("qq_proj"), badTarget.stderr)
    }

    func testBadInputIsAClearErrorNamingTheFile() throws {
        let w = try makeWorkspace("train-bad")
        TestPaths.write("[{\"id\": \"x\", \"image\": \"nope.jpg\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\nQ\"}, {\"from\": \"gpt\", \"value\": \"A\"}]}]", to: w.dir + "/bad.json")
        var run = try train(["--data", w.dir + "/bad.json", "--images", w.images, "--llm", w.model, "--out", w.dir + "/o", "--max-steps", "1"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains(w.dir + "/bad.json: record 0 (line 1).image"), run.stderr)
        XCTAssertTrue(run.stderr.contains("nope.jpg"), run.stderr)
        run = try train(["--data", w.data, "--images", w.images, "--llm", w.dir + "/missing", "--out", w.dir + "/o", "--max-steps", "1"])
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains(w.dir + "/missing"), run.stderr)
        run = try train(["--data", w.data, "--images", w.images, "--llm", w.model, "--out", w.dir + "/o", "--stage", "3"])
        XCTAssertEqual(run.status, 64)
    }
}
