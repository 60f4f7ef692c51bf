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
        // 1st: cold; 2nd: the 40 shared tokens (5 blocks); 3rd: its 20 shared tokens (2 whole
        // blocks + the first 4 of the 3rd); 4th: identical to the 1st: 40 (its 43 tokens end mid-block).
        XCTAssertEqual(reused, [0, 40, 20, 40])
        XCTAssertEqual(cache.hits, 3)
        XCTAssertEqual(cache.entryCount, 1)  // every prompt's whole blocks lie on one path
        XCTAssertEqual(cache.blockCount, 5)
        XCTAssertEqual(cache.bytes, 5 * cache.blockBytes)
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
        // The prefill side's attention is sgemm, the restored side's the decode kernels: the same
        // math in another summation order. This random tiny model amplifies that strongly: decode
        // scores accumulated in Float64 (exact to the last bit) give 4.9e-4 on logits of ~12, the
        // AVX-512 kernel 5.5e-4. A wrong restore (rows, positions) is off by O(1).
        XCTAssertLessThanOrEqual(Support.maxAbsDifference(got, expected), 2e-3)
    }

    /// The bench's case in small: a prompt sharing a prefix that ends mid-block with a cached one
    /// (stored for another continuation) reuses every shared token, then prefills a continuation
    /// longer than several blocks; its logits equal a full prefill's, and storing it copies only
    /// its own new blocks.
    func testAPrefixEndingMidBlockIsReusedAndTheLongContinuationEqualsAFullPrefill() throws {
        let e = try engine()
        let shared = (0..<29).map { ($0 * 17 + 5) % 300 }  // the tiny model has 64 positions
        let first = shared + (0..<12).map { ($0 * 3 + 1) % 300 }, second = shared + (0..<26).map { ($0 * 7 + 200) % 300 }
        XCTAssertNotEqual(first[29], second[29])
        let prefixes = PrefixCache(config: e.config, blockSize: 8)
        let firstCache = e.makeCache(capacity: first.count)
        _ = try e.decode(tokens: first, cache: firstCache)
        prefixes.store(prompt: first, from: firstCache)
        XCTAssertEqual(prefixes.blockCount, 5)

        let cold = e.makeCache(capacity: second.count)
        let expected = try e.decode(tokens: second, cache: cold, rows: .all)
        let warm = e.makeCache(capacity: second.count)
        let reused = prefixes.restore(prompt: second, into: warm)
        XCTAssertEqual(reused, 29, "3 whole blocks + the first 5 tokens of the 4th")
        XCTAssertEqual(warm.length, 29)
        let got = try e.decode(tokens: Array(second[reused...]), cache: warm, rows: .all)
        // The continuation's 26 rows (more than 3 blocks) against the full prefill's last 26.
        XCTAssertLessThanOrEqual(Support.maxAbsDifference(got, Array(expected.suffix(got.count))), 1e-4)
        for layer in 0..<warm.layerCount {
            let n = second.count * warm.kvWidth
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(Array(warm.keys[layer].buffer.prefix(n)), Array(cold.keys[layer].buffer.prefix(n))), 1e-4)
        }

        prefixes.store(prompt: second, from: warm)
        XCTAssertEqual(prefixes.blockCount, 5 + 3, "second's 6 whole blocks: 3 shared with first, 3 new")
        XCTAssertEqual(prefixes.entryCount, 2)
        XCTAssertEqual(prefixes.bytes, 8 * prefixes.blockBytes)

        // Greedy continuations with and without the cache agree, for both prompts.
        let plain = TextGenerator(engine: e), cached = TextGenerator(engine: e, prefixCache: prefixes)
        for prompt in [second, first, shared + [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]] {
            let request = GenerationRequest(prompt: prompt, maxTokens: 8)
            let a = try plain.generate(request), b = try cached.generate(request)
            XCTAssertEqual(a.tokens, b.tokens, "prompt of \(prompt.count)")
            XCTAssertGreaterThanOrEqual(b.cachedPromptTokens, 29)
        }
    }

    /// The real SmolLM2 GGUF (skipped without it): a 170-token prompt sharing 100 tokens with a
    /// cached one (three 32-token blocks + 4) gives the uncached greedy output.
    func testSmolLM2ContinuationAfterACachedPrefixEqualsUncached() throws {
        let e = try Support.smolLM2Engine()
        let vocab = e.config.vocabSize
        let shared = (0..<100).map { ($0 * 7919 + 13) % vocab }
        func tail(_ seed: Int) -> [Int] { (0..<70).map { ($0 * 104_729 + seed * 31 + 5) % vocab } }
        let prefixes = PrefixCache(config: e.config)
        let cached = TextGenerator(engine: e, prefixCache: prefixes), plain = TextGenerator(engine: e)
        _ = try cached.generate(GenerationRequest(prompt: shared + tail(1), maxTokens: 1))
        let prompt = shared + tail(2)
        let a = try plain.generate(GenerationRequest(prompt: prompt, maxTokens: 6))
        let b = try cached.generate(GenerationRequest(prompt: prompt, maxTokens: 6))
        XCTAssertEqual(b.cachedPromptTokens, 100)
        XCTAssertEqual(a.tokens, b.tokens)
    }

    func testMemoryIsBoundedWithLRUEviction() throws {
        let e = try engine()
        let c = e.config
        let bytesPer16 = 16 * c.kvWidth * c.numHiddenLayers * 2 * 4
        let prefixes = PrefixCache(config: c, blockSize: 16, capacityBytes: 2 * bytesPer16)
        XCTAssertEqual(prefixes.blockBytes, bytesPer16)
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

    /// A leaf is evicted before its parent, and never one on the path being stored: a budget of
    /// three blocks keeps a two-block prompt and one block of the next.
    func testEvictionRemovesLeavesOffTheStoredPath() throws {
        let e = try engine()
        let prefixes = PrefixCache(config: e.config, blockSize: 4, capacityBytes: 3 * 4 * e.config.kvWidth * e.config.numHiddenLayers * 2 * 4)
        let a = (0..<9).map { ($0 * 5 + 1) % 300 }, b = (0..<9).map { ($0 * 11 + 2) % 300 }
        for p in [a, b] {
            let cache = e.makeCache(capacity: 9)
            _ = try e.decode(tokens: p, cache: cache)
            prefixes.store(prompt: p, from: cache)
            XCTAssertLessThanOrEqual(prefixes.blockCount, 3)
        }
        // b's second block needed one eviction: a's second block (a leaf off b's path), not a's first (a parent).
        XCTAssertEqual(prefixes.restore(prompt: b, into: e.makeCache(capacity: 9)), 8)
        XCTAssertEqual(prefixes.restore(prompt: a, into: e.makeCache(capacity: 9)), 4)
    }
}
