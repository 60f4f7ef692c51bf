import ForgeCore

/// Raw LLM responses → question/answer pairs or a description.
///
/// The expected layout (see `prompts/*/system.txt`) is
///
///     Question:
///     <question>
///     ===
///     Answer:
///     <answer>
///     ===
///
/// Real output drifts from it, so the parser works line by line and accepts:
/// - labels in any case, with the text on the same line (`Question: What ...`) or below it;
/// - labels numbered (`Question 1:`, `Q2:`, `Question #3:`), in markdown bold or italics
///   (`**Question:**`, `**Question**:`, `**Question: What ...?**`, `_Answer:_`) or after a heading
///   mark (`### Answer:`);
/// - short forms `Q:` / `A:` — but only for a kind that has no long-form label anywhere in the
///   response, so a multiple-choice line `A: red` inside a `Question:`/`Answer:` response is text;
/// - missing, extra or trailing `===` lines, extra blank lines and whitespace, CRLF / CR line ends,
///   a byte-order mark, a code fence around the whole response;
/// - chatter before the first label ("Sure! Here are ...").
///
/// A label is recognised only at the start of a line (after optional indentation and markdown
/// marks) and only when the keyword is followed, apart from an optional number, by a colon; so
/// "Answer choices: ...", "A man is ...", "1. Question the ..." or "... the answer: yes" are text.
///
/// A `===` line closes the current block: text after it and before the next label is outside the
/// layout (typically a closing remark) and is dropped. Horizontal rules (`---`, `***`) at the
/// edges of a block and an unmatched code fence at its edge are dropped too.
///
/// Each question and answer is trimmed; internal line breaks are kept, trailing spaces are
/// removed from every line, and runs of blank lines collapse to a single blank line.
///
/// Nothing is ever guessed: a response that does not pair up cleanly is rejected with a
/// `ParseFailure` whose `reason` says why (see `ParseFailure.Reason`).
public enum ResponseParser {

    // MARK: Public entry points

    /// Every question/answer pair of a `conversation` response, in order.
    public static func parseQAPairs(_ text: String) -> Result<[QAPair], ParseFailure> {
        let lines = normalizedLines(text)
        if lines.allSatisfy(isBlank) {
            return .failure(ParseFailure(reason: ParseFailure.Reason.emptyResponse, detail: "the response is empty"))
        }

        // Which label forms count: per kind, long form if present anywhere, else short form.
        let raw = lines.map(matchLabel)
        var hasLong: Set<LabelKind> = []
        for case let label? in raw where !label.short { hasLong.insert(label.kind) }

        // Split into labelled blocks; text before the first label and after a `===` that closed
        // a block is outside the layout and dropped.
        var segments: [Segment] = []
        var open = false
        for (index, line) in lines.enumerated() {
            if let label = raw[index], !(label.short && hasLong.contains(label.kind)) {
                segments.append(Segment(kind: label.kind, line: index + 1,
                                        body: label.inline.isEmpty ? [] : [label.inline]))
                open = true
            } else if isSeparator(line) {
                open = false
            } else if open {
                segments[segments.count - 1].body.append(line)
            }
        }
        if segments.isEmpty {
            return .failure(ParseFailure(reason: ParseFailure.Reason.noQuestion,
                                         detail: "no \"Question:\" label found in the response"))
        }

        var pairs: [QAPair] = []
        var pending: (text: String, line: Int, number: Int)?
        var questionCount = 0
        for segment in segments {
            let body = cleanBlock(segment.body)
            switch segment.kind {
            case .question:
                if let p = pending {
                    return .failure(ParseFailure(
                        reason: ParseFailure.Reason.questionWithoutAnswer,
                        detail: "question \(p.number) (line \(p.line)) is followed by another question (line \(segment.line)) instead of an answer"))
                }
                questionCount += 1
                pending = (body, segment.line, questionCount)
            case .answer:
                guard let p = pending else {
                    return .failure(ParseFailure(
                        reason: ParseFailure.Reason.answerWithoutQuestion,
                        detail: pairs.isEmpty
                            ? "answer at line \(segment.line) comes before any question"
                            : "answer at line \(segment.line) follows answer \(pairs.count) instead of a question"))
                }
                if p.text.isEmpty {
                    return .failure(ParseFailure(reason: ParseFailure.Reason.emptyQuestion,
                                                 detail: "question \(p.number) (line \(p.line)) has no text"))
                }
                if body.isEmpty {
                    return .failure(ParseFailure(reason: ParseFailure.Reason.emptyAnswer,
                                                 detail: "answer \(p.number) (line \(segment.line)) has no text"))
                }
                pairs.append(QAPair(question: p.text, answer: body))
                pending = nil
            }
        }
        if let p = pending {
            return .failure(ParseFailure(reason: ParseFailure.Reason.questionWithoutAnswer,
                                         detail: "question \(p.number) (line \(p.line)) has no answer"))
        }
        return .success(pairs)
    }

