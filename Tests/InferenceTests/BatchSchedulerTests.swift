import XCTest
import Models
@testable import Inference

final class BatchSchedulerTests: XCTestCase {
    func engine() throws -> QuantizedLlama {
        try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
    }

    func prompts() -> [[Int]] {
        (0..<6).map { i in (0..<(3 + 2 * i)).map { ($0 * 31 + i * 17 + 1) % 300 } }
    }

    /// Requests running together (joining at different steps, different lengths) give exactly the
    /// greedy ids each gives alone.
    func testBatchedGreedyEqualsSequential() throws {
        let e = try engine()
        let expected = try prompts().enumerated().map { i, p in try e.greedy(prompt: p, maxTokens: 6 + i) }
        let scheduler = BatchScheduler(engine: e, maxActive: 4, queueCapacity: 8)
        defer { scheduler.shutdown() }
        let group = DispatchGroup()
        let results = ResultsBox(count: expected.count)
        for (i, p) in prompts().enumerated() {
            group.enter()
            try scheduler.submit(GenerationRequest(prompt: p, maxTokens: 6 + i)) { event in
                if case .finished(let r) = event { results.set(i, r.tokens); group.leave() }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(results.values, expected)
        XCTAssertGreaterThan(scheduler.maxRowsInAStep, 4, "several sequences' rows went through one step")
        XCTAssertLessThan(scheduler.stepCount, expected.reduce(0) { $0 + $1.count }, "steps were shared")
    }

    /// Sampled requests (seeded; drawn on the pool's threads when several run together) give the
    /// ids each gives alone through a scheduler of one.
    func testBatchedSamplingEqualsSequential() throws {
        let e = try engine()
        func request(_ i: Int, _ p: [Int]) -> GenerationRequest {
            GenerationRequest(prompt: p, maxTokens: 8 + i, sampling: SamplingOptions(temperature: 0.9, topP: 0.9, seed: UInt64(40 + i)))
        }
        func run(maxActive: Int) throws -> [[Int]] {
            let scheduler = BatchScheduler(engine: e, maxActive: maxActive, queueCapacity: 8)
            defer { scheduler.shutdown() }
            let group = DispatchGroup()
            let results = ResultsBox(count: prompts().count)
            for (i, p) in prompts().enumerated() {
                group.enter()
                try scheduler.submit(request(i, p)) { event in
                    if case .finished(let r) = event { results.set(i, r.tokens); group.leave() }
                }
            }
            XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
            return results.values
        }
        let alone = try run(maxActive: 1), together = try run(maxActive: 6)
        XCTAssertEqual(together, alone)
        XCTAssertEqual(alone.map(\.count), prompts().indices.map { 8 + $0 })
    }

    func testQueueFullIsAnErrorAndCancellationEndsARequest() throws {
        let e = try engine()
        let scheduler = BatchScheduler(engine: e, maxActive: 1, queueCapacity: 1)
        defer { scheduler.shutdown() }
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let finished = DispatchSemaphore(value: 0)
        let reason = ResultsBox(count: 1)
        // The first request blocks the worker inside its first token callback.
        let first = try scheduler.submit(GenerationRequest(prompt: [1, 2, 3], maxTokens: 50)) { event in
            switch event {
            case .token(let t) where t.id >= 0:
                if reason.firstToken() { started.signal(); release.wait() }
            case .finished(let r): reason.set(0, [r.finishReason == .cancelled ? 1 : 0, r.tokens.count]); finished.signal()
            default: break
            }
        }
        XCTAssertEqual(started.wait(timeout: .now() + 10), .success)
        try scheduler.submit(GenerationRequest(prompt: [4], maxTokens: 2)) { _ in }  // waits in the queue
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(prompt: [5], maxTokens: 2)) { _ in }) { error in
            XCTAssertEqual(error as? SchedulerError, .queueFull(capacity: 1))
        }
        first.cancel()
        release.signal()
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(reason.values[0][0], 1, "finish_reason cancelled")
        XCTAssertLessThan(reason.values[0][1], 50)
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(prompt: [300], maxTokens: 1)) { _ in })
    }

    func testAsyncStreamDeliversTokensThenResult() async throws {
        let e = try engine()
        let scheduler = BatchScheduler(engine: e)
        defer { scheduler.shutdown() }
        let expected = try e.greedy(prompt: [9, 8, 7], maxTokens: 5)
        let (_, events) = try scheduler.stream(GenerationRequest(prompt: [9, 8, 7], maxTokens: 5))
        var tokens: [Int] = []
        var result: GenerationResult?
        for await event in events {
            switch event {
            case .token(let t): tokens.append(t.id)
            case .finished(let r): result = r
            case .failed(let m): XCTFail(m)
            }
        }
        XCTAssertEqual(tokens, expected)
        XCTAssertEqual(result?.tokens, expected)
        XCTAssertEqual(result?.finishReason, .length)
    }

    func testSmolLM2BatchedGreedyEqualsTransformers() throws {
        let e = try Support.smolLM2Engine()
        let json = try Support.caseJSON("smollm2")
        let ids = Support.ints(json, "input_ids"), golden = Support.ints(json, "greedy_ids")
        let scheduler = BatchScheduler(engine: e, prefixCache: PrefixCache(config: e.config, blockSize: 4))
        defer { scheduler.shutdown() }
        let group = DispatchGroup()
        let results = ResultsBox(count: 3)
        // Three copies admitted together: their prompt rows and then their decode rows share steps.
        for i in 0..<3 {
            group.enter()
            try scheduler.submit(GenerationRequest(prompt: ids, maxTokens: golden.count)) { event in
                if case .finished(let r) = event { results.set(i, r.tokens); group.leave() }
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(results.values, [golden, golden, golden])
    }
}

final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [[Int]]
    private var sawToken = false
    init(count: Int) { stored = Array(repeating: [], count: count) }
    func set(_ i: Int, _ v: [Int]) { lock.lock(); stored[i] = v; lock.unlock() }
    var values: [[Int]] { lock.lock(); defer { lock.unlock() }; return stored }
    /// True the first time only.
    func firstToken() -> Bool { lock.lock(); defer { lock.unlock() }; if sawToken { return false }; sawToken = true; return true }
}

