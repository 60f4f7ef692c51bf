import Checkpoints
import Foundation
import XCTest
@testable import Tokenizers

final class GGUFTokenizerTests: XCTestCase {
    func testByteLevelGGUF() throws {
        let tokenizer = try TokenizerLoader.load(gguf: try Fixtures.path("bytelevel.gguf"))
        let problems = goldenDifferences(tokenizer, try Fixtures.golden("bytelevel_gguf_expected.json"))
        XCTAssert(problems.isEmpty, "\(problems.count) differences:\n" + problems.prefix(12).joined(separator: "\n"))
        XCTAssertFalse(tokenizer.addsBOS)
        XCTAssertEqual(tokenizer.bosTokenId, 0)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(ChatTemplate.inferred(fromJinja: try XCTUnwrap(tokenizer.chatTemplate))?.name, .chatML)
    }

    func testSentencePieceGGUFWithScores() throws {
        let tokenizer = try TokenizerLoader.load(gguf: try Fixtures.path("spm.gguf"))
        let problems = goldenDifferences(tokenizer, try Fixtures.golden("spm_gguf_expected.json"))
        XCTAssert(problems.isEmpty, "\(problems.count) differences:\n" + problems.prefix(12).joined(separator: "\n"))
        XCTAssertTrue(tokenizer.addsBOS)
        XCTAssertEqual(tokenizer.unkTokenId, 0)
    }

    /// The real SmolLM2-135M-Instruct tokenizer (skipped when the model is not present).
    func testSmolLM2RealGGUF() throws {
        guard let path = Fixtures.smolLM2() else {
            throw XCTSkip("SmolLM2 GGUF not found: set LLAVA_FORGE_SMOLLM2_GGUF or run scripts/fetch_model.sh (models/SmolLM2-135M-Instruct.Q4_1.gguf)")
        }
        let tokenizer = try TokenizerLoader.load(gguf: path)
        let golden = try Fixtures.golden("smollm2.json")
        let problems = goldenDifferences(tokenizer, golden, checkNoSpecial: false)
        XCTAssert(problems.isEmpty, "\(problems.count) differences:\n" + problems.prefix(12).joined(separator: "\n"))
        XCTAssertEqual(tokenizer.vocabularySize, 49152)
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertFalse(tokenizer.addsBOS, "SmolLM2's GGUF says add_bos_token = false")
        let template = try XCTUnwrap(tokenizer.chatTemplate)
        XCTAssertEqual(ChatTemplate.inferred(fromJinja: template)?.name, .chatMLSmolLM)
        // The rendered default-system prompt tokenizes to the golden ids.
        let prompt = try ChatTemplate(.chatMLSmolLM).generationPrompt([.user("What is the capital of France?")])
        let expected = try XCTUnwrap(golden.cases.first { $0.text == prompt.text }, "fixture lacks the rendered prompt")
        XCTAssertEqual(tokenizer.encode(prompt.text, addSpecialTokens: true), expected.ids)
    }

    func testGGUFWithoutTokenizerIsAClearError() throws {
        // A minimal GGUF v3: no tensors, one metadata key (general.architecture = "llama").
        var bytes: [UInt8] = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); bytes += Array(s.utf8) }
        u32(3); u64(0); u64(1)
        str("general.architecture"); u32(8); str("llama")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("no-tokenizer-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try TokenizerLoader.load(gguf: url.path)) { error in
            let message = "\(error)"
            XCTAssert(message.contains("tokenizer.ggml.model") && message.contains(url.path), message)
        }
    }
}