    /// The one pair of a `single_qa` response. More than one pair is rejected
    /// (`multiple_pairs`), never trimmed down to the first.
    public static func parseSingleQA(_ text: String) -> Result<QAPair, ParseFailure> {
        switch parseQAPairs(text) {
        case .failure(let failure):
            return .failure(failure)
        case .success(let pairs):
            guard pairs.count == 1 else {
                return .failure(ParseFailure(reason: ParseFailure.Reason.multiplePairs,
                                             detail: "expected exactly one question/answer pair, found \(pairs.count)"))
            }
            return .success(pairs[0])
        }
    }

    /// The text of a `description` response: trimmed, `===` lines removed, a code fence around
    /// the whole text removed, runs of blank lines collapsed. A response carrying
    /// `Question:` / `Answer:` labels (or both `Q:` and `A:`) at line start is `wrong_format`.
    public static func parseDescription(_ text: String) -> Result<String, ParseFailure> {
        let lines = normalizedLines(text)
        if lines.allSatisfy(isBlank) {
            return .failure(ParseFailure(reason: ParseFailure.Reason.emptyResponse, detail: "the response is empty"))
        }
        var shortLabels: [LabelKind: Int] = [:]
        for (index, line) in lines.enumerated() {
            guard let label = matchLabel(line) else { continue }
            if label.short {
                if shortLabels[label.kind] == nil { shortLabels[label.kind] = index + 1 }
            } else {
                return .failure(ParseFailure(
                    reason: ParseFailure.Reason.wrongFormat,
                    detail: "expected plain prose, found \"\(label.kind.name):\" label at line \(index + 1)"))
            }
        }
        if let q = shortLabels[.question], let a = shortLabels[.answer] {
            return .failure(ParseFailure(
                reason: ParseFailure.Reason.wrongFormat,
                detail: "expected plain prose, found \"Q:\" (line \(q)) and \"A:\" (line \(a)) labels"))
        }
        let body = cleanBlock(lines.filter { !isSeparator($0) }, unwrapFence: true)
        if body.isEmpty {
            return .failure(ParseFailure(reason: ParseFailure.Reason.emptyResponse,
                                         detail: "the response has no text besides separators"))
        }
        return .success(body)
    }

    // MARK: Labels

    enum LabelKind: Hashable {
        case question, answer
        var name: String { self == .question ? "Question" : "Answer" }
    }

    struct Label: Equatable {
        var kind: LabelKind
        /// `Q:` / `A:` rather than `Question:` / `Answer:`.
        var short: Bool
        /// Text after the label on the same line, trimmed.
        var inline: Substring
    }

    struct Segment {
        var kind: LabelKind
        var line: Int
        var body: [Substring]
    }

    private static let keywords: [(word: String, kind: LabelKind, short: Bool)] = [
        ("question", .question, false), ("answer", .answer, false),
        ("q", .question, true), ("a", .answer, true),
    ]
    private static let emphasis = ["**", "__", "*", "_"]

    /// Recognises a label at the start of `line`:
    /// `[indent] [#...] [emphasis] keyword [number] [emphasis] (":"|"：") [emphasis] [inline text]`.
    static func matchLabel(_ line: Substring) -> Label? {
        var s = line.drop(while: isInlineSpace)
        // Markdown heading mark.
        if s.first == "#" {
            s = s.drop(while: { $0 == "#" }).drop(while: isInlineSpace)
        }
        // Emphasis opener; "* Question:" is a bullet, not emphasis, so no space may follow it.
        var opener: Substring = ""
        for mark in emphasis where s.hasPrefix(mark) {
            let rest = s.dropFirst(mark.count)
            if let next = rest.first, !next.isWhitespace {
                opener = s.prefix(mark.count)
                s = rest
            }
            break
        }
        // Keyword, not followed by a letter ("Questions", "Answering", "A man", "Quite").
        var matched: (kind: LabelKind, short: Bool)?
        for keyword in keywords where s.count >= keyword.word.count {
            let head = s.prefix(keyword.word.count)
            guard head.lowercased() == keyword.word else { continue }
            let rest = s.dropFirst(keyword.word.count)
            if let next = rest.first, next.isLetter { continue }
            matched = (keyword.kind, keyword.short)
            s = rest
            break
        }
        guard let (kind, short) = matched else { return nil }
        // Optional number: "Question 1", "Q2", "Question #3".
        s = s.drop(while: isInlineSpace)
        if s.first == "#", let next = s.dropFirst().first, next.isASCIIDigit { s = s.dropFirst() }
        s = s.drop(while: { $0.isASCIIDigit }).drop(while: isInlineSpace)
        // Emphasis closed before the colon: "**Question**:".
        var closed = opener.isEmpty
        if !closed, s.hasPrefix(opener) {
            s = s.dropFirst(opener.count)
            closed = true
        }
        s = s.drop(while: isInlineSpace)
        guard let colon = s.first, colon == ":" || colon == "：" else { return nil }
        s = s.dropFirst()
        // Emphasis closed after the colon: "**Question:**".
        if !closed, s.hasPrefix(opener) {
            s = s.dropFirst(opener.count)
            closed = true
        }
        var inline = trimmed(s)
        // Whole line emphasised: "**Question: What is it?**".
        if !closed, inline.hasSuffix(opener) {
            inline = trimmed(inline.dropLast(opener.count))
        }
        return Label(kind: kind, short: short, inline: inline)
    }