final class SchedulerPrefixAndEmbeddingTests: XCTestCase {
    /// Requests one after another through the scheduler reuse the cached prefix and still give the
    /// uncached output.
    func testSchedulerReusesPrefixesWithUnchangedOutput() throws {
        let e = try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let shared = (0..<24).map { ($0 * 11 + 2) % 300 }
        let scheduler = BatchScheduler(engine: e, prefixCache: PrefixCache(config: e.config, blockSize: 8))
        defer { scheduler.shutdown() }
        for tail in [[1, 2], [3, 4, 5], [6]] {
            let prompt = shared + tail
            let result = try scheduler.generate(GenerationRequest(prompt: prompt, maxTokens: 8))
            XCTAssertEqual(result.tokens, try e.greedy(prompt: prompt, maxTokens: 8))
            if tail != [1, 2] { XCTAssertEqual(result.cachedPromptTokens, 24) }
        }
    }

    /// Input embeddings (the LLaVA path: image rows spliced into the text rows) give the same
    /// logits as the token ids whose embedding rows they are.
    func testEmbeddingInputEqualsTokenInput() throws {
        let e = try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let ids = [5, 77, 123, 9, 250, 31, 64, 2, 199]
        let hidden = e.config.hiddenSize
        var rows = [Float](repeating: 0, count: ids.count * hidden)
        rows.withUnsafeMutableBufferPointer { p in for (i, id) in ids.enumerated() { e.embedding.row(id, into: p.baseAddress! + i * hidden) } }
        let byTokens = try e.decode(tokens: ids, cache: e.makeCache(capacity: 16), rows: .all)
        let byEmbeddings = try e.decode(embeddings: rows, cache: e.makeCache(capacity: 16), rows: .all)
        XCTAssertEqual(byTokens, byEmbeddings)
        XCTAssertThrowsError(try e.decode(embeddings: [1, 2, 3], cache: e.makeCache(capacity: 4)))
    }
}
