import ForgeCore
import Foundation

/// The JSON layout of responses in structured-output mode (`prompts/<type>/schema.json`):
///
///     conversation  {"conversation": [{"question": "…", "answer": "…"}, …]}   (1…N pairs)
///     single_qa     {"question": "…", "answer": "…"}
///     description   {"description": "…"}
///
/// `parse` turns such a response into the same pairs / text as the free-text layout (so the
/// turns, `<image>` placement and quality filters are the same); `render` writes a seed example
/// in it, so the few-shot examples show the model the layout it must produce.
public enum StructuredResponse {
    public enum Reason {
        /// Not JSON at all, or truncated JSON.
        public static let invalidJSON = "invalid_json"
        /// Valid JSON without the expected keys / types.
        public static let wrongShape = "wrong_json_shape"
    }

    public enum Parsed: Equatable {
        case pairs([QAPair])
        case text(String)
    }

    /// Parses a JSON response of `format`. Whitespace and a Markdown code fence around the JSON
    /// are tolerated (hosted models in json mode sometimes add them); nothing else is guessed.
    public static func parse(format: ResponseFormat, response: String) -> Result<Parsed, ParseFailure> {
        var text = response.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return .failure(ParseFailure(reason: ParseFailure.Reason.emptyResponse, detail: "the response is empty")) }
        if text.hasPrefix("```") {
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            lines.removeFirst()
            if let last = lines.last, last.trimmingCharacters(in: .whitespaces) == "```" { lines.removeLast() }
            text = lines.joined(separator: "\n")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let nsError = error as NSError
            let why = (nsError.userInfo[NSDebugDescriptionErrorKey] as? String) ?? "\(error)"
            return .failure(ParseFailure(reason: Reason.invalidJSON, detail: "the response is not valid JSON (\(why)): \(preview(text))"))
        }
        switch format {
        case .conversation:
            let list: [Any]
            if let dict = object as? [String: Any] {
                guard let l = dict["conversation"] as? [Any] else {
                    return shape("expected {\"conversation\": [{\"question\", \"answer\"}, …]}, got keys \(dict.keys.sorted())")
                }
                list = l
            } else if let l = object as? [Any] {
                list = l
            } else {
                return shape("expected an object with a \"conversation\" list")
            }
            guard !list.isEmpty else {
                return .failure(ParseFailure(reason: ParseFailure.Reason.noQuestion, detail: "the conversation list is empty"))
            }
            var pairs: [QAPair] = []
            for (i, item) in list.enumerated() {
                switch pair(item, where: "conversation[\(i)]") {
                case .success(let p): pairs.append(p)
                case .failure(let f): return .failure(f)
                }
            }
            return .success(.pairs(pairs))
        case .singleQA:
            return pair(object, where: "the response").map { .pairs([$0]) }
        case .description:
            guard let dict = object as? [String: Any], let description = dict["description"] as? String else {
                return shape("expected {\"description\": \"…\"}")
            }
            return ResponseParser.parseDescription(description).map { .text($0) }
        }
    }

    private static func pair(_ item: Any, where place: String) -> Result<QAPair, ParseFailure> {
        guard let dict = item as? [String: Any] else { return shape("\(place) is not an object") }
        guard let q = dict["question"] as? String else { return shape("\(place) has no string \"question\"") }
        guard let a = dict["answer"] as? String else { return shape("\(place) has no string \"answer\"") }
        let question = ResponseParser.trimmed(Substring(q)), answer = ResponseParser.trimmed(Substring(a))
        if question.isEmpty { return .failure(ParseFailure(reason: ParseFailure.Reason.emptyQuestion, detail: "\(place): the question is empty")) }
        if answer.isEmpty { return .failure(ParseFailure(reason: ParseFailure.Reason.emptyAnswer, detail: "\(place): the answer is empty")) }
        return .success(QAPair(question: String(question), answer: String(answer)))
    }

    private static func shape<T>(_ detail: String) -> Result<T, ParseFailure> {
        .failure(ParseFailure(reason: Reason.wrongShape, detail: detail))
    }

    private static func preview(_ text: String) -> String {
        text.count <= 80 ? text : String(text.prefix(40)) + " … " + String(text.suffix(40))
    }

    /// A free-text seed response re-laid out as the JSON of `format` (`": "` / `", "` separators,
    /// keys in schema order, non-ASCII kept raw), or the parse failure of the seed.
    public static func render(format: ResponseFormat, freeText response: String) -> Result<String, ParseFailure> {
        func pairJSON(_ p: QAPair) -> String { "{\"question\": \(quoted(p.question)), \"answer\": \(quoted(p.answer))}" }
        switch format {
        case .conversation:
            return ResponseParser.parseQAPairs(response).map { pairs in
                "{\"conversation\": [" + pairs.map(pairJSON).joined(separator: ", ") + "]}"
            }
        case .singleQA:
            return ResponseParser.parseSingleQA(response).map(pairJSON)
        case .description:
            return ResponseParser.parseDescription(response).map { "{\"description\": \(quoted($0))}" }
        }
    }

    /// A JSON string literal: `"`, `\` and control characters escaped, everything else raw.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

extension ConversationBuilder {
    /// `build` for a structured (JSON) response: the same turns, `<image>` placement and
    /// instruction rule as the free-text layout; malformed JSON is a `ParseFailure`
    /// (`invalid_json`, `wrong_json_shape`, or the empty-text reasons).
    public static func buildFromJSON(format: ResponseFormat, response: String, instruction: String?,
                                     rng: inout SeededRandom) -> Result<[Turn], ParseFailure> {
        if format == .description, ResponseParser.trimmed(Substring(instruction ?? "")).isEmpty {
            return .failure(ParseFailure(reason: ParseFailure.Reason.missingInstruction,
                                         detail: "a description sample needs an instruction for its human turn"))
        }
        switch StructuredResponse.parse(format: format, response: response) {
        case .failure(let f): return .failure(f)
        case .success(.pairs(let pairs)): return .success(turns(for: pairs, rng: &rng))
        case .success(.text(let text)):
            let prompt = String(ResponseParser.trimmed(Substring(instruction ?? "")))
            return .success([Turn(from: Turn.human, value: withImage(prompt, rng: &rng)), Turn(from: Turn.gpt, value: text)])
        }
    }
}
