import Foundation
import XCTest
import ForgeCore
@testable import Parsing

final class ConversationBuilderTests: XCTestCase {

    private let conversation = """
    Question:
    What is the man holding?
    ===
    Answer:
    The man is holding a red umbrella.
    ===
    Question:
    Is it raining?
    ===
    Answer:
    Yes, the street is wet.
    ===
    """

    private func build(_ format: ResponseFormat, _ response: String, instruction: String? = nil,
                       seed: UInt64) -> Result<[Turn], ParseFailure> {
        var rng = SeededRandom(seed: seed)
        return ConversationBuilder.build(format: format, response: response, instruction: instruction, rng: &rng)
    }

    /// The two placements LLaVA's released data uses.
    private func placements(_ text: String) -> (before: String, after: String) {
        ("<image>\n" + text, text + "\n<image>")
    }

    func testConversationTurns() throws {
        for seed: UInt64 in [0, 1, 2, 3] {
            let turns = try build(.conversation, conversation, seed: seed).get()
            XCTAssertEqual(turns.map(\.from), ["human", "gpt", "human", "gpt"])
            let first = placements("What is the man holding?")
            XCTAssertTrue(turns[0].value == first.before || turns[0].value == first.after, turns[0].value)
            XCTAssertEqual(Array(turns[1...]), [
                Turn(from: "gpt", value: "The man is holding a red umbrella."),
                Turn(from: "human", value: "Is it raining?"),
                Turn(from: "gpt", value: "Yes, the street is wet."),
            ])
            // Only the first human turn carries the image token, exactly once.
            XCTAssertEqual(turns.map { $0.value.components(separatedBy: "<image>").count - 1 }, [1, 0, 0, 0])
        }
    }

    func testImagePlacementIsDeterministicPerSeed() throws {
        for seed: UInt64 in 0..<32 {
            XCTAssertEqual(try build(.conversation, conversation, seed: seed).get(),
                           try build(.conversation, conversation, seed: seed).get())
        }
        var a = SeededRandom(seed: 42, key: "conversation/391895")
        var b = SeededRandom(seed: 42, key: "conversation/391895")
        XCTAssertEqual(try ConversationBuilder.build(format: .conversation, response: conversation, instruction: nil, rng: &a).get(),
                       try ConversationBuilder.build(format: .conversation, response: conversation, instruction: nil, rng: &b).get())
    }

    func testBothPlacementsOccurAcrossSeeds() throws {
        let first = placements("What is the man holding?")
        var before = 0, after = 0
        for seed: UInt64 in 0..<200 {
            let value = try build(.conversation, conversation, seed: seed).get()[0].value
            if value == first.before { before += 1 } else if value == first.after { after += 1 } else { XCTFail(value) }
        }
        XCTAssertEqual(before + after, 200)
        XCTAssertGreaterThan(before, 60)
        XCTAssertGreaterThan(after, 60)
    }

    /// Contract: one draw on success, its top bit picks the side (0 → before); no draw on failure.
    func testPlacementUsesExactlyOneDrawOnSuccessAndNoneOnFailure() throws {
        for seed: UInt64 in 0..<16 {
            var probe = SeededRandom(seed: seed)
            let draw = probe.next()
            var rng = SeededRandom(seed: seed)
            let turns = try ConversationBuilder.build(format: .singleQA, response: "Q: Why?\nA: Because.",
                                                      instruction: nil, rng: &rng).get()
            XCTAssertEqual(turns[0].value, draw >> 63 == 0 ? "<image>\nWhy?" : "Why?\n<image>")
            XCTAssertEqual(rng.next(), probe.next())

            var untouched = SeededRandom(seed: seed)
            _ = ConversationBuilder.build(format: .conversation, response: "", instruction: nil, rng: &untouched)
            _ = ConversationBuilder.build(format: .description, response: "Text.", instruction: nil, rng: &untouched)
            XCTAssertEqual(untouched.next(), draw)
        }
    }

