import ForgeCore
import Foundation
import GRDB
import LLMClient

/// The exact bytes a stored request POSTs: its `body_json`, or — for templated rows — its
/// template's prefix, the JSON-escaped context and the suffix (see `v_request_templates`).
enum StoredRequestBody {
    /// Columns to select (with `LEFT JOIN request_templates t ON t.id = r.template_id`) for `bytes(row:at:)`.
    static let columns = "r.body_json, r.context, t.prefix, t.suffix"
    static let join = "LEFT JOIN request_templates t ON t.id = r.template_id"

    /// The body from the four `columns` starting at `index`.
    static func bytes(row: Row, at index: Int) -> [UInt8] {
        guard let prefix = row[index + 2] as Data?, let suffix = row[index + 3] as Data? else {
            return Array((row[index] as String).utf8)
        }
        var out = [UInt8](prefix)
        CanonicalJSON.appendEscaped(row[index + 1] as String, to: &out)
        out.append(contentsOf: suffix)
        return out
    }

    /// The id of the template with these parts, inserted when new.
    static func templateID(prefix: [UInt8], suffix: [UInt8], db: Database) throws -> Int64 {
        let digest = SHA256.hex(prefix + [0] + suffix)
        try db.execute(sql: "INSERT INTO request_templates(digest, prefix, suffix) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING",
                       arguments: [digest, Data(prefix), Data(suffix)])
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM request_templates WHERE digest = ?", arguments: [digest]) else {
            throw ForgeError(.io, "request template \(digest.prefix(12)) vanished after insert")
        }
        return id
    }
}
