import XCTest
import ForgeCore
@testable import Parsing

/// Every rejection reason, with its exact detail text.
final class ResponseParserFailureTests: XCTestCase {

    private func fail(_ reason: String, _ detail: String) -> ParseFailure {
        ParseFailure(reason: reason, detail: detail)
    }

    func testEmptyResponse() {
        for text in ["", "   ", "\n\r\n\t \n", "\u{FEFF}"] {
            let expected = fail("empty_response", "the response is empty")
            XCTAssertEqual(ResponseParser.parseQAPairs(text), .failure(expected), text.debugDescription)
            XCTAssertEqual(ResponseParser.parseSingleQA(text), .failure(expected), text.debugDescription)
            XCTAssertEqual(ResponseParser.parseDescription(text), .failure(expected), text.debugDescription)
        }
    }

    func testNoQuestion() {
        let expected = fail("no_question", "no \"Question:\" label found in the response")
        XCTAssertEqual(ResponseParser.parseQAPairs("I'm sorry, but I can't help with that image."), .failure(expected))
        XCTAssertEqual(ResponseParser.parseSingleQA("===\n===\n"), .failure(expected))
        // Label-like words that are not labels do not count.
        XCTAssertEqual(ResponseParser.parseQAPairs("Questions about the image:\n1. What is it?\nThe answer: a dog."),
                       .failure(expected))
    }

    func testQuestionWithoutAnswerAtEnd() {
        let text = """
        Question:
        What is the man holding?
        ===
        Answer:
        A red umbrella.
        ===
        Question:
        Is it raining?
        ===
        Answer:
        Yes, lightly.
        ===
        Question:
        What color is the bus?
        ===
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text),
                       .failure(fail("question_without_answer", "question 3 (line 13) has no answer")))
    }

    func testQuestionWithoutAnswerInTheMiddle() {
        let text = """
        Question: Q one?
        Answer: A one.
        Question: Q two?
        Question: Q three?
        Answer: A three.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .failure(fail(
            "question_without_answer",
            "question 2 (line 3) is followed by another question (line 4) instead of an answer")))
    }

    /// An answer text that follows the question without an `Answer:` label is not guessed at.
    func testUnlabelledAnswerIsNotGuessed() {
        XCTAssertEqual(ResponseParser.parseSingleQA("Question:\nWhy is he running?\n===\nHe is late for the bus."),
                       .failure(fail("question_without_answer", "question 1 (line 1) has no answer")))
    }

    func testAnswerWithoutQuestionFirst() {
        XCTAssertEqual(ResponseParser.parseQAPairs("Here it is.\nAnswer: The dog is asleep."),
                       .failure(fail("answer_without_question", "answer at line 2 comes before any question")))
        XCTAssertEqual(ResponseParser.parseQAPairs("A: only answers here"),
                       .failure(fail("answer_without_question", "answer at line 1 comes before any question")))
    }

    func testAnswerWithoutQuestionAfterAnswer() {
        let text = """
        Question:
        What is on the table?
        Answer:
        A vase.
        ===
        Answer:
        It holds flowers.
        """
        XCTAssertEqual(ResponseParser.parseQAPairs(text), .failure(fail(
            "answer_without_question", "answer at line 6 follows answer 1 instead of a question")))
    }

    func testEmptyQuestion() {
        XCTAssertEqual(ResponseParser.parseQAPairs("Question:\n===\nAnswer:\nYes.\n==="),
                       .failure(fail("empty_question", "question 1 (line 1) has no text")))
        XCTAssertEqual(ResponseParser.parseQAPairs("Q: one?\nA: yes\n**Q:**   \n  \nA: no"),
                       .failure(fail("empty_question", "question 2 (line 3) has no text")))
    }

    func testEmptyAnswer() {
        XCTAssertEqual(ResponseParser.parseQAPairs("Question:\nWhat?\n===\nAnswer:\n===\n"),
                       .failure(fail("empty_answer", "answer 1 (line 4) has no text")))
        let text = "Question: One?\nAnswer: Yes.\nQuestion: Two?\nAnswer:   \n   \n---\n===\nQuestion: Three?\nAnswer: No."
        XCTAssertEqual(ResponseParser.parseQAPairs(text),
                       .failure(fail("empty_answer", "answer 2 (line 4) has no text")))
    }

    func testSingleQARejectsMultiplePairs() {
        let text = """
        Question:
        Why is the dog on the couch?
        ===
        Answer:
        It is resting.
        ===
        Question:
        Is the TV on?
        ===
        Answer:
        Yes.
        """
        XCTAssertEqual(ResponseParser.parseSingleQA(text), .failure(fail(
            "multiple_pairs", "expected exactly one question/answer pair, found 2")))
        // The same text is a valid conversation.
        XCTAssertEqual(try ResponseParser.parseQAPairs(text).get().count, 2)
    }

    func testSingleQAPropagatesStructuralFailures() {
        XCTAssertEqual(ResponseParser.parseSingleQA("Question: Why?\nAnswer: Because.\nQuestion: And?"),
                       .failure(fail("question_without_answer", "question 2 (line 3) has no answer")))
    }

    func testDescriptionWithLabelsIsWrongFormat() {
        XCTAssertEqual(ResponseParser.parseDescription("Question:\nWhat is shown?\n===\nAnswer:\nA dog."),
                       .failure(fail("wrong_format", "expected plain prose, found \"Question:\" label at line 1")))
        XCTAssertEqual(ResponseParser.parseDescription("A dog sleeps on a couch.\n\n**Answer:** it is brown."),
                       .failure(fail("wrong_format", "expected plain prose, found \"Answer:\" label at line 3")))
        XCTAssertEqual(ResponseParser.parseDescription("Q: What is shown?\nA: A dog."),
                       .failure(fail("wrong_format", "expected plain prose, found \"Q:\" (line 1) and \"A:\" (line 2) labels")))
    }

    func testDescriptionOfOnlySeparatorsIsEmpty() {
        XCTAssertEqual(ResponseParser.parseDescription("===\n\n===\n---"),
                       .failure(fail("empty_response", "the response has no text besides separators")))
    }

    func testParseFailureDescriptionAndReasonCodes() {
        XCTAssertEqual(fail("empty_answer", "answer 1 (line 4) has no text").description,
                       "empty_answer: answer 1 (line 4) has no text")
        XCTAssertEqual([ParseFailure.Reason.emptyResponse, ParseFailure.Reason.noQuestion,
                        ParseFailure.Reason.questionWithoutAnswer, ParseFailure.Reason.answerWithoutQuestion,
                        ParseFailure.Reason.emptyQuestion, ParseFailure.Reason.emptyAnswer,
                        ParseFailure.Reason.multiplePairs, ParseFailure.Reason.wrongFormat,
                        ParseFailure.Reason.missingInstruction],
                       ["empty_response", "no_question", "question_without_answer", "answer_without_question",
                        "empty_question", "empty_answer", "multiple_pairs", "wrong_format", "missing_instruction"])
    }
}
