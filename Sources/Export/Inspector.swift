import ForgeCore
import Foundation
import GRDB
import Store

/// Human-readable (or JSON) views of stored samples: what the LLM saw, what it answered, how
/// that was parsed, and why a sample failed.
public enum Inspector {
    struct Item {
        var sampleID: Int64
        var type: String
        var imageID: Int64
        var fileName: String?
        var status: String
        var reason: String?
        var turns: Int
        var conversationsText: String?
        var requestID: Int64
        var model: String?
        var context: String?
        var response: String?
        var finishReason: String?
        var promptTokens: Int?
        var completionTokens: Int?
    }

    /// For each sample of `type` (only `status` when given), ordered by sample id, at most `limit`:
    /// a header (sample id, image id + file name, status/reason, model, tokens), the context the LLM
    /// saw, the conversation as "human: …" / "gpt: …" lines, and for non-ok samples the raw response.
    /// `json: true` gives a JSON array of objects with the same fields (and the raw response always).
    public static func render(database: ForgeDatabase, type: String, limit: Int = 5, status: String? = nil, json: Bool = false) throws -> String {
        guard limit >= 0 else { throw ForgeError(.usage, "--limit must be 0 or more (got \(limit))") }
        let (items, total, knownTypes) = try translatingDatabaseErrors(database) {
            try database.read { db -> ([Item], Int, [String]) in
                var filter = "s.type = ?"
                var arguments: StatementArguments = [type]
                if let status {
                    filter += " AND s.status = ?"
                    arguments += [status]
                }
                let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM samples s WHERE \(filter)", arguments: arguments) ?? 0
                let rows = try Row.fetchAll(db, sql: """
                    SELECT s.id, s.type, s.image_id, i.file_name, s.status, s.reason, s.turns, s.conversations_json,
                           s.request_id, r.model, r.context, r.response_text, r.finish_reason, r.prompt_tokens, r.completion_tokens
                    FROM samples s
                    LEFT JOIN images i ON i.id = s.image_id
                    LEFT JOIN requests r ON r.id = s.request_id
                    WHERE \(filter)
                    ORDER BY s.id
                    LIMIT ?
                    """, arguments: arguments + [limit])
                let items = rows.map { r in
                    Item(sampleID: r[0], type: r[1], imageID: r[2], fileName: r[3], status: r[4], reason: r[5], turns: r[6],
                         conversationsText: r[7], requestID: r[8], model: r[9], context: r[10], response: r[11],
                         finishReason: r[12], promptTokens: r[13], completionTokens: r[14])
                }
                let known = total == 0 ? try String.fetchAll(db, sql: "SELECT DISTINCT type FROM samples ORDER BY type") : []
                return (items, total, known)
            }
        }
        return json ? renderJSON(items) : renderText(items, type: type, status: status, total: total, knownTypes: knownTypes)
    }

    // MARK: text

    static func renderText(_ items: [Item], type: String, status: String?, total: Int, knownTypes: [String]) -> String {
        let what = status.map { "\(type) samples with status \($0)" } ?? "\(type) samples"
        if total == 0 {
            var s = "no \(what)"
            if !knownTypes.contains(type) {
                s += knownTypes.isEmpty ? " (the database has no samples yet)" : " (types with samples: \(knownTypes.joined(separator: ", ")))"
            }
            return s
        }
        var out = "\(total) \(what); showing \(items.count)\n"
        for item in items {
            out.append("\n")
            out.append(block(item))
        }
        return out
    }

    static func block(_ item: Item) -> String {
        var out = ""
        let image = item.fileName.map { "\(item.imageID) (\($0))" } ?? "\(item.imageID) (not in images)"
        out.append("=== sample \(item.sampleID) · \(item.type) · image \(image) ===\n")
        out.append("status:  \(item.status)\n")
        if let reason = item.reason { out.append("reason:  \(reason)\n") }
        out.append("model:   \(item.model ?? "?")  (request \(item.requestID))\n")
        var tokens = "prompt \(item.promptTokens.map(String.init) ?? "?") + completion \(item.completionTokens.map(String.init) ?? "?")"
        if let p = item.promptTokens, let c = item.completionTokens { tokens += " = \(p + c)" }
        if let f = item.finishReason { tokens += "  (finish_reason: \(f))" }
        out.append("tokens:  \(tokens)\n")
        out.append("--- context ---\n")
        out.append(terminated(item.context ?? "(no request row)"))
        if let text = item.conversationsText {
            out.append("--- conversation (\(item.turns) turn\(item.turns == 1 ? "" : "s")) ---\n")
            if let parsed = try? JSONParser.parse(text, options: .export), case .array = parsed {
                for t in parsed.turns {
                    out.append(labelled(t.from, t.value))
                }
            } else {
                out.append("(conversations_json is not a valid conversation)\n")
                out.append(terminated(text))
            }
        }
        if item.status != "ok" {
            out.append("--- raw response ---\n")
            out.append(terminated(item.response ?? "(none)"))
        }
        return out
    }

    /// "from: value", continuation lines indented to line up under the value.
    static func labelled(_ from: String, _ value: String) -> String {
        let prefix = "\(from): "
        let pad = String(repeating: " ", count: prefix.count)
        var out = ""
        for (k, line) in value.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            out.append(k == 0 ? prefix : (line.isEmpty ? "" : pad))
            out.append(contentsOf: line)
            out.append("\n")
        }
        return out
    }

    static func terminated(_ s: String) -> String { s.hasSuffix("\n") ? s : s + "\n" }

    // MARK: JSON

    static func renderJSON(_ items: [Item]) -> String {
        func str(_ s: String?) -> JSONValue { s.map { .string($0) } ?? .null }
        func int(_ n: Int?) -> JSONValue { n.map { .integer($0) } ?? .null }
        let array: [JSONValue] = items.map { item in
            var conversations: JSONValue = .null
            if let text = item.conversationsText {
                conversations = (try? JSONParser.parse(text, options: .export)) ?? .string(text)
            }
            return .object([
                "sample_id": .integer(Int(item.sampleID)),
                "type": .string(item.type),
                "image_id": .integer(Int(item.imageID)),
                "file_name": str(item.fileName),
                "status": .string(item.status),
                "reason": str(item.reason),
                "request_id": .integer(Int(item.requestID)),
                "model": str(item.model),
                "prompt_tokens": int(item.promptTokens),
                "completion_tokens": int(item.completionTokens),
                "finish_reason": str(item.finishReason),
                "turns": .integer(Int(item.turns)),
                "context": str(item.context),
                "conversations": conversations,
                "response": str(item.response),
            ])
        }
        return JSONValue.array(array).prettyText()
    }
}
