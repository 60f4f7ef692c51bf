import XCTest
@testable import Tokenizers

/// Token ids and decoded text equal HF `tokenizers` on the mixed corpus, for every pipeline.
final class GoldenTokenizerTests: XCTestCase {
    func checkFolder(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path(name))
        let golden = try Fixtures.golden(name + "/expected.json")
        XCTAssertGreaterThan(golden.cases.count, 30)
        let problems = goldenDifferences(tokenizer, golden)
        XCTAssert(problems.isEmpty, "\(name): \(problems.count) differences:\n" + problems.prefix(12).joined(separator: "\n"), file: file, line: line)
    }

    func testByteLevelGPT2() throws { try checkFolder("bytelevel") }
    func testByteLevelSmolLMPreTokenizer() throws { try checkFolder("bytelevel_smollm") }
    func testByteLevelLlama3Split() throws { try checkFolder("bytelevel_llama3") }
    func testSentencePieceNormalizer() throws { try checkFolder("spm") }
    func testSentencePieceMetaspace() throws { try checkFolder("spm_metaspace") }
    func testSentencePieceMetaspaceWithoutSplit() throws { try checkFolder("spm_metaspace_whole") }
    func testNFKCLowercaseAndICUSplit() throws { try checkFolder("bytelevel_norm") }

    func testSpecialTokenIdsAndVocabulary() throws {
        let byteLevel = try TokenizerLoader.load(folder: try Fixtures.path("bytelevel"))
        XCTAssertEqual(byteLevel.bosTokenId, byteLevel.tokenToId("<|endoftext|>"))
        XCTAssertEqual(byteLevel.eosTokenId, byteLevel.tokenToId("<|im_end|>"))
        XCTAssertEqual(byteLevel.padTokenId, 0)
        XCTAssertFalse(byteLevel.addsBOS)
        XCTAssertEqual(byteLevel.idToToken(1), "<|im_start|>")
        XCTAssertTrue(byteLevel.isSpecial(1))
        XCTAssertFalse(byteLevel.isSpecial(try XCTUnwrap(byteLevel.tokenToId("<image>"))))
        XCTAssertEqual(byteLevel.vocabularySize, 1504) // 1500 trained + <mask>, <rs>, <image>, [WORD]

        let spm = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        XCTAssertEqual(spm.bosTokenId, 1)
        XCTAssertEqual(spm.eosTokenIds, [2])
        XCTAssertEqual(spm.unkTokenId, 0)
        XCTAssertTrue(spm.addsBOS)
        XCTAssertEqual(spm.tokenToId("<0x0A>"), 3 + 0x0A)
        XCTAssertEqual(spm.encode("hi", addSpecialTokens: true).first, 1)
    }

    /// LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token.
    func testLlamaTokenizerClassHonoursAddBosAndEos() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-llama-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(atPath: try Fixtures.path("spm/tokenizer.json"), toPath: dir.appendingPathComponent("tokenizer.json").path)
        let config = #"{"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": false, "add_eos_token": true, "bos_token": "<s>", "eos_token": {"content": "</s>", "special": true}}"#
        try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        try #"{"eos_token_id": [2, 5]}"#.write(to: dir.appendingPathComponent("generation_config.json"), atomically: true, encoding: .utf8)
        let tokenizer = try TokenizerLoader.load(folder: dir.path)
        let plain = tokenizer.encode("hello world", addSpecialTokens: false)
        XCTAssertEqual(tokenizer.encode("hello world", addSpecialTokens: true), plain + [2])
        XCTAssertFalse(tokenizer.addsBOS)
        XCTAssertEqual(tokenizer.eosTokenIds, [2, 5])
    }

    func testSourcesPointAtTheCharactersTokensStartAt() throws {
        let spm = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        let text = "the cat</s> sat"
        let encoded = spm.encodeWithSources(text, addSpecialTokens: true)
        XCTAssertEqual(encoded.ids.count, encoded.sourceScalarIndex.count)
        XCTAssertEqual(encoded.sourceScalarIndex.first, -1) // BOS
        let scalars = Array(text.unicodeScalars)
        // </s> is matched at scalar 7.
        let eosIndex = try XCTUnwrap(encoded.ids.firstIndex(of: 2))
        XCTAssertEqual(encoded.sourceScalarIndex[eosIndex], 7)
        XCTAssertEqual(encoded.sourceScalarIndex, encoded.sourceScalarIndex.sorted())
        XCTAssert(encoded.sourceScalarIndex.allSatisfy { $0 < scalars.count })
    }
}
