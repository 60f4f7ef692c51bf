import ForgeCore
import Foundation
import GRDB
import LLMClient
import Prompts
import Store

/// OpenAI Batch API files, journalled in the same store as live runs.
///
/// Export: the type's planned, unanswered requests become lines
/// `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": <exact body>}`,
/// split at `maxLines` (50,000) lines or `maxBytes` (200 MB) per file. Rows are marked
/// `exported` (with their file and `custom_id`) in the same transaction that records the file,
/// then the file is written; a file recorded but missing (a crash in between) is written again
/// on the next export. So nothing is exported twice, and live runs skip exported rows.
///
/// Import: output lines `{"custom_id", "response": {"status_code", "request_id", "body"},
/// "error"}` in any order, matched on `custom_id`, parsed exactly like live answers (samples,
/// truncation, parse failures); error lines and non-200 answers mark the request `failed` with
/// the reason (a later export or live run sends it again).
public struct BatchExportSummary: Sendable, Codable {
    public var files: [String] = []
    public var requests = 0
    /// Already-answered requests (nothing to export).
    public var alreadyAnswered = 0
    /// Requests already in an earlier file.
    public var alreadyExported = 0
    /// Earlier files that were recorded but missing, written again.
    public var rewritten = 0
}

public struct BatchImportSummary: Sendable, Codable {
    public var lines = 0
    public var samplesOK = 0
    public var parseFailed = 0
    public var truncated = 0
    public var failed = 0
    /// custom_ids no request of this database carries.
    public var unknown = 0
    /// Requests already answered (a file imported twice).
    public var alreadyDone = 0
    public var promptTokens = 0
    public var completionTokens = 0
    public var errorsByClass: [String: Int] = [:]
    public var firstErrors: [String] = []
}

public final class BatchExporter {
    public static let maxLinesPerFile = 50_000
    public static let maxBytesPerFile = 200 * 1024 * 1024

    public let database: ForgeDatabase
    public let spec: SampleTypeSpec
    public let options: GenerateOptions
    public var maxLines = BatchExporter.maxLinesPerFile
    public var maxBytes = BatchExporter.maxBytesPerFile

    public init(database: ForgeDatabase, spec: SampleTypeSpec, options: GenerateOptions) {
        self.database = database
        self.spec = spec
        self.options = options
    }

    /// Plans `options.limit` requests of the type and writes the unanswered, unexported ones
    /// into new files under `outDir`.
    public func export(outDir: String) throws -> BatchExportSummary {
        guard maxLines >= 1, maxBytes >= 1024 else { throw ForgeError(.usage, "batch files need ≥ 1 line and ≥ 1 KB") }
        let lock = try RunLock(databasePath: database.path)
        defer { lock.release() }
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var summary = BatchExportSummary()
        summary.rewritten = try rewriteMissingFiles()
        let runID = try database.write { db -> Int64 in
            try db.execute(sql: "INSERT INTO runs(type, base_url, model, params_json, requested, status) VALUES (?, 'batch-export', ?, '{}', ?, 'batch_export')",
                           arguments: [spec.name, options.model, options.limit])
            return db.lastInsertedRowID
        }
        var planOptions = options
        planOptions.includeExported = false
        let plan = try RequestPlanner(database: database, spec: spec, options: planOptions).plan(runID: runID)
        summary.alreadyExported = plan.exported
        summary.alreadyAnswered = plan.total - plan.exported - plan.toSend.count

        // Cut into files by line count and size.
        var groups: [[(Generator.Job, Data, String)]] = []
        var current: [(Generator.Job, Data, String)] = []
        var currentBytes = 0
        let planner = try RequestPlanner(database: database, spec: spec, options: planOptions)
        for job in plan.toSend {
            let body = planner.chatRequest(context: job.context).bodyJSON()
            let line = Self.line(customID: Self.customID(job, body: body), body: body)
            guard line.count + 1 <= maxBytes else {
                throw ForgeError(.badInput, "request \(job.requestID) alone is \(line.count) bytes, over the batch file limit of \(maxBytes)")
            }
            if !current.isEmpty && (current.count >= maxLines || currentBytes + line.count + 1 > maxBytes) {
                groups.append(current)
                current = []
                currentBytes = 0
            }
            current.append((job, line, Self.customID(job, body: body)))
            currentBytes += line.count + 1
        }
        if !current.isEmpty { groups.append(current) }

        for group in groups {
            let bytes = group.reduce(0) { $0 + $1.1.count + 1 }
            let (fileID, path) = try database.write { db -> (Int64, String) in
                try db.execute(sql: "INSERT INTO batch_files(path, type, model, seed, lines, bytes) VALUES ('', ?, ?, ?, ?, ?)",
                               arguments: [spec.name, options.model, Int64(bitPattern: options.seed), group.count, bytes])
                let id = db.lastInsertedRowID
                let path = (outDir as NSString).appendingPathComponent("\(spec.name)-batch-\(id).jsonl")
                try db.execute(sql: "UPDATE batch_files SET path = ? WHERE id = ?", arguments: [path, id])
                for (job, _, customID) in group {
                    try db.cachedStatement(sql: "UPDATE requests SET status = 'exported', custom_id = ?, batch_file_id = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?")
                        .execute(arguments: [customID, id, job.requestID])
                }
                return (id, path)
            }
            _ = fileID
            try Self.write(lines: group.map { $0.1 }, to: path)
            summary.files.append(path)
            summary.requests += group.count
        }
        try database.write { db in
            try db.execute(sql: "UPDATE runs SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now'), status = 'finished', sent = ? WHERE id = ?",
                           arguments: [summary.requests, runID])
        }
        return summary
    }

