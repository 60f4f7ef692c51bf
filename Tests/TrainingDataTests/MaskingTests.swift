import ForgeCore
import Foundation
import Tokenizers
import TrainingData
import XCTest

/// Our masking against the arrays LLaVA's preprocessing produces (written by
/// tools/reference/make_training_data_fixtures.py from LLaVA's rules with HF `tokenizers`).
final class MaskingTests: XCTestCase {
    struct Fixture {
        var tokenizer: Tokenizer
        var example: TrainingExample
        var prompt: String
        var ids: [Int]
        var labels: [Int]
    }

    func fixture(_ name: String) throws -> Fixture {
        let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixtures + "/masking/\(name).json"))
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let tokenizerFile = TestPaths.repoRoot + "/" + (json["tokenizer"] as! String)
        let tokenizer = try TokenizerLoader.load(folder: (tokenizerFile as NSString).deletingLastPathComponent)
        let turns = (json["conversations"] as! [[String: String]]).map { ConversationTurn(from: $0["from"]!, value: $0["value"]!) }
        let hasImage = turns.contains { $0.value.contains("<image>") }
        return Fixture(tokenizer: tokenizer, example: TrainingExample(id: name, imagePath: hasImage ? "/nonexistent/image.jpg" : nil, turns: turns),
                       prompt: json["prompt"] as! String, ids: (json["input_ids"] as! [NSNumber]).map(\.intValue),
                       labels: (json["labels"] as! [NSNumber]).map(\.intValue))
    }

    func check(_ name: String, _ template: ChatTemplateName) throws {
        let f = try fixture(name)
        let encoder = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(template), imageTokenIndex: 9_999, rowsPerImage: 3, maxLength: 4_096)
        let rendered = try ChatTemplate(template).render(encoder.messages(f.example))
        XCTAssertEqual(rendered.text, f.prompt, "\(name): rendered prompt")
        let (ids, labels) = try encoder.llavaArrays(f.example)
        XCTAssertEqual(ids, f.ids, "\(name): input_ids")
        XCTAssertEqual(labels, f.labels, "\(name): labels")
        XCTAssertTrue(labels.contains { $0 != ignoredLabel }, "\(name): something is trained")
    }

    func testVicunaV1TwoTurnsWithImageMatchesLLaVAPreprocessV1() throws { try check("vicuna_v1", .vicunaV1) }
    func testVicunaV1TextOnlyMatchesLLaVAPreprocessV1() throws { try check("vicuna_v1_text_only", .vicunaV1) }
    func testPlainMatchesLLaVAPreprocessPlain() throws { try check("plain", .plain) }
    func testChatMLMasksHeadersAndTrainsAnswersWithEndOfTurn() throws { try check("chatml", .chatML) }

    /// The fixture really encodes the rule: the answer tokens and each `</s>` are trained, the
    /// "ASSISTANT:" marker is not (a check on the fixture itself, so a wrong golden cannot pass).
    func testVicunaFixtureTrainsAnswersAndEndOfSequenceOnly() throws {
        let f = try fixture("vicuna_v1")
        let trained = zip(f.ids, f.labels).filter { $0.1 != ignoredLabel }.map(\.0)
        let eos = try XCTUnwrap(f.tokenizer.tokenToId("</s>"))
        XCTAssertEqual(trained.filter { $0 == eos }.count, 2, "each answer's </s> is trained")
        XCTAssertEqual(trained.last, eos)
        let text = f.tokenizer.decode(trained, skipSpecialTokens: true)
        XCTAssertTrue(text.contains("cat is sleeping on a sofa.") && text.contains("It is red."), text)
        XCTAssertFalse(text.contains("ASSISTANT") || text.contains("USER") || text.contains("color"), text)
    }

    func testImageExpandsToFeatureRowsAndTruncationIsCounted() throws {
        let f = try fixture("vicuna_v1")
        let full = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(.vicunaV1), imageTokenIndex: 9_999, rowsPerImage: 5, maxLength: 4_096)
        var report = EncodingReport()
        let e = try XCTUnwrap(full.encode(f.example, index: 0, report: &report))
        XCTAssertEqual(e.tokens.count, f.ids.count - 1 + 5)
        XCTAssertEqual(e.tokens.filter { $0 == 9_999 }.count, 5)
        let imageAt = f.ids.firstIndex(of: llavaImageMarker)!
        XCTAssertEqual(Array(e.tokens[imageAt..<(imageAt + 5)]), [Int](repeating: 9_999, count: 5))
        XCTAssertEqual(Array(e.labels[imageAt..<(imageAt + 5)]), [Int](repeating: ignoredLabel, count: 5))
        XCTAssertEqual(Array(e.labels[(imageAt + 5)...]), Array(f.labels[(imageAt + 1)...]))
        XCTAssertEqual(report.truncated, 0)

        // Cut after the first answer's start: truncated and counted, still trainable.
        let firstTrained = f.labels.firstIndex { $0 != ignoredLabel }! + 4
        let cut = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(.vicunaV1), imageTokenIndex: 9_999, rowsPerImage: 5, maxLength: firstTrained + 3)
        report = EncodingReport()
        let t = try XCTUnwrap(cut.encode(f.example, index: 0, report: &report))
        XCTAssertEqual(t.tokens.count, firstTrained + 3)
        XCTAssertTrue(t.truncated)
        XCTAssertEqual(report.truncated, 1)

        // A cut inside the image rows, and one leaving no trained token: dropped and counted.
        let inImage = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(.vicunaV1), imageTokenIndex: 9_999, rowsPerImage: 5, maxLength: imageAt + 2)
        let noTarget = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(.vicunaV1), imageTokenIndex: 9_999, rowsPerImage: 5, maxLength: imageAt + 6)
        let (kept, counts) = try inImage.encodeAll([f.example, f.example])
        XCTAssertTrue(kept.isEmpty)
        XCTAssertEqual(counts.droppedImageCut, 2)
        let (kept2, counts2) = try noTarget.encodeAll([f.example])
        XCTAssertTrue(kept2.isEmpty)
        XCTAssertEqual(counts2.droppedNoTarget, 1)
    }

    func testImagePlaceholderWithoutImageIsAnError() throws {
        let f = try fixture("vicuna_v1")
        var example = f.example
        example.imagePath = nil
        let encoder = ConversationEncoder(tokenizer: f.tokenizer, template: ChatTemplate(.vicunaV1), imageTokenIndex: 9_999, rowsPerImage: 5, maxLength: 4_096)
        let e = forgeError { _ = try encoder.encodeAll([example]) }
        XCTAssertEqual(e?.location, "record vicuna_v1")
        XCTAssertTrue(e?.message.contains("no image") ?? false, "\(String(describing: e))")
    }
}

