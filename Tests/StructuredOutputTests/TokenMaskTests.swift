import ForgeCore
import Foundation
import Tokenizers
import XCTest
@testable import Inference

/// Masks over a real (small) byte-level BPE vocabulary, checked against brute force: a token is
/// allowed exactly when its bytes keep the text a valid prefix; and from every state reached, a
/// completion exists.
final class TokenMaskTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func fixtureTokenizer(_ name: String) throws -> Tokenizer {
        try TokenizerLoader.load(gguf: root.appendingPathComponent("Tests/TokenizerTests/Fixtures/\(name)").path)
    }

    let qaSchema = """
        {"type": "object", "properties": {"conversation": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
          "type": "object", "properties": {"question": {"type": "string", "minLength": 1, "maxLength": 12},
                                           "answer": {"type": "string", "minLength": 1, "maxLength": 20}},
          "required": ["question", "answer"], "additionalProperties": false}}},
         "required": ["conversation"], "additionalProperties": false}
        """
    let mixedSchema = """
        {"type": "object", "properties": {
           "kind": {"enum": ["cat", "category", 7]},
           "score": {"type": "number"},
           "tags": {"type": "array", "items": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]}, "maxItems": 3},
           "note": {"type": "string", "maxLength": 6}
         }, "required": ["kind", "score"], "additionalProperties": false}
        """

    func allowed(_ mask: [UInt64], _ id: Int) -> Bool { mask[id >> 6] & (1 << UInt64(id & 63)) != 0 }

    /// Random walks through allowed tokens; at every step the mask equals brute force.
    func checkMasksAgainstBruteForce(tokenizer: Tokenizer, format: ResponseFormat, walks: Int, seed: UInt64) throws {
        let vocabulary = TokenVocabulary(tokenizer: tokenizer)
        let stop = try XCTUnwrap(tokenizer.eosTokenId)
        let compiler = JSONConstraintCompiler(vocabulary: vocabulary)
        var rng = SeededRandom(seed: seed, key: "walk")
        var completedWalks = 0
        for _ in 0..<walks {
            let c = try XCTUnwrap(compiler.makeConstraint(for: format, stopTokenIDs: [stop]))
            var text: [UInt8] = []
            for _ in 0..<80 {
                let mask = c.allowedMask()
                var choices: [Int] = []
                for id in 0..<vocabulary.count {
                    var expected = false
                    if id == stop {
                        expected = c.canEnd
                    } else if let b = vocabulary.tokenBytes[id], !b.isEmpty {
                        expected = c.wouldAccept(b).accepted
                    }
                    XCTAssertEqual(allowed(mask, id), expected, "token \(id) \(String(decoding: vocabulary.tokenBytes[id] ?? [], as: UTF8.self).debugDescription) after \(String(decoding: text, as: UTF8.self).debugDescription)")
                    if expected { choices.append(id) }
                }
                XCTAssertFalse(choices.isEmpty, "dead end after \(String(decoding: text, as: UTF8.self))")
                guard !choices.isEmpty else { return }
                // Prefer structure now and then, so walks reach the end.
                let structural = choices.filter { id in id == stop || (vocabulary.tokenBytes[id]?.contains { "\"}],:".utf8.contains($0) } ?? false) }
                let pool = (rng.next() % 3 == 0 && !structural.isEmpty) ? structural : choices
                let id = pool[Int(rng.next() % UInt64(pool.count))]
                if id == stop { completedWalks += 1; break }
                text += vocabulary.tokenBytes[id]!
                c.accept(id)
                XCTAssertFalse(c.isBroken)
            }
            try assertCompletionExists(c, vocabulary: vocabulary, stop: stop, after: text)
        }
        XCTAssertGreaterThan(completedWalks, 0, "no walk reached EOS")
    }

    /// Depth-first over allowed tokens, closing structures first: EOS must be reachable.
    func assertCompletionExists(_ c: TokenConstraint, vocabulary: TokenVocabulary, stop: Int, after text: [UInt8]) throws {
        let order = Array("\"}],0a:".utf8)
        for _ in 0..<400 {
            let mask = c.allowedMask()
            if allowed(mask, stop) { return }
            var next: Int?
            for b in order {
                if let id = vocabulary.tokenBytes.firstIndex(where: { $0 == [b] }), allowed(mask, id) { next = id; break }
            }
            if next == nil { next = (0..<vocabulary.count).first { allowed(mask, $0) } }
            guard let id = next else { return XCTFail("no token allowed after \(String(decoding: text, as: UTF8.self))") }
            c.accept(id)
        }
        XCTFail("no completion within 400 tokens after \(String(decoding: text, as: UTF8.self))")
    }

    func testByteLevelMasksEqualBruteForceForAConversationSchema() throws {
        try checkMasksAgainstBruteForce(tokenizer: try Self.fixtureTokenizer("bytelevel.gguf"),
                                        format: .jsonSchema(name: "qa", schema: qaSchema, strict: true), walks: 4, seed: 1)
    }

    func testByteLevelMasksEqualBruteForceForEnumsNumbersAndAnyOf() throws {
        try checkMasksAgainstBruteForce(tokenizer: try Self.fixtureTokenizer("bytelevel.gguf"),
                                        format: .jsonSchema(name: "m", schema: mixedSchema, strict: true), walks: 4, seed: 2)
    }

    func testSentencePieceMasksEqualBruteForceInJSONObjectMode() throws {
        try checkMasksAgainstBruteForce(tokenizer: try Self.fixtureTokenizer("spm.gguf"), format: .jsonObject, walks: 3, seed: 3)
    }

    func testTokenBytesOfByteLevelAndSentencePieceTokens() throws {
        let bpe = try Self.fixtureTokenizer("bytelevel.gguf")
        for text in ["Hello world! This is a test.", "naïve café ✓ {\"a\": 1}"] {
            let ids = bpe.encode(text, addSpecialTokens: false)
            XCTAssertEqual(ids.flatMap { bpe.tokenBytes($0) ?? [] }, Array(text.utf8), "byte-level bytes concatenate to the text")
        }
        let spm = try Self.fixtureTokenizer("spm.gguf")
        let text = "Hello world, this is a test"
        let ids = spm.encode(text, addSpecialTokens: false)
        let bytes = ids.flatMap { spm.tokenBytes($0) ?? [] }
        // SentencePiece prepends a space (▁) that its decoder strips at the start of the text.
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces), text)
        for id in [spm.bosTokenId, spm.eosTokenId].compactMap({ $0 }) { XCTAssertNil(spm.tokenBytes(id), "special tokens have no bytes") }
    }
}
