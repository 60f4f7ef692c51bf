import ForgeCore
import Foundation
import GRDB
import Store

/// What one ingested file contributed, and what was skipped and why.
public struct IngestFileReport: Sendable, Codable {
    public var path: String
    public var kind: String
    public var sizeBytes: Int
    public var images = 0
    public var captions = 0
    public var boxes = 0
    public var categories = 0
    /// reason → count; a real COCO user expects some of these to be skipped, not fatal.
    public var skipped: [String: Int] = [:]
    /// reason → count of records kept but worth knowing about (e.g. boxes leaving the image).
    public var notices: [String: Int] = [:]
    /// The first few skipped records per reason, for the message.
    public var examples: [String: [String]] = [:]
    public var seconds = 0.0

    mutating func skip(_ reason: String, _ example: String) {
        skipped[reason, default: 0] += 1
        if examples[reason, default: []].count < 3 { examples[reason, default: []].append(example) }
    }
}

public struct IngestOptions: Sendable {
    public var captionsPath: String?
    public var instancesPath: String?
    public var imagesDir: String?
    /// Turn counted skips (unknown image ids, unknown categories) into fatal errors.
    public var strict = false

    public init(captionsPath: String? = nil, instancesPath: String? = nil, imagesDir: String? = nil, strict: Bool = false) {
        self.captionsPath = captionsPath
        self.instancesPath = instancesPath
        self.imagesDir = imagesDir
        self.strict = strict
    }
}

/// COCO JSON → Store. Everything happens in one transaction: a bad file leaves the database as
/// it was. Rows are upserted by their COCO ids, so re-ingesting the same files is idempotent.
public struct COCOIngestor {
    public let database: ForgeDatabase

    public init(database: ForgeDatabase) { self.database = database }

    public func ingest(_ options: IngestOptions) throws -> [IngestFileReport] {
        var files: [(String, COCOFileKind)] = []
        if let p = options.captionsPath { files.append((p, .captions)) }
        if let p = options.instancesPath { files.append((p, .instances)) }
        guard !files.isEmpty else { throw ForgeError(.usage, "give --captions and/or --instances") }
        // Map before opening the transaction so a missing file fails fast.
        let mapped = try files.map { (try MappedFile(path: $0.0), $0.1) }
        return try database.pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA cache_size = -262144")  // 256 MB page cache while bulk loading
            var reports: [IngestFileReport] = []
            try db.inTransaction {
                // Secondary indexes are dropped and rebuilt around the load: rows arrive in file
                // order (random image ids), so maintaining (image_id, seq) per row costs a random
                // B-tree descent each, while CREATE INDEX sorts once. Same transaction: a failure
                // rolls the drop back too.
                for index in ForgeSchema.imageLookupIndexes { try db.execute(sql: "DROP INDEX IF EXISTS \(index.name)") }
                for (file, kind) in mapped {
                    reports.append(try ingestFile(file, kind: kind, db: db, strict: options.strict))
                }
                for index in ForgeSchema.imageLookupIndexes { try db.execute(sql: index.create) }
                if let dir = options.imagesDir {
                    try checkImages(dir: dir, db: db, reports: &reports)
                }
                return .commit
            }
            try db.execute(sql: "PRAGMA cache_size = -65536")  // ForgeDatabase's default
            return reports
        }
    }

    private func ingestFile(_ file: MappedFile, kind: COCOFileKind, db: Database, strict: Bool) throws -> IngestFileReport {
        let started = Date()
        guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection") }
        var sink = try StoreSink(handle: handle, path: file.path, kind: kind, size: file.count)
        try COCOReader(kind: kind).read(file, into: &sink)
        try sink.finish(db: db, strict: strict)
        var report = sink.report
        report.seconds = Date().timeIntervalSince(started)
        let skippedJSON = String(decoding: try JSONEncoder().encode(report.skipped.merging(report.notices.mapKeys { "notice:" + $0 }) { a, _ in a }), as: UTF8.self)
        try db.execute(
            sql: """
            INSERT INTO ingests(path, kind, size_bytes, images, captions, boxes, categories, skipped_json, seconds)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            arguments: [file.path, kind.rawValue, file.count, report.images, report.captions, report.boxes, report.categories, skippedJSON, report.seconds])
        return report
    }

    private func checkImages(dir: String, db: Database, reports: inout [IngestFileReport]) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ForgeError(.io, "images directory does not exist", file: dir)
        }
        let root = (dir as NSString).standardizingPath
        try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('image_root', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [root])
        let names = try String.fetchAll(db, sql: "SELECT file_name FROM images")
        var missing = 0
        var examples: [String] = []
        for name in names where !FileManager.default.fileExists(atPath: root + "/" + name) {
            missing += 1
            if examples.count < 3 { examples.append(name) }
        }
        if missing > 0, !reports.isEmpty {
            reports[reports.count - 1].notices["image_file_missing", default: 0] += missing
            reports[reports.count - 1].examples["image_file_missing"] = examples
        }
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ f: (Key) -> K) -> [K: Value] {
        var out: [K: Value] = [:]
        for (k, v) in self { out[f(k)] = v }
        return out
    }
}
