import ForgeCore
import Foundation
import GRDB
import Store

/// What a database holds: ingested annotations, requests, and per sample type the outcome
/// (counts by status, failures by reason), the shape of the ok samples (turns, answer and question
/// lengths) and the tokens spent.
///
/// Conventions: turn and length distributions are over **ok** samples only (what `export`
/// writes). Words are runs of non-whitespace (Python's `str.split()`); `<image>` is not counted as
/// a word of a question. `median` is the middle value (mean of the two middle values for an even
/// count); `p50` / `p90` are nearest-rank percentiles (always an observed value). Failure reasons are
/// grouped by their stable code: the text before the first ": " or " (" when that is a single word
/// such as `no_question` or `finish_reason=length`, otherwise the whole reason.
public struct DatasetStats: Codable, Sendable, Equatable {
    /// Distribution of an integer quantity with exact median and mean.
    public struct Summary: Codable, Sendable, Equatable {
        public var count: Int
        public var min: Int
        public var median: Double
        public var mean: Double
        public var max: Int
    }

    /// Distribution of an integer quantity by nearest-rank percentiles.
    public struct Percentiles: Codable, Sendable, Equatable {
        public var count: Int
        public var min: Int
        public var p50: Int
        public var p90: Int
        public var max: Int
    }

    public struct Tokens: Codable, Sendable, Equatable {
        public var prompt: Int
        public var completion: Int
        public var total: Int { prompt + completion }

        public init(prompt: Int = 0, completion: Int = 0) {
            self.prompt = prompt
            self.completion = completion
        }