    func testSingleQATurns() throws {
        let response = "Question:\nWhy is the dog on the couch?\n===\nAnswer:\nIt is napping.\n\nDogs like soft spots."
        let turns = try build(.singleQA, response, seed: 9).get()
        XCTAssertEqual(turns.count, 2)
        let first = placements("Why is the dog on the couch?")
        XCTAssertTrue(turns[0].value == first.before || turns[0].value == first.after, turns[0].value)
        XCTAssertEqual(turns[0].from, "human")
        XCTAssertEqual(turns[1], Turn(from: "gpt", value: "It is napping.\n\nDogs like soft spots."))
    }

    func testDescriptionTurns() throws {
        let instruction = "Describe this image in as much detail as you can."
        var sawBefore = false, sawAfter = false
        for seed: UInt64 in 0..<40 {
            let turns = try build(.description, "  A dog naps on a gray couch.\n\nA TV is on.\n",
                                  instruction: "  \(instruction)\n", seed: seed).get()
            XCTAssertEqual(turns.count, 2)
            XCTAssertEqual(turns[0].from, "human")
            if turns[0].value == "<image>\n" + instruction { sawBefore = true }
            else if turns[0].value == instruction + "\n<image>" { sawAfter = true }
            else { XCTFail(turns[0].value) }
            XCTAssertEqual(turns[1], Turn(from: "gpt", value: "A dog naps on a gray couch.\n\nA TV is on."))
        }
        XCTAssertTrue(sawBefore && sawAfter)
    }

    func testDescriptionRequiresInstruction() {
        let expected = ParseFailure(reason: "missing_instruction",
                                    detail: "a description sample needs an instruction for its human turn")
        for instruction: String? in [nil, "", "  \n\t"] {
            XCTAssertEqual(build(.description, "A dog naps.", instruction: instruction, seed: 1), .failure(expected))
        }
    }

    func testBuildPropagatesParseFailures() {
        XCTAssertEqual(build(.conversation, "  \n", seed: 1),
                       .failure(ParseFailure(reason: "empty_response", detail: "the response is empty")))
        XCTAssertEqual(build(.singleQA, conversation, seed: 1),
                       .failure(ParseFailure(reason: "multiple_pairs", detail: "expected exactly one question/answer pair, found 2")))
        XCTAssertEqual(build(.description, conversation, instruction: "Describe it.", seed: 1),
                       .failure(ParseFailure(reason: "wrong_format", detail: "expected plain prose, found \"Question:\" label at line 1")))
        XCTAssertEqual(build(.conversation, "Answer: yes", seed: 1),
                       .failure(ParseFailure(reason: "answer_without_question", detail: "answer at line 1 comes before any question")))
    }

    func testTurnJSONEncoding() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let turn = Turn(from: "human", value: "<image>\nWhat is the man holding?")
        XCTAssertEqual(String(decoding: try encoder.encode(turn), as: UTF8.self),
                       #"{"from":"human","value":"<image>\nWhat is the man holding?"}"#)
        let turns = [turn, Turn(from: "gpt", value: "A red umbrella.")]
        let json = try encoder.encode(turns)
        XCTAssertEqual(String(decoding: json, as: UTF8.self),
                       #"[{"from":"human","value":"<image>\nWhat is the man holding?"},{"from":"gpt","value":"A red umbrella."}]"#)
        XCTAssertEqual(try JSONDecoder().decode([Turn].self, from: json), turns)
        // Exactly the two keys, nothing else.
        let object = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(turn)) as? [String: String]
        XCTAssertEqual(object, ["from": "human", "value": "<image>\nWhat is the man holding?"])
    }

    func testResponseFormatRawValues() {
        XCTAssertEqual(ResponseFormat.allCases.map(\.rawValue), ["conversation", "description", "single_qa"])
        XCTAssertEqual(ResponseFormat(rawValue: "single_qa"), .singleQA)
        XCTAssertNil(ResponseFormat(rawValue: "singleQA"))
    }
}
