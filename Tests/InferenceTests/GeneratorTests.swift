import XCTest
import Models
@testable import Inference

final class GeneratorTests: XCTestCase {
    func engine() throws -> QuantizedLlama {
        try QuantizedLlama.load(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
    }

    /// A stand-in detokenizer: token i → "<i>".
    let detokenize: Detokenize = { ids in ids.map { "<\($0)>" }.joined() }

    func testGreedyGenerationEqualsModelGreedyAndStreamsEveryToken() throws {
        let e = try engine()
        let prompt = [3, 17, 42, 99, 5]
        let expected = try e.greedy(prompt: prompt, maxTokens: 12)
        var streamed: [Int] = []
        let result = try TextGenerator(engine: e).generate(GenerationRequest(prompt: prompt, maxTokens: 12)) { streamed.append($0.id); return true }
        XCTAssertEqual(result.tokens, expected)
        XCTAssertEqual(streamed, expected)
        XCTAssertEqual(result.finishReason, .length)
        XCTAssertEqual(result.promptTokens, 5)
    }

    func testStopTokenEndsWithStopAndIsNotOutput() throws {
        let e = try engine()
        let prompt = [3, 17, 42, 99, 5]
        let free = try e.greedy(prompt: prompt, maxTokens: 12)
        let stopID = free[4]
        let result = try TextGenerator(engine: e).generate(GenerationRequest(prompt: prompt, maxTokens: 12, stopTokenIDs: [stopID]))
        XCTAssertEqual(result.finishReason, .stop)
        XCTAssertEqual(result.tokens, Array(free.prefix(while: { $0 != stopID })))
    }

    func testStopStringCutsTextAndStreamedTextEqualsFinalText() throws {
        let e = try engine()
        let prompt = [3, 17, 42, 99, 5]
        let free = try e.greedy(prompt: prompt, maxTokens: 12)
        // Stop in the middle of the 4th token's text: "<id" of token 3 must never be streamed.
        let stop = "<\(free[3])"
        let text = detokenize(free)
        let expectedText = String(text[..<text.range(of: stop)!.lowerBound])
        var streamed = ""
        let result = try TextGenerator(engine: e, detokenize: detokenize)
            .generate(GenerationRequest(prompt: prompt, maxTokens: 12, stopStrings: [stop, "never-there"])) { streamed += $0.text; return true }
        XCTAssertEqual(result.finishReason, .stop)
        XCTAssertEqual(result.text, expectedText)
        XCTAssertEqual(streamed, expectedText)
        XCTAssertLessThanOrEqual(result.tokens.count, 4)
    }

    func testHeldBackPrefixOfAStopStringIsReleasedWhenItDoesNotMatch() {
        let matcher = StopStringMatcher(stops: ["</s>"])
        XCTAssertEqual(matcher.safePrefixLength("abc</"), 3)
        XCTAssertEqual(matcher.safePrefixLength("abc</x"), 6)
        XCTAssertEqual(matcher.safePrefixLength("ab\u{FFFD}"), 2)
        XCTAssertEqual(matcher.cut("hi</s>more</s>"), "hi")
    }

    func testCancellationFromTheCallback() throws {
        var count = 0
        let result = try TextGenerator(engine: try engine()).generate(GenerationRequest(prompt: [1, 2, 3], maxTokens: 20)) { _ in
            count += 1
            return count < 3
        }
        XCTAssertEqual(result.finishReason, .cancelled)
        XCTAssertEqual(result.tokens.count, 3)
    }

    func testContextFullEndsWithLength() throws {
        let e = try engine()  // 64 positions
        let result = try TextGenerator(engine: e).generate(GenerationRequest(prompt: Array(repeating: 5, count: 60), maxTokens: 50))
        XCTAssertEqual(result.finishReason, .length)
        XCTAssertEqual(result.tokens.count, 5)  // positions 60..63 decoded, the 5th token's logits need none
        XCTAssertThrowsError(try TextGenerator(engine: e).generate(GenerationRequest(prompt: Array(repeating: 5, count: 64), maxTokens: 1)))
    }

    func testFloatModelIsAnEngineToo() throws {
        let model = try ModelLoader.loadLanguageModel(path: Support.modelFixture("tiny_llama_gguf", "tiny_llama.Q8_0.gguf"))
        let result = try TextGenerator(engine: model).generate(GenerationRequest(prompt: [3, 17, 42], maxTokens: 8))
        XCTAssertEqual(result.tokens, try model.greedy(prompt: [3, 17, 42], maxTokens: 8))
    }
}
