/// Answers that contradict the annotation counts where that is checkable: "two dogs" when the
/// image's boxes list three dogs. Flags only what it can read for certain — a number (words
/// one…ten or digits) directly before the category name (singular or a simple plural, one
/// adjective allowed in between), not hedged ("at least", "about", "two or three"), for a
/// category that has boxes and no crowd box. Anything else is left alone: flag, don't guess.
public struct CountConsistencyFilter: QualityFilter {
    public let name = "count_mismatch"

    static let numberWords: [String: Int] = [
        "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    ]
    /// Words before a number that make it approximate or a bound.
    static let hedges: Set<String> = [
        "least", "most", "than", "about", "around", "over", "under", "nearly", "almost", "approximately", "roughly",
        "up", "to", "or", "maybe", "perhaps", "possibly", "some", "another", "of", "every", "each", "per",
    ]
    /// Words after a number that end the noun phrase (so no category can follow).
    static let breakers: Set<String> = ["of", "or", "and", "to", "in", "on", "at", "with", "is", "are", "was", "were", "more", "other", "others", "another"]
    static let irregular: [String: [String]] = [
        "person": ["people", "persons"], "mouse": ["mice"], "knife": ["knives"], "sheep": ["sheep"],
        "skis": ["skis", "pairs of skis"], "scissors": ["scissors"], "man": ["men"], "woman": ["women"], "child": ["children"],
    ]

    public init() {}

    /// Singular and plural forms of a category name, as word lists ("wine glass" → wine glasses).
    static func forms(of category: String) -> [[String]] {
        let words = TextTokens.words(category)
        guard let last = words.last else { return [] }
        let head = Array(words.dropLast())
        var lasts = [last]
        if let irr = irregular[last] { lasts += irr } else if last.hasSuffix("s") || last.hasSuffix("x") || last.hasSuffix("ch") || last.hasSuffix("sh") {
            lasts.append(last + "es")
        } else if last.hasSuffix("y"), let before = last.dropLast().last, !"aeiou".contains(before) {
            lasts.append(String(last.dropLast()) + "ies")
        } else {
            lasts.append(last + "s")
        }
        return lasts.map { head + TextTokens.words($0) }
    }

    static func number(_ w: String) -> Int? {
        if let n = numberWords[w] { return n }
        if w.count <= 3, let n = Int(w) { return n }
        return nil
    }

    public func check(_ sample: QualitySample) -> String? {
        let checkable = sample.boxCounts.filter { !sample.crowdCategories.contains($0.key) && $0.value > 0 }
        guard !checkable.isEmpty else { return nil }
        let categoryForms = checkable.keys.sorted().map { (name: $0, forms: Self.forms(of: $0)) }
        for (k, turn) in sample.turns.enumerated() where turn.from == "gpt" {
            let words = TextTokens.words(turn.value)
            let hasOther = words.contains("other") || words.contains("another") || words.contains("others")
            for i in words.indices {
                guard let n = Self.number(words[i]) else { continue }
                if i > 0 && Self.hedges.contains(words[i - 1]) { continue }
                if n == 1 && (hasOther || (i + 1 < words.count && words[i + 1] == "of")) { continue }
                // The category right after the number, or after one adjective.
                for skip in 0...1 {
                    let start = i + 1 + skip
                    if skip == 1 {
                        guard i + 1 < words.count, !Self.breakers.contains(words[i + 1]), Self.number(words[i + 1]) == nil else { break }
                    }
                    var matched: (name: String, length: Int)?
                    for c in categoryForms {
                        for form in c.forms where start + form.count <= words.count && Array(words[start..<start + form.count]) == form {
                            if matched == nil || form.count > matched!.length { matched = (c.name, form.count) }
                        }
                    }
                    if let m = matched {
                        let count = checkable[m.name]!
                        if count != n {
                            let phrase = words[i...(start + m.length - 1)].joined(separator: " ")
                            return "turn \(k + 1) says \"\(phrase)\" but the boxes list \(count) \(m.name)"
                        }
                        break
                    }
                }
            }
        }
        return nil
    }
}
