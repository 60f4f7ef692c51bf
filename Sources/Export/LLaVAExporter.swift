import ForgeCore
import Foundation
import GRDB
import Store

public enum ExportFormat: String, CaseIterable, Sendable {
    /// One JSON array, pretty-printed with 2-space indentation like LLaVA's released files.
    case llava
    /// One compact JSON object per line, with an extra "type" key.
    case jsonl
}

/// Writes `ok` samples in LLaVA's instruction-data format:
/// `{"id": "<image file name without extension>", "image": "<file name>", "conversations": [...]}`.
///
/// Rows are streamed from one read transaction (a consistent snapshot, even while `generate` is
/// writing) into a temporary file next to the destination, which is renamed over it only once
/// complete.
public enum LLaVAExporter {
    /// Writes the ok samples (optionally of one type) to `path`. Order: by type, then sample id.
    /// Returns the number of samples written.
    public static func export(database: ForgeDatabase, to path: String, type: String?, format: ExportFormat) throws -> Int {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        return try translatingDatabaseErrors(database) {
            try database.read { db in
                let file = try AtomicFile(directory: dir, baseName: base, reportPath: path)
                let n = try writeSamples(db: db, databasePath: database.path, type: type, format: format, into: file)
                try file.commit(to: path)
                return n
            }
        }
    }

    /// LLaVA's release layout in `directory`: `llava_instruct_<N>.json` (all types) and one file
    /// per type — `conversation_<N>.json`, `detail_<N>.json`, `complex_reasoning_<N>.json` for type
    /// "reasoning", `<type>_<N>.json` otherwise — where `<N>` is `countLabel(count)`.
    /// Returns ("all" or the type, path, count) for each file, "all" first, then types in order.
    public static func exportRelease(database: ForgeDatabase, to directory: String) throws -> [(name: String, path: String, count: Int)] {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ForgeError(.io, "not a directory", file: directory) }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw ForgeError(.io, "cannot create the output folder: \(error.localizedDescription)", file: directory)
            }
        }
        return try translatingDatabaseErrors(database) {
            try database.read { db in
                let types = try String.fetchAll(db, sql: "SELECT DISTINCT type FROM samples WHERE status = 'ok' ORDER BY type")
                var stems: [String: String] = ["llava_instruct": "(all types)"]
                for t in types {
                    let stem = releaseStem(forType: t)
                    if let other = stems[stem] {
                        throw ForgeError(.usage, "types \"\(other)\" and \"\(t)\" would both be written as \(stem)_<N>.json; rename one of them", file: directory)
                    }
                    stems[stem] = t
                }
                var written: [(name: String, path: String, count: Int)] = []
                for (name, stem, filter) in [("all", "llava_instruct", String?.none)] + types.map({ ($0, releaseStem(forType: $0), Optional($0)) }) {
                    // The count is only known once written, so the final name is chosen at rename time.
                    let file = try AtomicFile(directory: directory, baseName: stem, reportPath: (directory as NSString).appendingPathComponent("\(stem)_<N>.json"))
                    let n = try writeSamples(db: db, databasePath: database.path, type: filter, format: .llava, into: file)
                    let path = (directory as NSString).appendingPathComponent("\(stem)_\(countLabel(n)).json")
                    try file.commit(to: path)
                    written.append((name, path, n))
                }
                return written
            }
        }
    }

    /// LLaVA's file-name stem for a sample type: "reasoning" → "complex_reasoning"; anything else
    /// is used as is, with characters outside `[A-Za-z0-9._-]` replaced by "_".
    public static func releaseStem(forType type: String) -> String {
        if type == "reasoning" { return "complex_reasoning" }
        let safe = String(type.unicodeScalars.map { u -> Character in
            switch u {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return Character(u)
            default: return "_"
            }
        })
        return safe.isEmpty ? "_" : safe
    }

    /// "58k"-style count for release file names: `n / 1000` rounded down + "k" when n ≥ 1000,
    /// else the plain number (158000 → "158k", 1500 → "1k", 999 → "999").
    public static func countLabel(_ n: Int) -> String {
        n >= 1000 ? "\(n / 1000)k" : "\(n)"
    }

    /// LLaVA's id for an image: its file name without directories or extension.
    static func sampleID(fileName: String) -> String {
        let base = (fileName as NSString).lastPathComponent
        return (base as NSString).deletingPathExtension
    }

    // MARK: streaming

    static func writeSamples(db: Database, databasePath: String, type: String?, format: ExportFormat, into file: AtomicFile) throws -> Int {
        var sql = """
            SELECT s.id, s.type, s.image_id, i.file_name, s.conversations_json
            FROM samples s LEFT JOIN images i ON i.id = s.image_id
            WHERE s.status = 'ok'
            """
        var arguments: StatementArguments = []
        if let type {
            sql += " AND s.type = ?"
            arguments = [type]
        }
        sql += " ORDER BY s.type, s.id"
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        var count = 0
        var record = ""
        record.reserveCapacity(8192)
        if format == .llava { try file.append("[") }
        while let row = try rows.next() {
            let sampleID: Int64 = row[0]
            let sampleType: String = row[1]
            let imageID: Int64 = row[2]
            let fileName: String? = row[3]
            let conversationsText: String? = row[4]
            guard let fileName else {
                throw ForgeError(.badInput, "sample \(sampleID) refers to image \(imageID), which is not in the images table", file: databasePath, location: "samples.id = \(sampleID)")
            }
            guard let conversationsText else {
                throw ForgeError(.badInput, "ok sample \(sampleID) has no conversations", file: databasePath, location: "samples.id = \(sampleID)")
            }
            let conversations: JSONValue
            do {
                conversations = try JSONParser.parse(conversationsText, options: .export)
            } catch {
                throw ForgeError(.badInput, "conversations_json of sample \(sampleID) is not valid JSON (\(error))", file: databasePath, location: "samples.id = \(sampleID)")
            }
            record.removeAll(keepingCapacity: true)
            switch format {
            case .llava:
                record.append(count == 0 ? "\n  {\n    \"id\": " : ",\n  {\n    \"id\": ")
                JSONText.appendString(Self.sampleID(fileName: fileName), to: &record)
                record.append(",\n    \"image\": ")
                JSONText.appendString(fileName, to: &record)
                record.append(",\n    \"conversations\": ")
                conversations.appendPretty(to: &record, level: 4)
                record.append("\n  }")
            case .jsonl:
                record.append("{\"id\":")
                JSONText.appendString(Self.sampleID(fileName: fileName), to: &record)
                record.append(",\"image\":")
                JSONText.appendString(fileName, to: &record)
                record.append(",\"conversations\":")
                conversations.appendCompact(to: &record)
                record.append(",\"type\":")
                JSONText.appendString(sampleType, to: &record)
                record.append("}\n")
            }
            try file.append(record)
            count += 1
        }
        if format == .llava { try file.append(count == 0 ? "]\n" : "\n]\n") }
        return count
    }
}

/// Runs `body`, turning GRDB errors into `ForgeError(.database)` naming the database file.
func translatingDatabaseErrors<T>(_ database: ForgeDatabase, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as DatabaseError {
        throw ForgeError(.database, e.message ?? "\(e)", file: database.path)
    }
}
