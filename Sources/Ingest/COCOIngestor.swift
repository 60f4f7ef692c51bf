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
    /// Parse the second file on its own thread while the first is parsed and written (the two
    /// files are independent until the store-side checks, which run on the database thread).
    public var parallelParse = true
    /// An instances file whose annotations span at least this many bytes has their second half
    /// parsed on a helper thread (`AnnotationTailParse`); nil: one thread per file.
    public var splitAnnotationsAbove: Int? = 8 << 20
    /// Called with (phase, seconds) as the ingest goes: the CLI's `--timings`.
    public var onPhase: (@Sendable (String, Double) -> Void)?

    public init(captionsPath: String? = nil, instancesPath: String? = nil, imagesDir: String? = nil, strict: Bool = false,
                parallelParse: Bool = true, splitAnnotationsAbove: Int? = 8 << 20, onPhase: (@Sendable (String, Double) -> Void)? = nil) {
        self.captionsPath = captionsPath
        self.instancesPath = instancesPath
        self.imagesDir = imagesDir
        self.strict = strict
        self.parallelParse = parallelParse
        self.splitAnnotationsAbove = splitAnnotationsAbove
        self.onPhase = onPhase
    }
}

/// COCO JSON → Store. Everything happens in one transaction: a bad file leaves the database as
/// it was. Rows are upserted by their COCO ids, so re-ingesting the same files is idempotent.
public struct COCOIngestor {
    public let database: ForgeDatabase

    public init(database: ForgeDatabase) { self.database = database }

    /// The CLI's entry point. A database file that does not exist yet is built whole beside the
    /// target and renamed into place (`NewDatabaseBuild`: no WAL, no fsync while loading, and a
    /// crash leaves no database rather than half of one); an existing database is ingested into
    /// in place with `ingest(_:)` — WAL, one transaction, upserts.
    public static func ingest(databaseAt path: String, _ options: IngestOptions) throws -> [IngestFileReport] {
        let fm = FileManager.default
        // A stray -wal without its database would be replayed into a new file: leave that case
        // to the ordinary path, which behaves as before.
        if fm.fileExists(atPath: path) || fm.fileExists(atPath: path + "-wal") {
            return try COCOIngestor(database: try ForgeDatabase(path: path)).ingest(options)
        }
        return try NewDatabaseBuild(path: path).run(options)
    }

    /// Ingests into this (existing, open) database in one transaction.
    public func ingest(_ options: IngestOptions) throws -> [IngestFileReport] {
        // Map before opening the transaction so a missing file fails fast.
        let mapped = try Self.mapFiles(options)
        var clock = PhaseClock(observer: options.onPhase)
        return try database.pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA cache_size = -262144")  // 256 MB page cache while bulk loading
            defer { try? db.execute(sql: "PRAGMA cache_size = -65536") }  // ForgeDatabase's default
            var reports: [IngestFileReport] = []
            try db.inTransaction {
                reports = try Self.load(mapped, db: db, options: options, clock: &clock)
                return .commit
            }
            clock.lap("commit")
            return reports
        }
    }

    static func mapFiles(_ options: IngestOptions) throws -> [(MappedFile, COCOFileKind)] {
        var files: [(String, COCOFileKind)] = []
        if let p = options.captionsPath { files.append((p, .captions)) }
        if let p = options.instancesPath { files.append((p, .instances)) }
        guard !files.isEmpty else { throw ForgeError(.usage, "give --captions and/or --instances") }
        return try files.map { (try MappedFile(path: $0.0), $0.1) }
    }

    /// Parses and writes every file inside the caller's transaction.
    static func load(_ files: [(MappedFile, COCOFileKind)], db: Database, options: IngestOptions, clock: inout PhaseClock) throws -> [IngestFileReport] {
        // Later files parse on their own thread from the start; the first one parses here.
        let jobs = files.map { ParseJob(file: $0.0, reader: COCOReader(kind: $0.1, splitAnnotationsAbove: options.splitAnnotationsAbove)) }
        if options.parallelParse { for job in jobs.dropFirst() { job.start() } }
        defer { for job in jobs { job.wait() } }  // never unmap a file another thread still reads

        let writer = try StoreWriter(db: db)
        var reports: [IngestFileReport] = []
        for job in jobs {
            if !job.started { job.runHere() }
            job.wait()
            clock.report("\(job.kind.rawValue): parse", seconds: job.seconds)
            clock.lap("\(job.kind.rawValue): wait for parse")
            var buffer = try job.takeResult()
            let writeStarted = DispatchTime.now().uptimeNanoseconds
            var report = try writer.write(&buffer, strict: options.strict, clock: &clock)
            report.seconds = job.seconds + Double(DispatchTime.now().uptimeNanoseconds - writeStarted) / 1e9
            try recordIngest(report, db: db)
            reports.append(report)
        }
        if let dir = options.imagesDir {
            try checkImages(dir: dir, db: db, reports: &reports)
            clock.lap("images folder")
        }
        return reports
    }

    private static func recordIngest(_ report: IngestFileReport, db: Database) throws {
        let skippedJSON = String(decoding: try JSONEncoder().encode(report.skipped.merging(report.notices.mapKeys { "notice:" + $0 }) { a, _ in a }), as: UTF8.self)
        try db.execute(
            sql: """
            INSERT INTO ingests(path, kind, size_bytes, images, captions, boxes, categories, skipped_json, seconds)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            arguments: [report.path, report.kind, report.sizeBytes, report.images, report.captions, report.boxes, report.categories, skippedJSON, report.seconds])
    }

    private static func checkImages(dir: String, db: Database, reports: inout [IngestFileReport]) throws {
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

/// One file's parse, run on the calling thread or on its own.
final class ParseJob: @unchecked Sendable {
    let file: MappedFile
    let reader: COCOReader
    var kind: COCOFileKind { reader.kind }
    private(set) var started = false
    private(set) var seconds = 0.0
    private var result: Result<COCORecordBuffer, Error>?
    private let done = DispatchSemaphore(value: 0)
    private var waited = false

    init(file: MappedFile, reader: COCOReader) {
        self.file = file
        self.reader = reader
    }

    /// Parses on a thread of its own.
    func start() {
        started = true
        Thread.detachNewThread { [self] in self.parse() }
    }

    func runHere() {
        started = true
        parse()
    }

    private func parse() {
        let t0 = DispatchTime.now().uptimeNanoseconds
        result = Result {
            var buffer = COCORecordBuffer(path: file.path, kind: kind, size: file.count)
            try reader.read(file, into: &buffer)
            return buffer
        }
        seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        done.signal()
    }

    /// Blocks until the parse has finished (at once if it never started).
    func wait() {
        guard started, !waited else { return }
        done.wait()
        waited = true
    }

    func takeResult() throws -> COCORecordBuffer {
        guard let result else { throw ForgeError(.io, "parse of \(file.path) did not run") }
        self.result = nil
        return try result.get()
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ f: (Key) -> K) -> [K: Value] {
        var out: [K: Value] = [:]
        for (k, v) in self { out[f(k)] = v }
        return out
    }
}
