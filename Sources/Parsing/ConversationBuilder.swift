import ForgeCore

/// Parsed responses → LLaVA conversation turns.
public enum ConversationBuilder {
    /// The image token LLaVA's data places in the first human turn.
    public static let imageToken = "<image>"

    /// LLaVA's layout: alternating human/gpt turns; the first human turn gets "<image>" either
    /// before ("<image>\n" + q) or after (q + "\n<image>") the question, chosen by rng (50/50) —
    /// as in LLaVA's released data.
    /// description: one human turn = `instruction` (required, else ParseFailure
    /// "missing_instruction") with <image> placed the same way, one gpt turn = the description.
    ///
    /// On success exactly one value is drawn from `rng` (its top bit: 0 → before, 1 → after);
    /// on failure none is. For `description` the instruction is checked before the response.
    public static func build(format: ResponseFormat, response: String, instruction: String?,
                             rng: inout SeededRandom) -> Result<[Turn], ParseFailure> {
        switch format {
        case .conversation:
            return ResponseParser.parseQAPairs(response).map { turns(for: $0, rng: &rng) }
        case .singleQA:
            return ResponseParser.parseSingleQA(response).map { turns(for: [$0], rng: &rng) }
        case .description:
            let prompt = ResponseParser.trimmed(Substring(instruction ?? ""))
            guard !prompt.isEmpty else {
                return .failure(ParseFailure(reason: ParseFailure.Reason.missingInstruction,
                                             detail: "a description sample needs an instruction for its human turn"))
            }
            return ResponseParser.parseDescription(response).map { text in
                [Turn(from: Turn.human, value: withImage(String(prompt), rng: &rng)),
                 Turn(from: Turn.gpt, value: text)]
            }
        }
    }

    static func turns(for pairs: [QAPair], rng: inout SeededRandom) -> [Turn] {
        var turns: [Turn] = []
        turns.reserveCapacity(pairs.count * 2)
        for (index, pair) in pairs.enumerated() {
            let question = index == 0 ? withImage(pair.question, rng: &rng) : pair.question
            turns.append(Turn(from: Turn.human, value: question))
            turns.append(Turn(from: Turn.gpt, value: pair.answer))
        }
        return turns
    }

    static func withImage(_ text: String, rng: inout SeededRandom) -> String {
        rng.next() >> 63 == 0 ? imageToken + "\n" + text : text + "\n" + imageToken
    }
}
