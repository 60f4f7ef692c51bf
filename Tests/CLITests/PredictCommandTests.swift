import XCTest
import Foundation
import Checkpoints
import ForgeCore
import Imaging
import Models
import Tokenizers

/// `llava-forge predict` run as a process (the debug build of the binary) on the model fixtures of
/// Tests/ModelTests/Fixtures (tools/reference/make_model_fixtures.py): dumped prompt logits equal
/// transformers' golden logits, greedy ids equal the library's own greedy decode, the real SmolLM2
/// GGUF gives transformers' greedy continuation, and bad input fails with a clear message.
final class PredictCommandTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let fixtures = repoRoot + "/Tests/ModelTests/Fixtures"
    static let tolerance: Float = 1e-4

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func binaryPath() throws -> String {
        var candidates: [String] = []
        let bundleDir = Bundle(for: PredictCommandTests.self).bundleURL.deletingLastPathComponent().path
        candidates.append(bundleDir + "/llava-forge")
        candidates.append(repoRoot + "/.build/debug/llava-forge")
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ForgeError(.io, "llava-forge binary not found (run `swift build --build-tests` first); looked at \(candidates)")
        }
        return found
    }

    func predict(_ arguments: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.binaryPath())
        p.arguments = ["predict"] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read before waiting so a full pipe cannot block the child.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    func caseJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/\(name)/case.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func ints(_ json: [String: Any], _ key: String) -> [Int] { (json[key] as! [NSNumber]).map(\.intValue) }

    func rawFloats(_ path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func temporaryPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("predict-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    func idsJSON(_ ids: [Int]) -> String { "[" + ids.map(String.init).joined(separator: ",") + "]" }

    func parseIDs(_ text: String) throws -> [Int] {
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [Int]
    }

    /// Dumps the logits of `ids` through `predict` and compares them with the golden file.
    func checkDumpedLogits(model: String, ids: [Int], golden: String, extra: [String] = [], tolerance: Float = tolerance) throws {
        let npy = temporaryPath(UUID().uuidString + ".npy")
        let run = try predict(["--model", model, "--prompt-ids", idsJSON(ids), "--max-tokens", "0", "--dump-logits", npy] + extra)
        XCTAssertEqual(run.status, 0, run.stderr)
        let (shape, values) = try NumpyArrayFile.read(path: npy)
        let expected = try rawFloats(golden)
        XCTAssertEqual(shape, [ids.count, expected.count / ids.count])
        let difference = maxAbsDifference(values, expected)
        XCTAssertLessThanOrEqual(difference, tolerance, "\(model): max |Δlogit| \(difference)")
    }

    // MARK: - Tiny fixtures

    func testTinyLlamaDumpedLogitsMatchTransformers() throws {
        let ids = ints(try caseJSON("tiny_llama"), "input_ids")
        try checkDumpedLogits(model: "\(Self.fixtures)/tiny_llama/model", ids: ids, golden: "\(Self.fixtures)/tiny_llama/logits.f32")
    }

    func testTinyGGUFDumpedLogitsAreTheFloatReference() throws {
        let ids = ints(try caseJSON("tiny_llama_gguf"), "input_ids")
        try checkDumpedLogits(model: "\(Self.fixtures)/tiny_llama_gguf/tiny_llama.Q8_0.gguf", ids: ids,
                              golden: "\(Self.fixtures)/tiny_llama_gguf/logits.f32")
    }

    func testTinyLlamaGreedyIdsEqualTheLibrarysGreedyDecode() throws {
        let folder = "\(Self.fixtures)/tiny_llama/model"
        let ids = ints(try caseJSON("tiny_llama"), "input_ids")
        let model = try ModelLoader.loadLanguageModel(path: folder)
        let expected = try model.greedy(prompt: ids, maxTokens: 12, stop: [model.config.eosTokenID!])
        let run = try predict(["--model", folder, "--prompt-ids", idsJSON(ids), "--max-tokens", "12", "--print-ids"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try parseIDs(run.stdout), expected)
        XCTAssertTrue(run.stderr.contains("prompt tokens: \(ids.count)"), run.stderr)
        XCTAssertTrue(run.stderr.contains("generated tokens: \(expected.count)"), run.stderr)
        XCTAssertTrue(run.stderr.contains("tok/s"), run.stderr)
        // Sampling is seeded: the same seed gives the same ids.
        let sampledA = try predict(["--model", folder, "--prompt-ids", idsJSON(ids), "--max-tokens", "12", "--print-ids", "--temperature", "1.5", "--seed", "7", "--ignore-eos"])
        let sampledB = try predict(["--model", folder, "--prompt-ids", idsJSON(ids), "--max-tokens", "12", "--print-ids", "--temperature", "1.5", "--seed", "7", "--ignore-eos"])
        XCTAssertEqual(sampledA.status, 0, sampledA.stderr)
        XCTAssertEqual(try parseIDs(sampledA.stdout).count, 12)
        XCTAssertEqual(sampledA.stdout, sampledB.stdout)
    }

    func testTinyLlavaImageAndTextLogitsMatchTransformers() throws {
        let json = try caseJSON("tiny_llava")
        let folder = "\(Self.fixtures)/tiny_llava/model"
        try checkDumpedLogits(model: folder, ids: ints(json, "image_input_ids"), golden: "\(Self.fixtures)/tiny_llava/image_logits.f32",
                              extra: ["--pixel-values", "\(Self.fixtures)/tiny_llava/pixel_values.f32"])
        try checkDumpedLogits(model: folder, ids: ints(json, "text_input_ids"), golden: "\(Self.fixtures)/tiny_llava/text_logits.f32")
    }

    /// A real photo through the whole path (decode → CLIP preprocessing → tower → projector →
    /// splice → LM): the dumped logits equal the library's in-process forward, and the first greedy
    /// id is the argmax of the last prompt row.
    func testTinyLlavaWithAPhoto() throws {
        let json = try caseJSON("tiny_llava")
        let folder = "\(Self.fixtures)/tiny_llava/model"
        let photo = Self.repoRoot + "/seeds/images/blurred_wall_clock.jpg"
        guard FileManager.default.fileExists(atPath: photo) else { throw XCTSkip("no seed photo at \(photo)") }
        let ids = ints(json, "image_input_ids")
        let npy = temporaryPath("photo.npy")
        let run = try predict(["--model", folder, "--image", photo, "--prompt-ids", idsJSON(ids), "--max-tokens", "3", "--print-ids",
                               "--ignore-eos", "--dump-logits", npy])
        XCTAssertEqual(run.status, 0, run.stderr)
        guard case .llava(let model) = try ModelLoader.load(path: folder) else { return XCTFail("tiny_llava is not a llava model") }
        let image = try ImageDecoder.decode(path: photo)
        let pixels = CLIPPreprocessor(config: .openAI(resolution: model.config.visionConfig.imageSize)).pixelValues(image, padToSquare: false)
        let expected = try model.logits(tokens: ids, pixelValues: pixels)
        let (shape, dumped) = try NumpyArrayFile.read(path: npy)
        let v = model.language.config.vocabSize
        XCTAssertEqual(shape, [ids.count, v])
        XCTAssertLessThanOrEqual(maxAbsDifference(dumped, expected), 1e-5)
        let generated = try parseIDs(run.stdout)
        XCTAssertEqual(generated.count, 3)
        let last = Array(expected.suffix(v))
        XCTAssertEqual(generated.first, last.indices.max(by: { last[$0] < last[$1] || (last[$0] == last[$1] && $0 > $1) }))
    }

    /// A text prompt with `<image>` through the tokenizer: tiny_llava + a 300-id byte-level
    /// tokenizer (tools/reference/make_cli_fixtures.py). The ids `predict` feeds — shown by the
    /// dumped logits' row count and values — are HF `tokenizers`' ids with `<image>` expanded to the
    /// image's 9 feature rows, both as written (`--template none`) and in the llava-hf template
    /// (auto for a llava folder whose tokenizer has no chat template).
    func testImagePlaceholderExpandsToTheImageRows() throws {
        let photo = Self.repoRoot + "/seeds/images/blurred_wall_clock.jpg"
        guard FileManager.default.fileExists(atPath: photo) else { throw XCTSkip("no seed photo at \(photo)") }
        let fixture = Self.repoRoot + "/Tests/CLITests/Fixtures/tiny_llava_tokenizer"
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/expected.json"))) as! [String: Any]
        let folder = temporaryPath("tiny_llava_with_tokenizer")
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.createSymbolicLink(atPath: folder + "/" + file, withDestinationPath: "\(Self.fixtures)/tiny_llava/model/\(file)")
        }
        try FileManager.default.createSymbolicLink(atPath: folder + "/tokenizer.json", withDestinationPath: fixture + "/tokenizer.json")

        guard case .llava(let model) = try ModelLoader.load(path: folder) else { return XCTFail("not a llava model") }
        let pixels = CLIPPreprocessor(config: .openAI(resolution: model.config.visionConfig.imageSize))
            .pixelValues(try ImageDecoder.decode(path: photo), padToSquare: false)
        let question = expected["question"] as! String
        for (template, prompt, key) in [("none", "<image>\n" + question, "none_ids"), ("auto", question, "llava_hf_ids")] {
            let ids = ints(expected, key)
            let npy = temporaryPath("expanded-\(template).npy")
            let run = try predict(["--model", folder, "--image", photo, "--prompt", prompt, "--template", template,
                                   "--max-tokens", "2", "--ignore-eos", "--dump-logits", npy])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stderr.contains("prompt tokens: \(ids.count) "), "\(template): \(run.stderr)")
            let (shape, dumped) = try NumpyArrayFile.read(path: npy)
            XCTAssertEqual(shape, [ids.count, model.language.config.vocabSize], template)
            let reference = try model.logits(tokens: ids, pixelValues: pixels)
            XCTAssertLessThanOrEqual(maxAbsDifference(dumped, reference), 1e-5, template)
        }
        // Two placeholders for one image is a usage error.
        let twice = try predict(["--model", folder, "--image", photo, "--prompt", "<image><image>hi", "--template", "none"])
        XCTAssertEqual(twice.status, 64, twice.stderr)
    }

    // MARK: - SmolLM2 GGUF (skipped when absent)

    var smolLM2Path: String {
        if let path = ProcessInfo.processInfo.environment["LLAVA_FORGE_SMOLLM2_GGUF"], !path.isEmpty { return path }
        return Self.repoRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    func testSmolLM2GreedyContinuationMatchesTransformers() throws {
        guard FileManager.default.fileExists(atPath: smolLM2Path) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(smolLM2Path) (set LLAVA_FORGE_SMOLLM2_GGUF)")
        }
        let json = try caseJSON("smollm2")
        let prompt = json["prompt"] as! String
        let greedyIDs = ints(json, "greedy_ids")
        let text = try predict(["--model", smolLM2Path, "--prompt", prompt, "--template", "none", "--max-tokens", "\(greedyIDs.count)"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertEqual(text.stdout, (json["greedy_text"] as! String) + "\n")
        XCTAssertTrue(text.stderr.contains("prompt tokens: \(ints(json, "input_ids").count) "), text.stderr)
        XCTAssertTrue(text.stderr.contains("generated tokens: \(greedyIDs.count),"), text.stderr)

        // Same ids from the quantized decode (generation) as from transformers' float path, and the
        // dumped prompt logits are the float reference (SmolLM2GGUFTests' 5e-4: 30 layers of float32
        // summation-order differences, 35× below the smallest greedy top-1 margin).
        let npy = temporaryPath("smollm2.npy")
        let ids = try predict(["--model", smolLM2Path, "--prompt", prompt, "--template", "none", "--max-tokens", "\(greedyIDs.count)",
                               "--print-ids", "--dump-logits", npy])
        XCTAssertEqual(ids.status, 0, ids.stderr)
        XCTAssertEqual(try parseIDs(ids.stdout), greedyIDs)
        let (shape, logits) = try NumpyArrayFile.read(path: npy)
        let stride = (json["logits_column_stride"] as! NSNumber).intValue
        XCTAssertEqual(shape, [ints(json, "input_ids").count, 49152])
        var strided: [Float] = []
        for row in 0..<shape[0] { for column in Swift.stride(from: 0, to: shape[1], by: stride) { strided.append(logits[row * shape[1] + column]) } }
        let expected = try rawFloats("\(Self.fixtures)/smollm2/logits_strided.f32")
        XCTAssertLessThanOrEqual(maxAbsDifference(strided, expected), 5e-4)
    }

    /// The auto template for the SmolLM2 GGUF is chatml-smollm (its Jinja template is ChatML with
    /// SmolLM2's system prompt); generation ends at <|im_end|>, which is not printed.
    func testSmolLM2ChatTemplateStopsAtEndOfTurn() throws {
        guard FileManager.default.fileExists(atPath: smolLM2Path) else { throw XCTSkip("SmolLM2 GGUF not found at \(smolLM2Path)") }
        let question = "What is the capital of France?"
        let tokenizer = try TokenizerLoader.load(gguf: smolLM2Path)
        let rendered = try ChatTemplate(.chatMLSmolLM).generationPrompt([.user(question)]).text
        let expectedCount = tokenizer.encode(rendered).count
        let run = try predict(["--model", smolLM2Path, "--prompt", question, "--max-tokens", "48"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("prompt tokens: \(expectedCount) "), run.stderr)
        XCTAssertTrue(run.stderr.contains("finish: stop"), run.stderr)
        XCTAssertTrue(run.stdout.contains("Paris"), run.stdout)
        XCTAssertFalse(run.stdout.contains("<|im_end|>"), run.stdout)
    }

    // MARK: - Bad input

    func testMissingModelIsAClearError() throws {
        let run = try predict(["--model", "/nonexistent/model-dir", "--prompt", "hi"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("/nonexistent/model-dir") && run.stderr.contains("model not found"), run.stderr)
    }

    func testUnreadableImageIsAClearError() throws {
        let bad = Self.repoRoot + "/Tests/ImagingTests/Fixtures/bad/text_named.jpg"
        let ids = ints(try caseJSON("tiny_llava"), "image_input_ids")
        let run = try predict(["--model", "\(Self.fixtures)/tiny_llava/model", "--image", bad, "--prompt-ids", idsJSON(ids)])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("text_named.jpg"), run.stderr)
        let missing = try predict(["--model", "\(Self.fixtures)/tiny_llava/model", "--image", "/nonexistent/cat.jpg", "--prompt-ids", idsJSON(ids)])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/cat.jpg"), missing.stderr)
    }

    func testImagePlaceholderWithoutImageAndImageForTextModelAreErrors() throws {
        let noImage = try predict(["--model", "\(Self.fixtures)/tiny_llama/model", "--prompt", "<image>\nWhat is this?"])
        XCTAssertEqual(noImage.status, 64, noImage.stderr)
        XCTAssertTrue(noImage.stderr.contains("<image>") && noImage.stderr.contains("--image"), noImage.stderr)
        let photo = Self.repoRoot + "/seeds/images/blurred_wall_clock.jpg"
        let textModel = try predict(["--model", "\(Self.fixtures)/tiny_llama/model", "--image", photo, "--prompt-ids", "[1,2,3]"])
        XCTAssertNotEqual(textModel.status, 0)
        XCTAssertTrue(textModel.stderr.contains("llava"), textModel.stderr)
        let badIDs = try predict(["--model", "\(Self.fixtures)/tiny_llama/model", "--prompt-ids", "[1, 5000]"])
        XCTAssertNotEqual(badIDs.status, 0)
        XCTAssertTrue(badIDs.stderr.contains("5000"), badIDs.stderr)
    }
}
