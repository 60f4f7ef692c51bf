import ForgeCore
import Foundation
import XCTest
@testable import Tokenizers

final class TokenizerErrorTests: XCTestCase {
    func loadJSON(_ text: String) throws -> Tokenizer {
        try TokenizerLoader.load(tokenizerJSON: try JSONParser.parse(Array(text.utf8), file: "t.json", options: .tokenizer), file: "t.json")
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

    func testUnknownTokenFusingAndSubwordPrefix() throws {
        let fused = try loadJSON(#"{"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3}, "merges": ["a b"]}}"#)
        XCTAssertEqual(fused.encode("a😀😀b"), [1, 0, 2])
        XCTAssertEqual(fused.encode("😀ab"), [0, 3])
        let separate = try loadJSON(#"{"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": false, "vocab": {"<unk>": 0, "a": 1, "b": 2}, "merges": []}}"#)
        XCTAssertEqual(separate.encode("a😀😀b"), [1, 0, 0, 2])
        let prefixed = try loadJSON(###"{"model": {"type": "BPE", "unk_token": "<unk>", "continuing_subword_prefix": "##", "vocab": {"<unk>": 0, "a": 1, "##b": 2, "ab": 3, "b": 4}, "merges": ["a ##b"]}}"###)
        XCTAssertEqual(prefixed.encode("ab"), [3])
        XCTAssertEqual(prefixed.encode("ba"), [4, 0]) // "##a" is not in the vocabulary
    }

    /// Words are only cut before ▁ runs when no token has a ▁ after another character.
    func testMetaspaceRunSplittingKeepsCrossingMerges() throws {
        let crossing = try loadJSON(#"{"model": {"type": "BPE", "vocab": {"▁": 0, "a": 1, "b": 2, "a▁": 3, "a▁b": 4, "▁b": 5}, "merges": ["a ▁", "a▁ b", "▁ b"]}}"#)
        XCTAssertEqual(crossing.encode("a▁b"), [4]) // cutting before ▁ would give [1, 5]
        let plain = try loadJSON(#"{"model": {"type": "BPE", "vocab": {"▁": 0, "a": 1, "b": 2, "▁b": 3, "▁▁": 4}, "merges": ["▁ b", "▁ ▁"]}}"#)
        XCTAssertEqual(plain.encode("a▁b▁▁b▁"), [1, 3, 0, 3, 0]) // HF tokenizers' result
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

final class TokenizerRobustnessTests: XCTestCase {
    /// Every truncation of a real tokenizer.json is an error naming the file, never a crash.
    func testTruncatedTokenizerJSON() throws {
        let path = try Fixtures.path("spm/tokenizer.json")
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var x: UInt64 = 7
        for _ in 0..<60 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let cut = Int((x >> 33) % UInt64(bytes.count - 1))
            XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSON: try JSONParser.parse(Array(bytes[..<cut]), file: path, options: .tokenizer), file: path)) { error in
                XCTAssert("\(error)".contains(path), "\(error)")
            }
        }
    }

    /// Lying GGUF tokenizer metadata: clear errors naming the key.
    func testBadGGUFMetadata() throws {
        func gguf(_ entries: [(String, (inout [UInt8]) -> Void)]) throws -> String {
            var bytes: [UInt8] = Array("GGUF".utf8)
            func u32(_ v: UInt32, _ b: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
            func u64(_ v: UInt64, _ b: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
            u32(3, &bytes); u64(0, &bytes); u64(UInt64(entries.count), &bytes)
            for (key, write) in entries {
                u64(UInt64(key.utf8.count), &bytes); bytes += Array(key.utf8)
                write(&bytes)
            }
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).gguf")
            try Data(bytes).write(to: url)
            return url.path
        }
        func string(_ s: String) -> (inout [UInt8]) -> Void {
            { b in
                withUnsafeBytes(of: UInt32(8).littleEndian) { b += $0 }
                withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { b += $0 }
                b += Array(s.utf8)
            }
        }
        func strings(_ list: [String]) -> (inout [UInt8]) -> Void {
            { b in
                withUnsafeBytes(of: UInt32(9).littleEndian) { b += $0 }
                withUnsafeBytes(of: UInt32(8).littleEndian) { b += $0 }
                withUnsafeBytes(of: UInt64(list.count).littleEndian) { b += $0 }
                for s in list {
                    withUnsafeBytes(of: UInt64(s.utf8.count).littleEndian) { b += $0 }
                    b += Array(s.utf8)
                }
            }
        }
        func u32(_ v: UInt32) -> (inout [UInt8]) -> Void {
            { b in
                withUnsafeBytes(of: UInt32(4).littleEndian) { b += $0 }
                withUnsafeBytes(of: v.littleEndian) { b += $0 }
            }
        }
        func int32s(_ list: [Int32]) -> (inout [UInt8]) -> Void {
            { b in
                withUnsafeBytes(of: UInt32(9).littleEndian) { b += $0 }
                withUnsafeBytes(of: UInt32(5).littleEndian) { b += $0 }
                withUnsafeBytes(of: UInt64(list.count).littleEndian) { b += $0 }
                for v in list { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
            }
        }
        let tokens = ["a", "b", "ab"]
        let cases: [([(String, (inout [UInt8]) -> Void)], String)] = [
            ([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens)),
              ("tokenizer.ggml.merges", strings(["a b"])), ("tokenizer.ggml.bos_token_id", u32(99))], "tokenizer.ggml.bos_token_id"),
            ([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens)),
              ("tokenizer.ggml.merges", strings(["a b"])), ("tokenizer.ggml.token_type", int32s([1, 1]))], "tokenizer.ggml.token_type"),
            ([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens))], "tokenizer.ggml.merges"),
            ([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens)),
              ("tokenizer.ggml.merges", strings(["a c"]))], "tokenizer.ggml.merges[0]"),
            ([("tokenizer.ggml.model", string("llama")), ("tokenizer.ggml.tokens", strings(tokens))], "tokenizer.ggml.scores"),
            ([("tokenizer.ggml.model", string("bert")), ("tokenizer.ggml.tokens", strings(tokens))], "tokenizer.ggml.model"),
            ([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens)),
              ("tokenizer.ggml.merges", strings(["a b"])), ("tokenizer.ggml.pre", string("mystery"))], "tokenizer.ggml.pre"),
        ]
        for (entries, key) in cases {
            let path = try gguf(entries)
            defer { try? FileManager.default.removeItem(atPath: path) }
            XCTAssertThrowsError(try TokenizerLoader.load(gguf: path), key) { error in
                XCTAssert("\(error)".contains(key) && "\(error)".contains(path), "\(error)")
            }
        }
        // And the valid version of the same file works.
        let ok = try gguf([("tokenizer.ggml.model", string("gpt2")), ("tokenizer.ggml.tokens", strings(tokens)),
                           ("tokenizer.ggml.merges", strings(["a b"]))])
        defer { try? FileManager.default.removeItem(atPath: ok) }
        XCTAssertEqual(try TokenizerLoader.load(gguf: ok).encode("abab"), [2, 2])
    }

    /// Two threads encoding at once (shared word cache) give the single-threaded results.
    func testConcurrentEncoding() throws {
        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path("bytelevel"))
        let cases = try Fixtures.golden("bytelevel/expected.json").cases
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 8)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            var ok = true
            for c in (worker % 2 == 0 ? cases : cases.reversed()) where tokenizer.encode(c.text) != c.ids { ok = false }
            results[worker] = ok
        }
        XCTAssert(results.allSatisfy { $0 })
    }
}