        enum CodingKeys: String, CodingKey { case prompt, completion, total }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            prompt = try c.decode(Int.self, forKey: .prompt)
            completion = try c.decode(Int.self, forKey: .completion)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(prompt, forKey: .prompt)
            try c.encode(completion, forKey: .completion)
            try c.encode(total, forKey: .total)
        }
    }

    public struct TypeStats: Codable, Sendable, Equatable {
        public var type: String
        /// All samples of the type, whatever their status.
        public var samples: Int
        public var byStatus: [String: Int]
        /// Non-ok samples by reason code.
        public var failuresByReason: [String: Int]
        /// Q/A pairs per ok sample (nil when there are none).
        public var turns: Summary?
        /// Words per gpt turn of the ok samples.
        public var answerWords: Percentiles?
        /// Words per human turn of the ok samples, `<image>` not counted.
        public var questionWords: Percentiles?
        /// The type's requests by status (pending, in_flight, done, failed).
        public var requestsByStatus: [String: Int]
        /// Summed over the type's requests.
        public var tokens: Tokens

        enum CodingKeys: String, CodingKey {
            case type, samples, turns, tokens
            case byStatus = "by_status"
            case failuresByReason = "failures_by_reason"
            case answerWords = "answer_words"
            case questionWords = "question_words"
            case requestsByStatus = "requests_by_status"
        }
    }

    public var images: Int
    public var captions: Int
    public var boxes: Int
    public var categories: Int
    public var samples: Int
    public var samplesByStatus: [String: Int]
    public var requests: Int
    public var requestsByStatus: [String: Int]
    public var tokens: Tokens
    /// One entry per type that has samples or requests, ordered by type name.
    public var types: [TypeStats]

    enum CodingKeys: String, CodingKey {
        case images, captions, boxes, categories, samples, requests, tokens, types
        case samplesByStatus = "samples_by_status"
        case requestsByStatus = "requests_by_status"
    }

    // MARK: computing

    public static func compute(database: ForgeDatabase) throws -> DatasetStats {
        try translatingDatabaseErrors(database) {
            try database.read { db in try compute(db: db, databasePath: database.path) }
        }
    }

    static func compute(db: Database, databasePath: String) throws -> DatasetStats {
        func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }

        final class Acc {
            var samples = 0
            var byStatus: [String: Int] = [:]
            var failures: [String: Int] = [:]
            var turns: [Int] = []
            var answerWords: [Int] = []
            var questionWords: [Int] = []
            var requestsByStatus: [String: Int] = [:]
            var tokens = Tokens()
        }
        var acc: [String: Acc] = [:]
        func of(_ type: String) -> Acc {
            if let a = acc[type] { return a }
            let a = Acc()
            acc[type] = a
            return a
        }

        var requestsByStatus: [String: Int] = [:]
        var tokens = Tokens()
        var requests = 0
        for row in try Row.fetchAll(db, sql: """
            SELECT type, status, count(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0)
            FROM requests GROUP BY type, status
            """) {
            let type: String = row[0], status: String = row[1], n: Int = row[2], p: Int = row[3], c: Int = row[4]
            let a = of(type)
            a.requestsByStatus[status, default: 0] += n
            a.tokens.prompt += p
            a.tokens.completion += c
            requestsByStatus[status, default: 0] += n
            tokens.prompt += p
            tokens.completion += c
            requests += n
        }

        var samplesByStatus: [String: Int] = [:]
        var samples = 0
        for row in try Row.fetchAll(db, sql: "SELECT type, status, count(*) FROM samples GROUP BY type, status") {
            let type: String = row[0], status: String = row[1], n: Int = row[2]
            let a = of(type)
            a.byStatus[status, default: 0] += n
            a.samples += n
            samplesByStatus[status, default: 0] += n
            samples += n
        }

        for row in try Row.fetchAll(db, sql: "SELECT type, reason, count(*) FROM samples WHERE status <> 'ok' GROUP BY type, reason") {
            let type: String = row[0], reason: String? = row[1], n: Int = row[2]
            of(type).failures[reasonCode(reason), default: 0] += n
        }

        let rows = try Row.fetchCursor(db, sql: "SELECT id, type, turns, conversations_json FROM samples WHERE status = 'ok'")
        while let row = try rows.next() {
            let id: Int64 = row[0], type: String = row[1], turns: Int = row[2], text: String? = row[3]
            let a = of(type)
            a.turns.append(turns)
            guard let text else { continue }
            let conversation: JSONValue
            do {
                conversation = try JSONParser.parse(text, options: .export)
            } catch {
                throw ForgeError(.badInput, "conversations_json of sample \(id) is not valid JSON (\(error))", file: databasePath, location: "samples.id = \(id)")
            }
            for t in conversation.turns {
                switch t.from {
                case "gpt": a.answerWords.append(wordCount(t.value))
                case "human": a.questionWords.append(wordCount(t.value, ignoring: "<image>"))
                default: break
                }
            }
        }

        let types = acc.keys.sorted().map { type -> TypeStats in
            let a = acc[type]!
            return TypeStats(type: type, samples: a.samples, byStatus: a.byStatus, failuresByReason: a.failures,
                             turns: summary(a.turns), answerWords: percentiles(a.answerWords),
                             questionWords: percentiles(a.questionWords), requestsByStatus: a.requestsByStatus, tokens: a.tokens)
        }
        let annotations = try AnnotationStore.counts(db)
        return DatasetStats(images: try count("images"), captions: annotations.captions, boxes: annotations.boxes,
                            categories: try count("categories"), samples: samples, samplesByStatus: samplesByStatus,
                            requests: requests, requestsByStatus: requestsByStatus, tokens: tokens, types: types)
    }

    /// The stable part of a failure reason (see the type's documentation).
    public static func reasonCode(_ reason: String?) -> String {
        guard let reason = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else { return "(no reason)" }
        var end = reason.startIndex
        while end < reason.endIndex, !reason[end].isWhitespace, reason[end] != ":", reason[end] != "(", reason[end] != ";" {
            end = reason.index(after: end)
        }
        let head = reason[..<end]
        let rest = reason[end...]
        if !head.isEmpty, rest.isEmpty || rest.hasPrefix(":") || rest.hasPrefix(" (") || rest.hasPrefix(";") {
            return String(head)
        }
        return reason
    }

    /// Runs of non-whitespace, like Python's `len(s.split())`; occurrences of `ignoring` are not words.
    static func wordCount(_ s: String, ignoring token: String? = nil) -> Int {
        var text = s
        if let token, text.contains(token) { text = text.replacingOccurrences(of: token, with: " ") }
        var n = 0
        var inWord = false
        for u in text.unicodeScalars {
            let space: Bool
            switch u.value {
            case 0x20, 0x09...0x0D, 0x1C...0x1F: space = true
            case 0..<0x80: space = false
            default: space = u.properties.isWhitespace
            }
            if space { inWord = false } else if !inWord { inWord = true; n += 1 }
        }
        return n
    }

    static func summary(_ values: [Int]) -> Summary? {
        guard !values.isEmpty else { return nil }
        let a = values.sorted()
        let n = a.count
        let median = n % 2 == 1 ? Double(a[n / 2]) : Double(a[n / 2 - 1] + a[n / 2]) / 2
        return Summary(count: n, min: a[0], median: median, mean: Double(a.reduce(0, +)) / Double(n), max: a[n - 1])
    }

    /// Nearest-rank percentile: the smallest value with at least `percent`% of the values ≤ it.
    static func percentile(_ sorted: [Int], _ percent: Int) -> Int {
        let rank = (percent * sorted.count + 99) / 100
        return sorted[Swift.max(0, Swift.min(sorted.count - 1, rank - 1))]
    }

    static func percentiles(_ values: [Int]) -> Percentiles? {
        guard !values.isEmpty else { return nil }
        let a = values.sorted()
        return Percentiles(count: a.count, min: a[0], p50: percentile(a, 50), p90: percentile(a, 90), max: a[a.count - 1])
    }

    // MARK: text

    /// Statuses in a stable order: the known ones first, then any others alphabetically.
    static func ordered(_ statuses: some Sequence<String>, known: [String]) -> [String] {
        let set = Set(statuses)
        return known.filter(set.contains) + set.subtracting(known).sorted()
    }

    public func renderText() -> String {
        var out = ""
        let g = DatasetStats.grouped

        out.append("Dataset\n")
        var overview = TextTable(header: nil)
        overview.add(["images", g(images)])
        overview.add(["captions", g(captions)])
        overview.add(["boxes", g(boxes)])
        overview.add(["categories", g(categories)])
        let reqStatuses = DatasetStats.ordered(requestsByStatus.keys, known: ["done", "failed", "in_flight", "pending"])
        overview.add(["requests", g(requests), reqStatuses.map { "\($0) \(g(requestsByStatus[$0]!))" }.joined(separator: " · ")])
        let sampleStatuses = DatasetStats.ordered(samplesByStatus.keys, known: ["ok", "parse_failed", "truncated"])
        overview.add(["samples", g(samples), sampleStatuses.map { "\($0) \(g(samplesByStatus[$0]!))" }.joined(separator: " · ")])
        overview.add(["tokens", g(tokens.total), "prompt \(g(tokens.prompt)) · completion \(g(tokens.completion))"])
        out.append(overview.render(leftAligned: [0, 2]))

        guard !types.isEmpty else {
            out.append("\nno requests or samples yet\n")
            return out
        }

        let statuses = DatasetStats.ordered(types.flatMap { $0.byStatus.keys }, known: ["ok", "parse_failed", "truncated"])
        out.append("\nSamples by type and status\n")
        var byType = TextTable(header: ["type", "samples"] + statuses)
        for t in types {
            byType.add([t.type, g(t.samples)] + statuses.map { g(t.byStatus[$0] ?? 0) })
        }
        if types.count > 1 {
            byType.add(["all", g(samples)] + statuses.map { g(samplesByStatus[$0] ?? 0) })
        }
        out.append(byType.render())

        out.append("\nTurns (Q/A pairs) per ok sample\n")
        var turns = TextTable(header: ["type", "samples", "min", "median", "mean", "max"])
        for t in types {
            if let s = t.turns {
                turns.add([t.type, g(s.count), g(s.min), DatasetStats.decimal(s.median, places: 1), DatasetStats.decimal(s.mean, places: 2), g(s.max)])
            } else {
                turns.add([t.type, "0", "-", "-", "-", "-"])
            }
        }
        out.append(turns.render())

        for (title, key) in [("Answer length (words per gpt turn, ok samples)", \TypeStats.answerWords),
                             ("Question length (words per human turn, ok samples, <image> not counted)", \TypeStats.questionWords)] {
            out.append("\n\(title)\n")
            var table = TextTable(header: ["type", "turns", "min", "p50", "p90", "max"])
            for t in types {
                if let p = t[keyPath: key] {
                    table.add([t.type, g(p.count), g(p.min), g(p.p50), g(p.p90), g(p.max)])
                } else {
                    table.add([t.type, "0", "-", "-", "-", "-"])
                }
            }
            out.append(table.render())
        }

        out.append("\nRequests and tokens by type\n")
        let reqCols = DatasetStats.ordered(types.flatMap { $0.requestsByStatus.keys }, known: ["done", "failed", "in_flight", "pending"])
        var tok = TextTable(header: ["type"] + reqCols + ["prompt tokens", "completion tokens", "total tokens"])
        for t in types {
            tok.add([t.type] + reqCols.map { g(t.requestsByStatus[$0] ?? 0) } + [g(t.tokens.prompt), g(t.tokens.completion), g(t.tokens.total)])
        }
        if types.count > 1 {
            tok.add(["all"] + reqCols.map { g(requestsByStatus[$0] ?? 0) } + [g(tokens.prompt), g(tokens.completion), g(tokens.total)])
        }
        out.append(tok.render())

        out.append("\nFailures (non-ok samples) by reason\n")
        var failures = TextTable(header: ["type", "reason", "samples"])
        for t in types {
            for (reason, n) in t.failuresByReason.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) {
                failures.add([t.type, reason, g(n)])
            }
        }
        out.append(failures.rows.isEmpty ? "  none\n" : failures.render(leftAligned: [0, 1]))
        return out
    }

    /// 1234567 → "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (k, c) in digits.enumerated() {
            if k > 0, (digits.count - k) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }

    static func decimal(_ v: Double, places: Int) -> String {
        String(format: "%.\(places)f", v)
    }
}

/// Columns padded to their widest cell, two spaces apart, indented by two.
struct TextTable {
    var header: [String]?
    var rows: [[String]] = []

    init(header: [String]?) { self.header = header }

    mutating func add(_ row: [String]) { rows.append(row) }

    /// Columns in `leftAligned` are padded on the right; the others (numbers) on the left.
    func render(leftAligned: Set<Int> = [0]) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all {
            for (k, cell) in row.enumerated() { widths[k] = max(widths[k], cell.count) }
        }
        var out = ""
        for row in all {
            var line = " "
            for (k, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[k] - cell.count)
                line.append(" ")
                line.append(leftAligned.contains(k) ? cell + pad : pad + cell)
                if k + 1 < row.count { line.append(" ") }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out.append(line)
            out.append("\n")
        }
        return out
    }
}