    /// Files recorded in the journal whose bytes never reached the disk: written again from
    /// the rows still marked as theirs.
    private func rewriteMissingFiles() throws -> Int {
        let files = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, path FROM batch_files WHERE type = ?", arguments: [spec.name])
        }
        var rewritten = 0
        for f in files {
            let path: String = f[1]
            guard !FileManager.default.fileExists(atPath: path) else { continue }
            let rows = try database.read { db in
                try Row.fetchAll(db, sql: "SELECT r.custom_id, \(StoredRequestBody.columns) FROM requests r \(StoredRequestBody.join) WHERE r.batch_file_id = ? AND r.status = 'exported' ORDER BY r.id",
                                 arguments: [f[0] as Int64])
            }
            guard !rows.isEmpty else { continue }
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Self.write(lines: rows.map { Self.line(customID: $0[0], body: Data(StoredRequestBody.bytes(row: $0, at: 1))) }, to: path)
            rewritten += 1
        }
        return rewritten
    }

    /// `lf-<request id>-<first 16 hex of the cache key>`: unique in the database, ≤ 64 characters.
    static func customID(_ job: Generator.Job, body: Data) -> String {
        "lf-\(job.requestID)-" + String(SHA256.hex(Array(body)).prefix(16))
    }

    static func line(customID: String, body: Data) -> Data {
        var out = Data("{\"custom_id\":\"".utf8)
        out.append(Data(customID.utf8))
        out.append(Data("\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":".utf8))
        out.append(body)  // already canonical JSON, exactly what a live call sends
        out.append(Data("}".utf8))
        return out
    }

    /// Writes a temporary file and renames it into place (never a half file under the name).
    static func write(lines: [Data], to path: String) throws {
        var data = Data()
        data.reserveCapacity(lines.reduce(0) { $0 + $1.count + 1 })
        for l in lines {
            data.append(l)
            data.append(0x0A)
        }
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw ForgeError(.io, "cannot write the batch file", file: tmp)
        }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: tmp, toPath: path)
    }
}

public final class BatchImporter {
    public let database: ForgeDatabase
    public let library: PromptLibrary
    private var specs: [String: SampleTypeSpec] = [:]

    public init(database: ForgeDatabase, library: PromptLibrary) {
        self.database = database
        self.library = library
    }

