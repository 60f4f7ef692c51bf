import Foundation
import XCTest
@testable import Tokenizers

/// Encodes ~1 MB of English-like text once and prints the time; the ids must equal HF's (the
/// reference script's count, sum and first ids).
final class TokenizerTimingTests: XCTestCase {
    struct Bench: Decodable {
        var bytes: Int
        var tokens: Int
        var id_sum: Int
        var first_ids: [Int]
        var python_tokenizers_seconds: Double
        var spm_tokens: Int
        var spm_id_sum: Int
        var spm_python_tokenizers_seconds: Double
    }

    /// The reference script's bench_text(): words picked by a 64-bit LCG.
    static func benchText(bytes: Int = 1_000_000) -> String {
        let words = Self.words
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        var out = ""
        out.reserveCapacity(bytes + 32)
        var count = 0
        while out.utf8.count < bytes {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let word = words[Int((x >> 33) % UInt64(words.count))]
            count += 1
            out += word
            out += count % 12 == 0 ? ".\n" : " "
        }
        return out
    }

    func testEncodeOneMegabyte() throws {
        let bench = try JSONDecoder().decode(Bench.self, from: Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("bench.json"))))
        let text = Self.benchText()
        XCTAssertEqual(text.utf8.count, bench.bytes)
        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path("bytelevel"))
        let start = Date()
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "tokenizer timing: %d bytes -> %d tokens in %.3f s (Python tokenizers: %.3f s)",
                     bench.bytes, ids.count, seconds, bench.python_tokenizers_seconds))
        XCTAssertEqual(ids.count, bench.tokens)
        XCTAssertEqual(ids.reduce(0, +), bench.id_sum)
        XCTAssertEqual(Array(ids.prefix(bench.first_ids.count)), bench.first_ids)

        // SentencePiece style: the whole text is one word for the model (no pre-tokenizer).
        let spm = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        let spmStart = Date()
        let spmIds = spm.encode(text, addSpecialTokens: false)
        print(String(format: "tokenizer timing (spm): %d tokens in %.3f s (Python tokenizers: %.3f s)",
                     spmIds.count, Date().timeIntervalSince(spmStart), bench.spm_python_tokenizers_seconds))
        XCTAssertEqual(spmIds.count, bench.spm_tokens)
        XCTAssertEqual(spmIds.reduce(0, +), bench.spm_id_sum)

        if let path = Fixtures.smolLM2() {
            let smol = try TokenizerLoader.load(gguf: path)
            let t0 = Date()
            let n = smol.encode(text, addSpecialTokens: false).count
            print(String(format: "tokenizer timing (SmolLM2): %d tokens in %.3f s", n, Date().timeIntervalSince(t0)))
        }
    }

    static let words: [String] = """
    the of and to in is was for on that with as by at from it this be are or an which have has had not but all \
    were they their one can there been if more when will would who so no out up into than them about its only \
    other time some could these two may first then do any like my now over such our man me even most made after \
    also did many before must through back years where much your way well down should because each just those \
    people how too little state good very make world still own see men work long get here between both life being \
    under never day same another know while last might us great old year off come since against go came right used \
    take three image picture photo cat dog person car street table kitchen window people standing sitting holding \
    large small white black red blue green wooden building train bus plate pizza bicycle airplane horse giraffe
    """.split(separator: " ").map(String.init)
}
