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

/// Writes records through prepared statements; tracks ids to validate references.
struct StoreSink: COCOSink {
    let handle: OpaquePointer
    var report: IngestFileReport
    let kind: COCOFileKind
    let insertImage: RawStatement
    let insertCaption: RawStatement
    let insertBox: RawStatement
    let insertCategory: RawStatement
    let lookupImage: RawStatement
    /// id → (width, height) of the images this file lists.
    var imageSizes: [Int64: (Int64, Int64)] = [:]
    var imagesSectionSeen = false
    var annotationsBeforeImages = false
    var categoryIDsUsed: Set<Int64> = []
    var categoryIDsDefined: Set<Int64> = []
    var unknownImageCache: [Int64: Bool] = [:]

    init(handle: OpaquePointer, path: String, kind: COCOFileKind, size: Int) throws {
        self.handle = handle
        self.kind = kind
        report = IngestFileReport(path: path, kind: kind.rawValue, sizeBytes: size)
        insertImage = try RawStatement(handle, """
            INSERT INTO images(id, file_name, width, height, source) VALUES (?1, ?2, ?3, ?4, ?5)
            ON CONFLICT(id) DO UPDATE SET file_name = excluded.file_name, width = excluded.width, height = excluded.height
            """)
        insertCaption = try RawStatement(handle, """
            INSERT INTO captions(id, image_id, seq, caption) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT(id) DO UPDATE SET image_id = excluded.image_id, seq = excluded.seq, caption = excluded.caption
            """)
        insertBox = try RawStatement(handle, """
            INSERT INTO boxes(id, image_id, category_id, seq, x, y, w, h, iscrowd, area) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
            ON CONFLICT(id) DO UPDATE SET image_id = excluded.image_id, category_id = excluded.category_id, seq = excluded.seq,
              x = excluded.x, y = excluded.y, w = excluded.w, h = excluded.h, iscrowd = excluded.iscrowd, area = excluded.area
            """)
        insertCategory = try RawStatement(handle, """
            INSERT INTO categories(id, name, supercategory) VALUES (?1, ?2, ?3)
            ON CONFLICT(id) DO UPDATE SET name = excluded.name, supercategory = excluded.supercategory
            """)
        lookupImage = try RawStatement(handle, "SELECT width FROM images WHERE id = ?1")
        imageSizes.reserveCapacity(1 << 17)
    }

    mutating func beginSection(_ name: String) throws {
        if name == "images" { imagesSectionSeen = true }
        if name == "annotations" && !imagesSectionSeen { annotationsBeforeImages = true }
    }

    mutating func image(id: Int64, fileName: COCOText, width: Int64, height: Int64, index: Int) throws {
        insertImage.bind(1, id)
        insertImage.bind(2, fileName)
        insertImage.bind(3, width)
        insertImage.bind(4, height)
        insertImage.bind(5, report.path)
        try insertImage.step()
        imageSizes[id] = (width, height)
        report.images += 1
    }

    /// Whether an annotation may reference `imageID`: listed in this file, or already stored.
    mutating func imageKnown(_ imageID: Int64) throws -> Bool {
        if imageSizes[imageID] != nil || annotationsBeforeImages { return true }
        if let cached = unknownImageCache[imageID] { return cached }
        lookupImage.bind(1, imageID)
        let known = try lookupImage.queryInt() != nil
        unknownImageCache[imageID] = known
        return known
    }

    mutating func caption(id: Int64, imageID: Int64, text: COCOText, index: Int) throws {
        guard try imageKnown(imageID) else {
            report.skip("unknown_image_id", "annotations[\(index)] (id \(id)) → image_id \(imageID)")
            return
        }
        insertCaption.bind(1, id)
        insertCaption.bind(2, imageID)
        insertCaption.bind(3, Int64(index))
        insertCaption.bind(4, text)
        try insertCaption.step()
        report.captions += 1
    }

    mutating func box(id: Int64, imageID: Int64, categoryID: Int64, bbox: (Double, Double, Double, Double), isCrowd: Int64, area: Double, index: Int) throws {
        guard try imageKnown(imageID) else {
            report.skip("unknown_image_id", "annotations[\(index)] (id \(id)) → image_id \(imageID)")
            return
        }
        let (x, y, w, h) = bbox
        if w <= 0 || h <= 0 {
            report.notices["degenerate_box", default: 0] += 1  // kept; contexts drop and count them
        } else if let (W, H) = imageSizes[imageID], x < 0 || y < 0 || x + w > Double(W) || y + h > Double(H) {
            report.notices["box_outside_image", default: 0] += 1  // kept; contexts clamp to [0, 1]
        }
        insertBox.bind(1, id)
        insertBox.bind(2, imageID)
        insertBox.bind(3, categoryID)
        insertBox.bind(4, Int64(index))
        insertBox.bind(5, x)
        insertBox.bind(6, y)
        insertBox.bind(7, w)
        insertBox.bind(8, h)
        insertBox.bind(9, isCrowd)
        insertBox.bind(10, area)
        try insertBox.step()
        categoryIDsUsed.insert(categoryID)
        report.boxes += 1
    }

    mutating func category(id: Int64, name: COCOText, supercategory: COCOText?, index: Int) throws {
        insertCategory.bind(1, id)
        insertCategory.bind(2, name)
        if let supercategory { insertCategory.bind(3, supercategory) } else { insertCategory.bind(3, "") }
        try insertCategory.step()
        categoryIDsDefined.insert(id)
        report.categories += 1
    }

    /// Checks that needs the whole file: references to categories (listed after the annotations
    /// in official files) and, for files that list annotations before images, image ids.
    mutating func finish(db: Database, strict: Bool) throws {
        if annotationsBeforeImages {
            let table = kind == .captions ? "captions" : "boxes"
            let orphans = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table) t WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = t.image_id)") ?? 0
            if orphans > 0 {
                try db.execute(sql: "DELETE FROM \(table) WHERE NOT EXISTS (SELECT 1 FROM images i WHERE i.id = \(table).image_id)")
                report.skipped["unknown_image_id", default: 0] += orphans
                if kind == .captions { report.captions -= orphans } else { report.boxes -= orphans }
            }
        }
        let undefined = categoryIDsUsed.subtracting(categoryIDsDefined)
        if !undefined.isEmpty {
            var stillUnknown: [Int64] = []
            for cid in undefined where try Int.fetchOne(db, sql: "SELECT 1 FROM categories WHERE id = ?", arguments: [cid]) == nil {
                stillUnknown.append(cid)
            }
            if !stillUnknown.isEmpty {
                let list = stillUnknown.sorted().map(String.init).joined(separator: ", ")
                throw ForgeError(.badInput, "annotations use category_id \(list), which \"categories\" does not define", file: report.path, location: "categories")
            }
        }
        if strict, let n = report.skipped["unknown_image_id"], n > 0 {
            let ex = report.examples["unknown_image_id"]?.joined(separator: "; ") ?? ""
            throw ForgeError(.badInput, "\(n) annotations reference image ids the file does not list (e.g. \(ex))", file: report.path, location: "annotations")
        }
    }
}
