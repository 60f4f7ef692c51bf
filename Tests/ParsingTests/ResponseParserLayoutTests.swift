import Foundation
import XCTest
import ForgeCore
@testable import Parsing

/// Accepted layouts: the clean ones from `prompts/*/system.txt` and the messy variants real
/// models produce. Every test asserts the exact pairs / text.
final class ResponseParserLayoutTests: XCTestCase {

    private func qa(_ q: String, _ a: String) -> QAPair { QAPair(question: q, answer: a) }

    // MARK: Clean layouts

    func testCleanConversation() {
        let text = """
        Question:
        What is the man holding?
        ===
        Answer:
        The man is holding a red umbrella.
        ===
        Question:
        What color is the bus behind him?
        ===
        Answer:
        The bus is yellow.
        ===
        Question:
        Why might he be carrying an umbrella?
        ===
        Answer:
        The sky is overcast and the pavement is wet, so it has probably been raining.
        He likely wants to stay dry on his walk.
        ===

        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is the man holding?", "The man is holding a red umbrella."),
            qa("What color is the bus behind him?", "The bus is yellow."),
            qa("Why might he be carrying an umbrella?",
               "The sky is overcast and the pavement is wet, so it has probably been raining.\nHe likely wants to stay dry on his walk."),
        ]))
    }

    func testCleanSingleQAWithListsAndParagraphs() {
        let text = """
        Question:
        What precautions should the cyclist take on this street?
        ===
        Answer:
        The cyclist shares a narrow street with a large bus, which calls for extra care.

        1. Wear a helmet at all times.
        2. Keep a safe distance from the bus, since its driver may not see a bike beside it.

        Other useful habits:
        - Use hand signals before turning.
        - Stay visible with lights and bright clothing.
          - Reflective strips help at dusk.

        Overall, patience and visibility are the cyclist's best protection.
        """
        let answer = """
        The cyclist shares a narrow street with a large bus, which calls for extra care.

        1. Wear a helmet at all times.
        2. Keep a safe distance from the bus, since its driver may not see a bike beside it.

        Other useful habits:
        - Use hand signals before turning.
        - Stay visible with lights and bright clothing.
          - Reflective strips help at dusk.

        Overall, patience and visibility are the cyclist's best protection.
        """
        XCTAssertEqual(ResponseParser.parseSingleQA(text),
                       .success(qa("What precautions should the cyclist take on this street?", answer)))
    }

    func testCleanDescription() {
        let text = """
        This is a cozy living room with a large brown dog curled up on a gray couch.

        On the right side of the room, a flat-screen television sits on a low shelf.

        """
        XCTAssertEqual(ResponseParser.parseDescription(text), .success(
            "This is a cozy living room with a large brown dog curled up on a gray couch.\n\nOn the right side of the room, a flat-screen television sits on a low shelf."))
    }

    /// The few-shot seed responses shipped in `seeds/` are the canonical layout; all must parse.
    func testSeedResponsesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let seeds = root.appendingPathComponent("seeds")
        guard FileManager.default.fileExists(atPath: seeds.path) else { throw XCTSkip("no seeds/ directory") }
        func responses(_ type: String) throws -> [String] {
            let dir = seeds.appendingPathComponent(type)
            return try FileManager.default.contentsOfDirectory(atPath: dir.path)
                .filter { $0.hasSuffix(".response.txt") }.sorted()
                .map { try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8) }
        }
        let conversations = try responses("conversation")
        XCTAssertFalse(conversations.isEmpty)
        for text in conversations {
            let pairs = try ResponseParser.parseQAPairs(text).get()
            XCTAssertTrue((3...6).contains(pairs.count), "\(pairs.count) pairs")
            for pair in pairs {
                XCTAssertTrue(pair.question.hasSuffix("?"), pair.question)
                XCTAssertFalse(pair.answer.contains("==="), pair.answer)
            }
        }
        for text in try responses("reasoning") {
            let pair = try ResponseParser.parseSingleQA(text).get()
            XCTAssertTrue(pair.question.hasSuffix("?"), pair.question)
            XCTAssertFalse(pair.answer.hasPrefix("Answer"), pair.answer)
        }
        for text in try responses("detail") {
            let description = try ResponseParser.parseDescription(text).get()
            XCTAssertEqual(description, text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    // MARK: Messy layouts

    func testMissingSeparators() {
        let text = """
        Question:
        What animal is on the couch?
        Answer:
        A brown dog.
        Question:
        Is anyone watching the television?
        Answer:
        No, the room is empty apart from the dog.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What animal is on the couch?", "A brown dog."),
            qa("Is anyone watching the television?", "No, the room is empty apart from the dog."),
        ]))
    }

    func testLabelAndTextOnSameLine() {
        let text = """
        Question: What is the man holding?
        ===
        Answer: The man is holding a red umbrella.
        He holds it high above his head.
        ===
        Question:What is he wearing?
        Answer:A long gray coat.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is the man holding?", "The man is holding a red umbrella.\nHe holds it high above his head."),
            qa("What is he wearing?", "A long gray coat."),
        ]))
    }

    func testLabelCaseAndSpacingVariants() {
        let text = """
        QUESTION:
        How many people are there?
        ===
        answer:
        Three people.
        ===
          question :   Where are they standing?
        ===
        AnSwEr :
        On a train platform.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("How many people are there?", "Three people."),
            qa("Where are they standing?", "On a train platform."),
        ]))
    }

    func testMarkdownLabels() {
        let text = """
        **Question:** What is on the plate?
        **Answer:** A slice of chocolate cake.

        **Question**: Is there a drink?
        **Answer**:
        Yes, a cup of coffee.

        **Question: Who is sitting at the table?**
        __Answer:__ Two women.

        *Question:* What time of day is it?
        ### Answer:
        It looks like late afternoon.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is on the plate?", "A slice of chocolate cake."),
            qa("Is there a drink?", "Yes, a cup of coffee."),
            qa("Who is sitting at the table?", "Two women."),
            qa("What time of day is it?", "It looks like late afternoon."),
        ]))
    }

    func testShortFormLabels() {
        let text = """
        Q: How many dogs are in the picture?
        A: Two dogs.
        ===
        q:
        Where are they?
        a: On a sandy beach.
        **Q2:** What are they doing?
        **A2:** Chasing a ball.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("How many dogs are in the picture?", "Two dogs."),
            qa("Where are they?", "On a sandy beach."),
            qa("What are they doing?", "Chasing a ball."),
        ]))
    }

    /// With long-form labels present, `A:` / `B:` / `Q:` lines are content (multiple choice).
    func testShortFormLinesInsideLongFormResponseAreText() {
        let text = """
        Question:
        Which color is the umbrella?
        A: red
        B: blue
        ===
        Answer:
        A: red. The umbrella is bright red.
        Q: Is that common? Yes, red umbrellas are popular.
        ===
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("Which color is the umbrella?\nA: red\nB: blue",
               "A: red. The umbrella is bright red.\nQ: Is that common? Yes, red umbrellas are popular."),
        ]))
    }

    func testBlankLinesWhitespaceAndCRLF() {
        let text = "\r\n\r\n  Question:  \r\n\r\n   What is on the table?   \r\n\r\n===\r\n\r\n"
            + "Answer:\r\n\tA laptop and a cup of coffee.  \r\nThe laptop is open.\t\r\n\r\n\r\n\r\n===\r\n\r\n"
            + "Question:\rIs the coffee hot?\r===\rAnswer:\rYes, steam rises from it.\r===\r"
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is on the table?", "A laptop and a cup of coffee.\nThe laptop is open."),
            qa("Is the coffee hot?", "Yes, steam rises from it."),
        ]))
    }

    func testByteOrderMarkAndUnicodeLineSeparators() {
        let text = "\u{FEFF}Question:\u{2028}What is this?\u{2029}Answer:\u{85}A kite.\u{00A0}"
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([qa("What is this?", "A kite.")]))
    }

    func testLeadingChatterIsDropped() {
        let text = """
        Sure! Here are some questions and answers about the image:

        The picture shows a beach scene.
        ===
        Question:
        What are the people carrying?
        ===
        Answer:
        Surfboards.
        ===
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([qa("What are the people carrying?", "Surfboards.")]))
    }

    func testTrailingSeparatorsAndClosingRemarkAfterSeparator() {
        let text = """
        Question:
        Is it sunny?
        ===
        Answer:
        Yes, the sky is clear.
        ===
        ===

        I hope these questions help!
        ===
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([qa("Is it sunny?", "Yes, the sky is clear.")]))
    }

    func testListsAndLabelLikeWordsInsideAnswerAreText() {
        let text = """
        Question:
        What should the skier consider before going down this slope?
        ===
        Answer:
        Several factors matter here:
        1. Question the snow conditions first.
        2. Answer choices about the route depend on skill.
        - Question: is the slope groomed?
        * Answer: check the trail sign.
        Answer choices: the easy run or the steep one.
        Questions like these have one short answer: go slowly.
        A careful skier will choose the easier run.
        ===
        """
        let answer = """
        Several factors matter here:
        1. Question the snow conditions first.
        2. Answer choices about the route depend on skill.
        - Question: is the slope groomed?
        * Answer: check the trail sign.
        Answer choices: the easy run or the steep one.
        Questions like these have one short answer: go slowly.
        A careful skier will choose the easier run.
        """
        XCTAssertEqual(ResponseParser.parseSingleQA(text),
                       .success(qa("What should the skier consider before going down this slope?", answer)))
    }

    func testNumberedLabels() {
        let text = """
        Question 1:
        What is the cat doing?
        ===
        Answer 1:
        Sleeping on a windowsill.
        ===
        Question 2: Is the window open?
        Answer 2: No, it is closed.
        **Question #3:** What is outside?
        **Answer 3**: A garden with tall trees.
        Question10: Any birds?
        Answer10: One small bird on a branch.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is the cat doing?", "Sleeping on a windowsill."),
            qa("Is the window open?", "No, it is closed."),
            qa("What is outside?", "A garden with tall trees."),
            qa("Any birds?", "One small bird on a branch."),
        ]))
    }

    func testRunsOfBlankLinesCollapseAndIndentationIsKept() {
        let text = "Question:\nWhat is in the room?\n\n\n\nList everything.\n===\n"
            + "Answer:\nA sofa.\n\n\n\nA lamp:\n  - tall\n   \n\t\n\n  - white\n===\n"
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What is in the room?\n\nList everything.", "A sofa.\n\nA lamp:\n  - tall\n\n  - white"),
        ]))
    }

    func testHorizontalRulesUsedAsSeparators() {
        let text = """
        Question:
        What sport is being played?
        ---
        Answer:
        Baseball.
        ---
        ***
        Question:
        Where is the batter?
        Answer:
        At home plate.
        - - -
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([
            qa("What sport is being played?", "Baseball."),
            qa("Where is the batter?", "At home plate."),
        ]))
    }

    func testCodeFenceAroundResponse() {
        let text = """
        Here you go:
        ```text
        Question:
        What is the boy flying?
        ===
        Answer:
        A kite shaped like a fish.
        ===
        ```
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .success([qa("What is the boy flying?", "A kite shaped like a fish.")]))
        // A complete code block inside an answer is content and kept.
        let withCode = "Question:\nWhat does the sign say?\nAnswer:\nIt reads:\n```\nNO PARKING\n```"
        XCTAssertEqual(ResponseParser.parseQAPairs(withCode), .success([
            qa("What does the sign say?", "It reads:\n```\nNO PARKING\n```"),
        ]))
    }

    func testSingleQAWithMessyLayout() {
        let text = "Sure, here is one.\r\n\r\n**Question 1:** Why is the crosswalk dangerous right now?\r\n\r\n"
            + "**Answer 1:**\r\nThe road is wet.\r\n\r\n\r\n1. Cars need longer to stop.\r\n2. Umbrellas block views.\r\n===\r\n"
        XCTAssertEqual(ResponseParser.parseSingleQA(text), .success(qa(
            "Why is the crosswalk dangerous right now?",
            "The road is wet.\n\n1. Cars need longer to stop.\n2. Umbrellas block views.")))
    }

    // MARK: Descriptions

    func testDescriptionCleanup() {
        let text = "\r\n  The train station is busy.  \r\n\r\n\r\n\r\nA clock hangs above the platform.\r\n===\r\n"
        XCTAssertEqual(ResponseParser.parseDescription(text),
                       .success("The train station is busy.\n\nA clock hangs above the platform."))
    }

    func testDescriptionInCodeFence() {
        XCTAssertEqual(ResponseParser.parseDescription("```\nTwo zebras drink at a waterhole.\n```"),
                       .success("Two zebras drink at a waterhole."))
    }

    func testDescriptionMayMentionQuestionsMidLineAndLoneShortLabel() {
        let text = "A sign asks a question: where is the exit?\nA: the only other line starting like a label."
        XCTAssertEqual(ResponseParser.parseDescription(text), .success(text))
    }

    // MARK: Label recogniser

    func testMatchLabelRecognisesOnlyLabels() {
        func label(_ s: String) -> ResponseParser.Label? { ResponseParser.matchLabel(Substring(s)) }
        XCTAssertEqual(label("**Question: What?**"), ResponseParser.Label(kind: .question, short: false, inline: "What?"))
        XCTAssertEqual(label("Answer 12 :  Yes. "), ResponseParser.Label(kind: .answer, short: false, inline: "Yes."))
        XCTAssertEqual(label("Q：什么？"), ResponseParser.Label(kind: .question, short: true, inline: "什么？"))
        XCTAssertEqual(label("## **A:**"), ResponseParser.Label(kind: .answer, short: true, inline: ""))
        for text in ["Questions:", "Answering: yes", "A man: tall", "Quite: so", "1. Question: x", "- Answer: y",
                     "* Question: z", "Answer choices: A", "The answer: yes", "Question", "**Answer**", ""] {
            XCTAssertNil(label(text), text)
        }
    }
}