    // MARK: Lines

    /// Splits into lines after mapping CRLF, CR, U+2028/2029 and NEL to LF and removing BOMs.
    static func normalizedLines(_ text: String) -> [Substring] {
        var out = String.UnicodeScalarView()
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            let wasCR = previousWasCR
            previousWasCR = false
            switch scalar {
            case "\r":
                out.append("\n")
                previousWasCR = true
            case "\n":
                if !wasCR { out.append("\n") }
            case "\u{2028}", "\u{2029}", "\u{85}":
                out.append("\n")
            case "\u{FEFF}":
                break
            default:
                out.append(scalar)
            }
        }
        return String(out).split(separator: "\n", omittingEmptySubsequences: false)
    }

    static func isBlank(_ line: Substring) -> Bool { line.allSatisfy(\.isWhitespace) }

    /// A line of only `=` (three or more).
    static func isSeparator(_ line: Substring) -> Bool {
        let t = trimmed(line)
        return t.count >= 3 && t.allSatisfy { $0 == "=" }
    }

    /// A markdown horizontal rule: three or more of one of `-`, `*`, `_`, spaces allowed.
    static func isRule(_ line: Substring) -> Bool {
        let marks = line.filter { !$0.isWhitespace }
        guard marks.count >= 3, let first = marks.first, "-*_".contains(first) else { return false }
        return marks.allSatisfy { $0 == first }
    }

    static func isFence(_ line: Substring) -> Bool {
        let t = trimmed(line)
        return t.hasPrefix("```") || t.hasPrefix("~~~")
    }

    /// Joins a block's lines: trailing spaces removed, blank lines / rules / an unmatched fence
    /// at the edges dropped, runs of blank lines collapsed to one, the result trimmed.
    static func cleanBlock(_ lines: [Substring], unwrapFence: Bool = false) -> String {
        var ls = lines.map(trimmedTrailing)
        stripEdges(&ls)
        let fences = ls.filter(isFence).count
        if let first = ls.first, let last = ls.last, ls.count >= 2, unwrapFence, fences == 2,
           isFence(first), trimmed(last).allSatisfy({ $0 == "`" || $0 == "~" }) {
            ls.removeFirst()
            ls.removeLast()
            stripEdges(&ls)
        } else if fences % 2 == 1 {
            if let last = ls.last, isFence(last) {
                ls.removeLast()
                stripEdges(&ls)
            } else if let first = ls.first, isFence(first) {
                ls.removeFirst()
                stripEdges(&ls)
            }
        }
        var out: [Substring] = []
        for line in ls {
            if line.isEmpty, let previous = out.last, previous.isEmpty { continue }
            out.append(line)
        }
        return String(trimmed(Substring(out.joined(separator: "\n"))))
    }

    private static func stripEdges(_ ls: inout [Substring]) {
        while let first = ls.first, first.isEmpty || isRule(first) { ls.removeFirst() }
        while let last = ls.last, last.isEmpty || isRule(last) { ls.removeLast() }
    }

    static func trimmed(_ s: Substring) -> Substring {
        var t = s.drop(while: \.isWhitespace)
        while let last = t.last, last.isWhitespace { t = t.dropLast() }
        return t
    }

    private static func trimmedTrailing(_ s: Substring) -> Substring {
        var t = s
        while let last = t.last, last.isWhitespace { t = t.dropLast() }
        return t
    }

    private static func isInlineSpace(_ c: Character) -> Bool { c.isWhitespace && !c.isNewline }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isWholeNumber }
}
