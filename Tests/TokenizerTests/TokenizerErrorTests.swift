import ForgeCore
import Foundation
import XCTest
@testable import Tokenizers

final class TokenizerErrorTests: XCTestCase {
    func loadJSON(_ text: String) throws -> Tokenizer {
        try TokenizerLoader.load(tokenizerJSON: try JSON.parse(Array(text.utf8), file: "t.json"), file: "t.json")
    }

    func assertError(_ text: String, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try loadJSON(text), file: file, line: line) { error in
            guard let forge = error as? ForgeError else { return XCTFail("not a ForgeError: \(error)", file: file, line: line) }
            let message = forge.description
            for p in parts { XCTAssert(message.contains(p), "\(message) lacks \(p)", file: file, line: line) }
        }
    }

    let model = #""model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}"#

    func testValidMinimalTokenizer() throws {
        let t = try loadJSON("{\(model)}")
        XCTAssertEqual(t.encode("abab", addSpecialTokens: true), [2, 2])
        XCTAssertEqual(t.decode([2, 0]), "ab a") // no decoder: tokens joined with spaces, like HF
    }

    func testBadInputs() {
        assertError("{\"model\": ", mentions: ["t.json", "byte"])
        assertError("[]", mentions: ["JSON object"])
        assertError(#"{"model": {"type": "Unigram", "vocab": []}}"#, mentions: ["Unigram", "model.type"])
        assertError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]}}"#, mentions: ["model.merges[0]", "missing"])
        assertError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#, mentions: ["model.merges[0]", "\"ab\""])
        assertError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}}"#, mentions: ["model.merges[0]"])
        assertError(#"{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}"#, mentions: ["model.vocab"])
        assertError("{\(model), \"pre_tokenizer\": {\"type\": \"Magic\"}}", mentions: ["Magic", "pre_tokenizer.type"])
        assertError("{\(model), \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Nope\"}]}}",
                    mentions: ["normalizer.normalizers[0].type"])
        assertError("{\(model), \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
                    mentions: ["pre_tokenizer.pattern"])
        assertError("{\(model), \"added_tokens\": [{\"content\": \"x\"}]}", mentions: ["added_tokens[0]"])
    }

    func testMissingFolderFiles() {
        XCTAssertThrowsError(try TokenizerLoader.load(folder: "/nonexistent/folder")) { error in
            XCTAssert("\(error)".contains("tokenizer.json"), "\(error)")
        }
    }

    func testUnknownIdsDecodeToNothing() throws {
        let t = try loadJSON("{\(model), \"decoder\": {\"type\": \"Fuse\"}}")
        XCTAssertEqual(t.decode([2, 99, -1, 0]), "aba")
        XCTAssertNil(t.idToToken(99))
    }
}
