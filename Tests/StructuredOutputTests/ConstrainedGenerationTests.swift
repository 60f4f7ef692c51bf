import ForgeCore
import Foundation
import Models
import TensorMath
import XCTest
@testable import Inference

/// Constrained generation on the tiny random Llama (vocabulary 300): whatever the random logits
/// prefer, the output is JSON that validates against the schema, through `TextGenerator` and
/// through the batch scheduler; json_object mode gives an object.
final class ConstrainedGenerationTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let eos = 256

    /// A fixture vocabulary for the 300 ids: 0…255 single bytes, 256 EOS, then multi-byte tokens
    /// a JSON-writing model would have.
    static let vocabulary: TokenVocabulary = {
        var tokens: [[UInt8]?] = (0..<256).map { [UInt8($0)] }
        tokens.append(nil)
        let pieces = ["{\"", "\":", "\": \"", "\", \"", "\"}", "\"]", "\"},", "[{\"", "}]", "}]}", " the", " a", "an", "er", "question",
                      "answer", "conversation", "description", "true", "false", "null", "12", "0.", " dog", " is", "é", "\\n", "\\\"",
                      "ing", " of", "Ġ", "\u{2581}", "ed", "s ", ", ", "\",", " \"", "\n", "  ", "??", "!\"", "ab", "xyz"]
        for p in pieces { tokens.append(Array(p.utf8)) }
        precondition(tokens.count == 300)
        return TokenVocabulary(tokenBytes: tokens)
    }()

    static let detokenize: Detokenize = { ids in
        String(decoding: ids.flatMap { vocabulary.tokenBytes[$0] ?? [] }, as: UTF8.self)
    }

    /// A random float Llama over the 300 ids with room for 512 positions (the GGUF fixture has 64).
    func engine() throws -> LlamaModel { try Self.randomEngine() }

    static func randomEngine() throws -> LlamaModel {
        let config = LlamaConfig(hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2,
                                 rmsNormEps: 1e-5, maxPositionEmbeddings: 512, vocabSize: 300, tieWordEmbeddings: true)
        let parameters = LlamaModel.makeParameters(config)
        var random = SeededRandom(seed: 11)
        for slot in parameters.slots {
            let fanIn = Float(slot.shape.count > 1 ? slot.shape[1] : 1)
            for i in 0..<slot.count {
                let u = Float(random.next() % 1_000_000) / 1_000_000 * 2 - 1
                parameters.storage.pointer[slot.offset + i] = slot.shape.count == 1
                    ? (slot.name.contains("norm") ? 1 + 0.3 * u : 0.3 * u) : u * (3 / fanIn).squareRoot() * (slot.name.contains("embed") ? 3 : 1)
            }
        }
        return try LlamaModel(config: config, parameters: parameters)
    }

    static let schema = """
        {"type": "object", "properties": {
           "conversation": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "object", "properties": {
               "question": {"type": "string", "minLength": 1, "maxLength": 10},
               "answer": {"type": "string", "minLength": 1, "maxLength": 12}},
             "required": ["question", "answer"], "additionalProperties": false}},
           "mood": {"enum": ["happy", "sad"]},
           "count": {"type": "integer"}
         }, "required": ["conversation", "mood"], "additionalProperties": false}
        """

    /// Checks `text` against `schema` independently of the automaton (JSONSerialization + rules).
    func assertValid(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try Self.assertValid(text, file: file, line: line)
    }

    static func assertValid(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        let o = try XCTUnwrap(object, "not an object: \(text)", file: file, line: line)
        XCTAssertTrue(Set(o.keys).isSubset(of: ["conversation", "mood", "count"]), text, file: file, line: line)
        let list = try XCTUnwrap(o["conversation"] as? [[String: Any]], text, file: file, line: line)
        XCTAssertTrue((1...2).contains(list.count), text, file: file, line: line)
        for pair in list {
            XCTAssertEqual(Set(pair.keys), ["question", "answer"], text, file: file, line: line)
            let q = try XCTUnwrap(pair["question"] as? String), a = try XCTUnwrap(pair["answer"] as? String)
            XCTAssertTrue((1...10).contains(q.count), "question \(q.debugDescription)", file: file, line: line)
            XCTAssertTrue((1...12).contains(a.count), "answer \(a.debugDescription)", file: file, line: line)
        }
        XCTAssertTrue(["happy", "sad"].contains(o["mood"] as? String ?? ""), text, file: file, line: line)
        if let count = o["count"] { XCTAssertNotNil(count as? Int, text, file: file, line: line) }
        // Key order is the schema's.
        let keys = ["\"conversation\"", "\"mood\"", "\"count\""].compactMap { text.range(of: $0)?.lowerBound }
        XCTAssertEqual(keys, keys.sorted(), text, file: file, line: line)
    }

    func testConstrainedGreedyAndSampledRunsAlwaysGiveValidJSON() throws {
        let e = try engine()
        let compiler = JSONConstraintCompiler(vocabulary: Self.vocabulary)
        let generator = TextGenerator(engine: e, detokenize: Self.detokenize, constraints: compiler)
        let format = ResponseFormat.jsonSchema(name: "t", schema: Self.schema, strict: true)
        var seen: Set<String> = []
        for (i, prompt) in [[3, 17, 42], [5, 6, 7, 8], [100, 200], [1], [299, 0, 12]].enumerated() {
            for sampling in [SamplingOptions.greedy, SamplingOptions(temperature: 1.0, topK: 40, topP: 0.95, seed: UInt64(i))] {
                let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: 400, sampling: sampling, stopTokenIDs: [Self.eos],
                                                                 responseFormat: format))
                XCTAssertEqual(r.finishReason, .stop, "the JSON value is complete within max_tokens: \(r.text ?? "")")
                try assertValid(try XCTUnwrap(r.text))
                seen.insert(r.text!)
            }
        }
        XCTAssertGreaterThan(seen.count, 3, "different prompts and seeds give different JSON")
        // Unconstrained, the same model writes no JSON.
        let free = try TextGenerator(engine: e, detokenize: Self.detokenize).generate(GenerationRequest(prompt: [3, 17, 42], maxTokens: 40))
        XCTAssertNil(try? JSONSerialization.jsonObject(with: Data(free.text!.utf8)))
    }

    func testBatchSchedulerAppliesTheConstraintPerSequence() throws {
        let e = try engine()
        let scheduler = BatchScheduler(engine: e, maxActive: 3, detokenize: Self.detokenize,
                                       constraints: JSONConstraintCompiler(vocabulary: Self.vocabulary))
        defer { scheduler.shutdown() }
        let format = ResponseFormat.jsonSchema(name: "t", schema: Self.schema, strict: true)
        let group = DispatchGroup()
        let box = ResultsBox()
        for prompt in [[3, 17, 42], [9, 9], [77, 1, 2, 3]] {
            group.enter()
            try scheduler.submit(GenerationRequest(prompt: prompt, maxTokens: 400, stopTokenIDs: [Self.eos], responseFormat: format)) { event in
                if case .finished(let r) = event { box.append(r); group.leave() }
                if case .failed = event { group.leave() }
            }
        }
        // One plain request in the same batch stays unconstrained.
        let plain = try scheduler.generate(GenerationRequest(prompt: [3, 17, 42], maxTokens: 20))
        group.wait()
        let results = box.all
        XCTAssertEqual(results.count, 3)
        for r in results {
            XCTAssertEqual(r.finishReason, .stop)
            try assertValid(try XCTUnwrap(r.text))
        }
        XCTAssertEqual(plain.tokens.count, 20)
        // The scheduler refuses an unsupported schema at submit (the server's 400).
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(prompt: [1], maxTokens: 5, stopTokenIDs: [Self.eos],
                                                                    responseFormat: .jsonSchema(name: "x", schema: #"{"type":"string","pattern":"a"}"#, strict: true))) { _ in })
    }

    func testJSONObjectModeGivesAnObject() throws {
        let generator = TextGenerator(engine: try engine(), detokenize: Self.detokenize,
                                      constraints: JSONConstraintCompiler(vocabulary: Self.vocabulary, maxWhitespaceRun: 1))
        var completed = 0
        for prompt in [[3, 17, 42], [5, 6, 7, 8], [11, 12], [200, 201, 202]] {
            let r = try generator.generate(GenerationRequest(prompt: prompt, maxTokens: 450, stopTokenIDs: [Self.eos], responseFormat: .jsonObject))
            let text = try XCTUnwrap(r.text)
            XCTAssertTrue(text.hasPrefix("{") || text.hasPrefix(" {") || text.hasPrefix("\n{"), text)
            if r.finishReason == .stop {
                completed += 1
                XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
            } else {
                // Cut by max_tokens: still a valid prefix of an object.
                let c = try XCTUnwrap(JSONConstraintCompiler(vocabulary: Self.vocabulary, maxWhitespaceRun: 1)
                    .makeConstraint(for: .jsonObject, stopTokenIDs: [Self.eos]))
                XCTAssertTrue(c.accept(text: Array(text.utf8)), text)
            }
        }
        XCTAssertGreaterThan(completed, 0, "at least one free-form object finished")
    }

    func testAJSONFormatWithoutAVocabularyOrEOSIsAUsageError() throws {
        let e = try engine()
        XCTAssertThrowsError(try TextGenerator(engine: e).generate(GenerationRequest(prompt: [1], maxTokens: 4, stopTokenIDs: [Self.eos], responseFormat: .jsonObject))) {
            XCTAssertEqual(($0 as? ForgeError)?.kind, .usage)
        }
        let g = TextGenerator(engine: e, constraints: JSONConstraintCompiler(vocabulary: Self.vocabulary))
        XCTAssertThrowsError(try g.generate(GenerationRequest(prompt: [1], maxTokens: 4, responseFormat: .jsonObject))) {
            XCTAssertTrue("\($0)".contains("end-of-sequence"))
        }
    }
}

private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [GenerationResult] = []
    func append(_ r: GenerationResult) { lock.lock(); results.append(r); lock.unlock() }
    var all: [GenerationResult] { lock.lock(); defer { lock.unlock() }; return results }
}
