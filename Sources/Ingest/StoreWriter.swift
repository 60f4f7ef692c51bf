import ForgeCore
import Foundation
import GRDB
import Store

/// Writes one file's `COCORecordBuffer` into the store, after the checks that need the store:
/// image ids the file does not list, categories it does not define.
///
/// Images (and categories) are rows upserted by COCO id through prepared statements, sorted by id
/// (COCO files list them in random id order; id order appends to the rightmost B-tree page).
/// Captions and boxes go to `AnnotationStore`: one packed row per image, merged by annotation id,
/// so re-ingesting the same files is idempotent and "the later duplicate wins" holds.
struct StoreWriter {
    let db: Database
    let insertImage: RawStatement
    let insertCategory: RawStatement
    let lookupImage: RawStatement
    let lookupCategory: RawStatement

    init(db: Database) throws {
        guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection") }
        self.db = db
        // An image listed again with the same fields (both files of an ingest list every image)
        // is left as it is: no row rewrite.
        insertImage = try RawStatement(handle, """
            INSERT INTO images(id, file_name, width, height, source) VALUES (?1, ?2, ?3, ?4, ?5)
            ON CONFLICT(id) DO UPDATE SET file_name = excluded.file_name, width = excluded.width, height = excluded.height
            WHERE file_name != excluded.file_name OR width != excluded.width OR height != excluded.height
            """)
        insertCategory = try RawStatement(handle, """
            INSERT INTO categories(id, name, supercategory) VALUES (?1, ?2, ?3)
            ON CONFLICT(id) DO UPDATE SET name = excluded.name, supercategory = excluded.supercategory
            """)
        lookupImage = try RawStatement(handle, "SELECT 1 FROM images WHERE id = ?1")
        lookupCategory = try RawStatement(handle, "SELECT 1 FROM categories WHERE id = ?1")
    }

    /// Validates `buffer` against the store and writes it; returns the file's final report.
    /// Throws (the caller's transaction rolls back) on undefined categories, or unknown image
    /// ids under `strict`.
    func write(_ buffer: inout COCORecordBuffer, strict: Bool, clock: inout PhaseClock) throws -> IngestFileReport {
        var report = buffer.report
        let name = buffer.kind.rawValue

        for c in buffer.categories {
            insertCategory.bind(1, c.id)
            insertCategory.bind(2, c.name)
            if let s = c.supercategory { insertCategory.bind(3, s) } else { insertCategory.bind(3, "") }
            try insertCategory.step()
        }

        // Categories first: official files list them after the annotations.
        let undefined = buffer.categoryIDsUsed.subtracting(buffer.categoryIDsDefined)
        var stillUnknown: [Int64] = []
        for cid in undefined {
            lookupCategory.bind(1, cid)
            if try lookupCategory.queryInt() == nil { stillUnknown.append(cid) }
        }
        if !stillUnknown.isEmpty {
            let list = stillUnknown.sorted().map(String.init).joined(separator: ", ")
            throw ForgeError(.badInput, "annotations use category_id \(list), which \"categories\" does not define", file: report.path, location: "categories")
        }

        // Annotations of images this file does not list: kept when the store has the image
        // (another file of this ingest, or an earlier one), else skipped and counted.
        if buffer.referencesOtherImages || buffer.annotationsBeforeImages {
            var cache: [Int64: Bool] = [:]
            let sizes = buffer.imageSizes
            func known(_ imageID: Int64) throws -> Bool {
                if sizes[imageID] != nil { return true }
                if let k = cache[imageID] { return k }
                lookupImage.bind(1, imageID)
                let k = try lookupImage.queryInt() != nil
                cache[imageID] = k
                return k
            }
            var keptCaptions: [CaptionSpan] = []
            keptCaptions.reserveCapacity(buffer.captions.count)
            for c in buffer.captions {
                if try known(c.imageID) { keptCaptions.append(c); continue }
                report.skip("unknown_image_id", "annotations[\(c.seq)] (id \(c.id)) → image_id \(c.imageID)")
                report.captions -= 1
            }
            buffer.captions = keptCaptions
            var keptBoxes: [StoredBox] = []
            keptBoxes.reserveCapacity(buffer.boxes.count)
            for b in buffer.boxes {
                if try known(b.imageID) { keptBoxes.append(b); continue }
                report.skip("unknown_image_id", "annotations[\(b.seq)] (id \(b.id)) → image_id \(b.imageID)")
                report.boxes -= 1
            }
            buffer.boxes = keptBoxes
        }
        if strict, let n = report.skipped["unknown_image_id"], n > 0 {
            let ex = report.examples["unknown_image_id"]?.joined(separator: "; ") ?? ""
            throw ForgeError(.badInput, "\(n) annotations reference image ids the file does not list (e.g. \(ex))", file: report.path, location: "annotations")
        }
        clock.lap("\(name): checks")

        buffer.images.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
        for r in buffer.images {
            insertImage.bind(1, r.id)
            insertImage.bind(2, r.fileName)
            insertImage.bind(3, r.width)
            insertImage.bind(4, r.height)
            insertImage.bind(5, report.path)
            try insertImage.step()
        }
        buffer.images = []
        clock.lap("\(name): write images")

        if !buffer.captions.isEmpty {
            try AnnotationStore.upsertCaptions(buffer.captions, db: db)
            buffer.captions = []
            clock.lap("\(name): write captions")
        }

        if !buffer.boxes.isEmpty {
            try AnnotationStore.upsertBoxes(buffer.boxes, db: db)
            buffer.boxes = []
            clock.lap("\(name): write boxes")
        }
        return report
    }
}
