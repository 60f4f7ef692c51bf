import XCTest
import Models
@testable import Inference

final class PrefixCacheTests: XCTestCase {
    func engine() throws -> QuantizedLlama {
        try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
    }

    func testOutputsWithPrefixCacheEqualOutputsWithout() throws {
        let e = try engine()
        let shared = (0..<40).map { ($0 * 13 + 7) % 300 }
        let requests = [shared + [1, 2, 3], shared + [9, 8], Array(shared.prefix(20)) + [4, 4, 4], shared + [1, 2, 3]]
        let plain = TextGenerator(engine: e)
        let cache = PrefixCache(config: e.config, blockSize: 8)
        let cached = TextGenerator(engine: e, prefixCache: cache)
        var reused: [Int] = []
        for prompt in requests {
            let request = GenerationRequest(prompt: prompt, maxTokens: 10)
            let a = try plain.generate(request), b = try cached.generate(request)
            XCTAssertEqual(a.tokens, b.tokens, "prompt of \(prompt.count)")
            reused.append(b.cachedPromptTokens)
        }
        // 1st: cold; 2nd: the 40 shared tokens (5 blocks); 3rd: 16 of its 20 shared (2 blocks);
        // 4th: identical to the 1st: 40 (its 43 tokens end mid-block).
        XCTAssertEqual(reused, [0, 40, 16, 40])
        XCTAssertEqual(cache.hits, 3)
        XCTAssertEqual(cache.entryCount, 1)  // the 16- and 40-token prefixes share one entry
    }

    func testLogitsAfterRestoreEqualAFullPrefill() throws {
        let e = try engine()
        let prompt = (0..<50).map { ($0 * 29 + 3) % 300 }
        let cold = e.makeCache(capacity: 50)
        let expected = try e.decode(tokens: prompt, cache: cold)
        let prefixes = PrefixCache(config: e.config, blockSize: 16)
        prefixes.store(prompt: prompt, from: cold)
        let warm = e.makeCache(capacity: 50)
        let reused = prefixes.restore(prompt: prompt, into: warm)
        XCTAssertEqual(reused, 48)
        let got = try e.decode(tokens: Array(prompt[reused...]), cache: warm)
        XCTAssertLessThanOrEqual(Support.maxAbsDifference(got, expected), 1e-4)
    }

    func testMemoryIsBoundedWithLRUEviction() throws {
        let e = try engine()
        let c = e.config
        let bytesPer16 = 16 * c.kvWidth * c.numHiddenLayers * 2 * 4
        let prefixes = PrefixCache(config: c, blockSize: 16, capacityBytes: 2 * bytesPer16)
        func prompt(_ seed: Int) -> [Int] { (0..<17).map { ($0 * 7 + seed) % 300 } }
        for seed in [1, 2] {
            let cache = e.makeCache(capacity: 17)
            _ = try e.decode(tokens: prompt(seed), cache: cache)
            prefixes.store(prompt: prompt(seed), from: cache)
        }
        XCTAssertEqual(prefixes.entryCount, 2)
        XCTAssertEqual(prefixes.restore(prompt: prompt(1), into: e.makeCache(capacity: 17)), 16)  // touches 1
        let cache = e.makeCache(capacity: 17)
        _ = try e.decode(tokens: prompt(3), cache: cache)
        prefixes.store(prompt: prompt(3), from: cache)
        XCTAssertEqual(prefixes.entryCount, 2)
        XCTAssertLessThanOrEqual(prefixes.bytes, prefixes.capacityBytes)
        XCTAssertEqual(prefixes.restore(prompt: prompt(2), into: e.makeCache(capacity: 17)), 0, "least recently used is evicted")
        XCTAssertEqual(prefixes.restore(prompt: prompt(1), into: e.makeCache(capacity: 17)), 16)
        XCTAssertEqual(prefixes.restore(prompt: prompt(3), into: e.makeCache(capacity: 17)), 16)
    }
}