    /// Imports each output file in one transaction (a bad line rolls that file back and names it).
    public func importFiles(_ paths: [String]) throws -> BatchImportSummary {
        let lock = try RunLock(databasePath: database.path)
        defer { lock.release() }
        var summary = BatchImportSummary()
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ForgeError(.io, "cannot read the batch output file", file: path)
            }
            var fileSummary = summary
            try database.write { db in
                var lineNumber = 0
                for raw in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                    lineNumber += 1
                    let line = raw.last == 0x0D ? raw.dropLast() : raw
                    if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
                    try importLine(Data(line), file: path, lineNumber: lineNumber, summary: &fileSummary, db: db)
                }
            }
            summary = fileSummary
        }
        return summary
    }

    private func spec(_ type: String, file: String) throws -> SampleTypeSpec {
        if let s = specs[type] { return s }
        let s = try library.load(type: type)
        specs[type] = s
        return s
    }

    private func importLine(_ line: Data, file: String, lineNumber: Int, summary: inout BatchImportSummary, db: Database) throws {
        let location = "line \(lineNumber)"
        guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else {
            throw ForgeError(.badInput, "not a JSON object", file: file, location: location)
        }
        guard let customID = object["custom_id"] as? String else {
            throw ForgeError(.badInput, "no custom_id", file: file, location: location)
        }
        summary.lines += 1
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT r.id, r.image_id, r.type, r.status, COALESCE(b.seed, 0),
                   instr(CASE WHEN t.id IS NULL THEN r.body_json ELSE CAST(t.prefix AS TEXT) || CAST(t.suffix AS TEXT) END, ',"response_format":{') > 0
            FROM requests r LEFT JOIN batch_files b ON b.id = r.batch_file_id \(StoredRequestBody.join)
            WHERE r.custom_id = ?
            """), arguments: [customID]) else {
            summary.unknown += 1
            if summary.firstErrors.count < 5 { summary.firstErrors.append("\(file) \(location): unknown custom_id \(customID)") }
            return
        }
        let requestID: Int64 = row[0], imageID: Int64 = row[1], type: String = row[2], status: String = row[3]
        let seed = UInt64(bitPattern: row[4] as Int64)
        let structured: Bool = row[5]  // the body asked for JSON (a top-level key: contents escape their quotes)
        if status == "done" {
            summary.alreadyDone += 1
            return
        }
        let response = object["response"] as? [String: Any]
        let statusCode = (response?["status_code"] as? NSNumber)?.intValue ?? 0
        let serverRequestID = response?["request_id"] as? String
        var result: Result<ChatResult, LLMError>
        if let err = object["error"] as? [String: Any] {
            let code = (err["code"] as? String) ?? "error"
            result = .failure(.http(status: statusCode == 0 ? 500 : statusCode, message: "batch error \(code): \((err["message"] as? String) ?? "")"))
        } else if let body = response?["body"], JSONSerialization.isValidJSONObject(body),
                  let bodyData = try? JSONSerialization.data(withJSONObject: body) {
            result = ChatResponseDecoder.decode(status: statusCode, body: bodyData)
        } else {
            result = .failure(.malformedResponse(message: "batch line has neither response.body nor error"))
        }
        switch result {
        case .success(let chat):
            try db.cachedStatement(sql: """
                UPDATE requests SET status = 'done', http_status = ?, error = NULL, error_class = NULL, response_text = ?, finish_reason = ?,
                  prompt_tokens = ?, completion_tokens = ?, server_request_id = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                WHERE id = ?
                """).execute(arguments: [chat.httpStatus, chat.content, chat.finishReason, chat.promptTokens, chat.completionTokens, serverRequestID, requestID])
            let outcome = try SampleWriter(spec: spec(type, file: file), seed: seed, structured: structured)
                .store(requestID: requestID, imageID: imageID, response: chat.content, finishReason: chat.finishReason, db: db)
            switch outcome {
            case .ok: summary.samplesOK += 1
            case .parseFailed: summary.parseFailed += 1
            case .truncated: summary.truncated += 1
            }
            summary.promptTokens += chat.promptTokens ?? 0
            summary.completionTokens += chat.completionTokens ?? 0
        case .failure(let error):
            let cls = FailureClass.of(error).rawValue
            try db.cachedStatement(sql: """
                UPDATE requests SET status = 'failed', http_status = ?, error = ?, error_class = ?, server_request_id = ?,
                  updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?
                """).execute(arguments: [statusCode == 0 ? nil : statusCode, "\(error)", cls, serverRequestID, requestID])
            summary.failed += 1
            summary.errorsByClass[cls, default: 0] += 1
            if summary.firstErrors.count < 5 { summary.firstErrors.append("request \(requestID) (\(customID)): \(error)") }
        }
    }
}
