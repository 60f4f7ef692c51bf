import ForgeCore

/// How a type's raw LLM response is laid out (`format:` in `prompts/<type>/type.yaml`).
public enum ResponseFormat: String, Sendable, CaseIterable {
    /// Several `Question:` / `===` / `Answer:` / `===` blocks.
    case conversation
    /// Plain prose, no labels; the human turn is an instruction drawn from the type's list.
    case description
    /// Exactly one question/answer pair, laid out like `conversation`.
    case singleQA = "single_qa"
}

/// One question and its answer, both trimmed, internal line breaks kept (runs of blank lines
/// collapsed to one).
public struct QAPair: Equatable, Sendable {
    public var question: String
    public var answer: String

    public init(question: String, answer: String) {
        self.question = question
        self.answer = answer
    }
}

/// Why a response was rejected. `reason` is a stable snake_case code (safe to store, count and
/// group by); `detail` is a human-readable explanation that may change between versions.
public struct ParseFailure: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var detail: String

    public init(reason: String, detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason): \(detail)" }

    /// The reason codes this module produces.
    public enum Reason {
        /// The response is empty or only whitespace.
        public static let emptyResponse = "empty_response"
        /// No `Question:` label anywhere (and no `Answer:` either).
        public static let noQuestion = "no_question"
        /// A question is followed by another question or by the end of the response.
        public static let questionWithoutAnswer = "question_without_answer"
        /// An answer comes first, or follows another answer.
        public static let answerWithoutQuestion = "answer_without_question"
        /// A `Question:` label with no text under it.
        public static let emptyQuestion = "empty_question"
        /// An `Answer:` label with no text under it.
        public static let emptyAnswer = "empty_answer"
        /// `single_qa` response holding more than one pair.
        public static let multiplePairs = "multiple_pairs"
        /// `description` response that is laid out as questions and answers.
        public static let wrongFormat = "wrong_format"
        /// `description` build without an instruction for the human turn.
        public static let missingInstruction = "missing_instruction"
    }
}

/// One turn of a LLaVA conversation, encoded as `{"from": "human"|"gpt", "value": ...}`.
public struct Turn: Codable, Equatable, Sendable {
    public var from: String
    public var value: String

    public init(from: String, value: String) {
        self.from = from
        self.value = value
    }

    public static let human = "human"
    public static let gpt = "gpt"
}
