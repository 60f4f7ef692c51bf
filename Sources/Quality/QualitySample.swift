import Foundation

/// One stored sample as the filters and dedup see it: its turns, its type's response format and
/// the annotation counts of its image (for the count-consistency check).
public struct QualitySample: Sendable {
    public struct Turn: Sendable, Equatable, Codable {
        public var from: String
        public var value: String
        public init(from: String, value: String) { self.from = from; self.value = value }
    }

    public var id: Int64
    public var type: String
    /// conversation | description | single_qa (the type's `format:`).
    public var format: String
    public var turns: [Turn]
    /// Non-crowd boxes per category name of the sample's image.
    public var boxCounts: [String: Int]
    /// Categories with at least one crowd box: their counts are not checkable.
    public var crowdCategories: Set<String>
    /// The finish_reason of the request that produced the sample ("stop", "length"; nil: unknown).
    public var finishReason: String?

    public init(id: Int64, type: String, format: String, turns: [Turn], boxCounts: [String: Int] = [:], crowdCategories: Set<String> = [],
                finishReason: String? = nil) {
        self.id = id; self.type = type; self.format = format; self.turns = turns
        self.boxCounts = boxCounts; self.crowdCategories = crowdCategories; self.finishReason = finishReason
    }

    /// The human turns without the `<image>` token.
    public var questions: [String] {
        turns.filter { $0.from == "human" }.map { QualitySample.stripImageToken($0.value) }
    }

    /// The gpt turns.
    public var answers: [String] { turns.filter { $0.from == "gpt" }.map(\.value) }

    /// The texts dedup compares: for description types only the description (the instruction is
    /// drawn from a fixed list), otherwise questions and answers.
    public var dedupQuestions: [String] { format == "description" ? [] : questions }

    /// Without `<image>` and surrounding whitespace (stdlib only: Foundation's string
    /// functions are slow on Linux and this runs for every turn of 158K samples).
    public static func stripImageToken(_ s: String) -> String {
        var t = Substring(s)
        if t.hasPrefix("<image>") { t = t.dropFirst(7) }
        if t.hasSuffix("<image>") { t = t.dropLast(7) }
        var out = t.contains("<image>") ? Substring(String(t).replacing("<image>", with: "")) : t
        while let f = out.first, f.isWhitespace { out = out.dropFirst() }
        while let l = out.last, l.isWhitespace { out = out.dropLast() }
        return String(out)
    }

    /// Decodes `samples.conversations_json` (`[{"from": …, "value": …}]`).
    public static func decodeTurns(_ json: String) -> [Turn]? {
        // JSONSerialization: several times faster than JSONDecoder on Linux for 158K rows.
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [Any] else { return nil }
        var turns: [Turn] = []
        turns.reserveCapacity(array.count)
        for item in array {
            guard let o = item as? [String: Any], let from = o["from"] as? String, let value = o["value"] as? String else { return nil }
            turns.append(Turn(from: from, value: value))
        }
        return turns
    }
}
