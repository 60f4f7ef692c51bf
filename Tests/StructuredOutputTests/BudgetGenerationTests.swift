import ForgeCore
import Foundation
import Models
import XCTest
@testable import Inference

/// Token-budget-aware closing through the decode paths, on the tiny random Llama of
/// `ConstrainedGenerationTests` (its random logits never finish a value on their own within a
/// few dozen tokens): with a tiny max_tokens — or a KV cache that runs out first — the output is
/// still complete JSON of the schema, within the budget, reported as finish `.length` with the
/// flag set; with a roomy budget the tokens are exactly those of a run without a budget.
final class BudgetGenerationTests: XCTestCase {
    typealias Fixture = ConstrainedGenerationTests
    let format = ResponseFormat.jsonSchema(name: "t", schema: Fixture.schema, strict: true)
    let prompts = [[3, 17, 42], [5, 6, 7, 8], [100, 200], [299, 0, 12]]
    /// Budgets from just enough for the schema's shortest value and its stop token upwards.
    var tinyBudgets: [Int] {
        get throws {
            let need = try shortestValueTokens()
            return [need + 1, need + 3, need + 8, need + 17]
        }
    }

    /// Tokens of the schema's shortest value in the fixture vocabulary.
    func shortestValueTokens() throws -> Int {
        let c = try XCTUnwrap(JSONConstraintCompiler(vocabulary: Fixture.vocabulary).makeConstraint(for: format, stopTokenIDs: [Fixture.eos]))
        c.remainingTokens = 1000
        _ = c.allowedMask()
        let tokens = try XCTUnwrap(c.knownCompletion)
        let text = String(decoding: tokens.flatMap { Fixture.vocabulary.tokenBytes[$0]! }, as: UTF8.self)
        XCTAssertEqual(text, #"{"conversation":[{"question":".","answer":"."}],"mood":"sad"}"#)
        return tokens.count
    }

    func samplings(_ i: Int) -> [SamplingOptions] {
        [.greedy, SamplingOptions(temperature: 1.0, topK: 40, topP: 0.95, seed: UInt64(i))]
    }

    func assertClosedAtBudget(_ r: GenerationResult, maxTokens: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try XCTUnwrap(r.text, file: file, line: line)
        try Fixture.assertValid(text, file: file, line: line)
        XCTAssertEqual(r.finishReason, .length, text, file: file, line: line)
        XCTAssertTrue(r.closedAtTokenBudget, text, file: file, line: line)
        XCTAssertLessThan(r.tokens.count, maxTokens, "the stop token fitted within max_tokens: \(text)", file: file, line: line)
    }

    func testTinyMaxTokensAlwaysGiveCompleteJSONReportedAsLength() throws {
        let generator = TextGenerator(engine: try Fixture.randomEngine(), detokenize: Fixture.detokenize,
                                      constraints: JSONConstraintCompiler(vocabulary: Fixture.vocabulary))
        var runs = 0
        for maxTokens in try tinyBudgets {
            for (i, prompt) in prompts.enumerated() {
                for sampling in samplings(i) {
                    let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling,
                                                                     stopTokenIDs: [Fixture.eos], responseFormat: format))
                    try assertClosedAtBudget(r, maxTokens: maxTokens)
                    runs += 1
                }
            }
        }
        XCTAssertEqual(runs, 32)
    }

    /// The same decode loop without a budget (the constraint never hears of max_tokens).
    func unbudgeted(_ engine: LlamaModel, prompt: [Int], maxTokens: Int, sampling: SamplingOptions) throws -> [Int] {
        let constraint = try XCTUnwrap(JSONConstraintCompiler(vocabulary: Fixture.vocabulary).makeConstraint(for: format, stopTokenIDs: [Fixture.eos]))
        var sampler = Sampler(sampling, constraint: constraint)
        let cache = engine.makeCache(capacity: prompt.count + maxTokens)
        var logits = try engine.step([SequenceStep(tokens: prompt, cache: cache)])[0]
        var out: [Int] = []
        while out.count < maxTokens {
            let next = sampler.next(logits: logits)
            if next == Fixture.eos { break }
            out.append(next)
            logits = try engine.step([SequenceStep(tokens: [next], cache: cache)])[0]
        }
        return out
    }

    func testARoomyBudgetChangesNothing() throws {
        let engine = try Fixture.randomEngine()
        let generator = TextGenerator(engine: engine, detokenize: Fixture.detokenize, constraints: JSONConstraintCompiler(vocabulary: Fixture.vocabulary))
        for (i, prompt) in prompts.enumerated() {
            for sampling in samplings(i) {
                let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: 400, sampling: sampling, stopTokenIDs: [Fixture.eos],
                                                                 responseFormat: format))
                XCTAssertEqual(r.finishReason, .stop)
                XCTAssertFalse(r.closedAtTokenBudget)
                XCTAssertEqual(r.tokens, try unbudgeted(engine, prompt: prompt, maxTokens: 400, sampling: sampling), r.text ?? "")
            }
        }
    }

    /// The KV cache bounds the budget too: a prompt near the model's 512 positions leaves 32.
    func testAFullContextAlsoClosesTheValue() throws {
        let generator = TextGenerator(engine: try Fixture.randomEngine(), detokenize: Fixture.detokenize,
                                      constraints: JSONConstraintCompiler(vocabulary: Fixture.vocabulary))
        var rng = SeededRandom(seed: 3, key: "long prompt")
        let prompt = (0..<480).map { _ in Int(rng.next() % 256) }
        let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: 200, stopTokenIDs: [Fixture.eos], responseFormat: format))
        try assertClosedAtBudget(r, maxTokens: 200)
        XCTAssertLessThanOrEqual(prompt.count + r.tokens.count, 512, "the value and its stop token fit the context")
    }

    func testTheBatchSchedulerClosesAtTheBudgetLikeTheGenerator() throws {
        let engine = try Fixture.randomEngine()
        let compiler = JSONConstraintCompiler(vocabulary: Fixture.vocabulary)
        let generator = TextGenerator(engine: engine, detokenize: Fixture.detokenize, constraints: compiler)
        let scheduler = BatchScheduler(engine: engine, maxActive: 4, detokenize: Fixture.detokenize, constraints: compiler)
        defer { scheduler.shutdown() }
        var requests: [GenerationRequest] = []
        let budgets = try tinyBudgets
        for (i, prompt) in prompts.enumerated() {
            requests.append(GenerationRequest(prompt: prompt, maxTokens: budgets[i], stopTokenIDs: [Fixture.eos], responseFormat: format))
        }
        // One roomy request in the same batch finishes on its own.
        requests.append(GenerationRequest(prompt: [9, 9], maxTokens: 400, stopTokenIDs: [Fixture.eos], responseFormat: format))
        let group = DispatchGroup()
        let box = Box()
        for (i, r) in requests.enumerated() {
            group.enter()
            try scheduler.submit(r) { event in
                if case .finished(let result) = event { box.set(i, result); group.leave() }
                if case .failed = event { group.leave() }
            }
        }
        group.wait()
        for (i, r) in requests.enumerated() {
            let batched = try XCTUnwrap(box.get(i))
            let alone = try generator.generate(r)
            XCTAssertEqual(batched.tokens, alone.tokens, "batched decoding closes the same way")
            XCTAssertEqual(batched.finishReason, alone.finishReason)
            XCTAssertEqual(batched.closedAtTokenBudget, alone.closedAtTokenBudget)
            if r.maxTokens < 400 {
                try assertClosedAtBudget(batched, maxTokens: r.maxTokens)
            } else {
                XCTAssertEqual(batched.finishReason, .stop)
                XCTAssertFalse(batched.closedAtTokenBudget)
            }
        }
    }

    /// Text requests and json_object are budgeted the same way (json_object: any object).
    func testJSONObjectModeClosesToo() throws {
        let generator = TextGenerator(engine: try Fixture.randomEngine(), detokenize: Fixture.detokenize,
                                      constraints: JSONConstraintCompiler(vocabulary: Fixture.vocabulary, maxWhitespaceRun: 1))
        for (i, prompt) in prompts.enumerated() {
            let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: 12 + 4 * i, stopTokenIDs: [Fixture.eos], responseFormat: .jsonObject))
            let text = try XCTUnwrap(r.text)
            XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
            XCTAssertLessThan(r.tokens.count, 12 + 4 * i)
            if r.closedAtTokenBudget { XCTAssertEqual(r.finishReason, .length) } else { XCTAssertEqual(r.finishReason, .stop) }
        }
        let plain = try generator.generate(GenerationRequest(prompt: [1, 2], maxTokens: 5))
        XCTAssertEqual(plain.tokens.count, 5)
        XCTAssertFalse(plain.closedAtTokenBudget, "text is never closed")
    }
}

private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Int: GenerationResult] = [:]
    func set(_ i: Int, _ r: GenerationResult) { lock.lock(); results[i] = r; lock.unlock() }
    func get(_ i: Int) -> GenerationResult? { lock.lock(); defer { lock.unlock() }; return results[i] }
}