/// A GGUF's embedded tokenizer written as HF files encodes exactly like the GGUF tokenizer.
final class GGUFTokenizerExportTests: XCTestCase {
    func testSmolLM2TokenizerExportEncodesLikeTheGGUF() throws {
        let gguf = TestPaths.repoRoot + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        guard FileManager.default.fileExists(atPath: gguf) else { throw XCTSkip("SmolLM2 GGUF not fetched (scripts/fetch_model.sh)") }
        let folder = TestPaths.temporaryFolder("gguf-tokenizer")
        XCTAssertTrue(try GGUFTokenizerExport.write(gguf: gguf, to: folder))
        let reference = try TokenizerLoader.load(gguf: gguf)
        let exported = try TokenizerLoader.load(folder: folder)
        let rendered = try ChatTemplate(.chatMLSmolLM).render([.user("<image>\nHow many cats are there in 2024?"), .assistant("There are 3 cats, naïvely.  Done!")]).text
        for text in [rendered, "Hello world 12345 — ünïcödé\tand\nnewlines  ", "<|im_start|>user\nhi<|im_end|>"] {
            XCTAssertEqual(exported.encode(text), reference.encode(text), text)
        }
        XCTAssertEqual(exported.eosTokenId, reference.eosTokenId)
        XCTAssertEqual(exported.chatTemplate, reference.chatTemplate)
        XCTAssertEqual(exported.vocabularySize, reference.vocabularySize)
    }
}
