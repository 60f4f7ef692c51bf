import ForgeCore
import Foundation
import GRDB
import Store

/// Writes one file's `COCORecordBuffer` into the store through prepared statements, after the
/// checks that need the store: image ids the file does not list, categories it does not define.
///
/// Rows are written sorted by id: COCO files list them in random id order, and upserting in
/// that order costs a B-tree descent to a random page per row, while id order appends to the
/// rightmost page (ingest time roughly halves). Sorting by (id, file position) keeps "the later
/// duplicate wins". Upserts keyed by COCO ids make re-ingesting the same files idempotent.
struct StoreWriter {
    let handle: OpaquePointer
    let insertImage: RawStatement
    let insertCaption: RawStatement
    let insertBox: RawStatement
    let insertCategory: RawStatement
    let lookupImage: RawStatement
    let lookupCategory: RawStatement

    init(handle: OpaquePointer) throws {
        self.handle = handle
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
            var keptCaptions: [COCORecordBuffer.PendingCaption] = []
            keptCaptions.reserveCapacity(buffer.captions.count)
            for c in buffer.captions {
                if try known(c.imageID) { keptCaptions.append(c); continue }
                report.skip("unknown_image_id", "annotations[\(c.seq)] (id \(c.id)) → image_id \(c.imageID)")
                report.captions -= 1
            }
            buffer.captions = keptCaptions
            var keptBoxes: [COCORecordBuffer.PendingBox] = []
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
            buffer.captions.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
            for r in buffer.captions {
                insertCaption.bind(1, r.id)
                insertCaption.bind(2, r.imageID)
                insertCaption.bind(3, Int64(r.seq))
                insertCaption.bind(4, r.text)
                try insertCaption.step()
            }
            buffer.captions = []
            clock.lap("\(name): write captions")
        }

        if !buffer.boxes.isEmpty {
            buffer.boxes.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
            for r in buffer.boxes {
                insertBox.bind(1, r.id)
                insertBox.bind(2, r.imageID)
                insertBox.bind(3, r.categoryID)
                insertBox.bind(4, Int64(r.seq))
                insertBox.bind(5, r.x)
                insertBox.bind(6, r.y)
                insertBox.bind(7, r.w)
                insertBox.bind(8, r.h)
                insertBox.bind(9, r.isCrowd)
                insertBox.bind(10, r.area)
                try insertBox.step()
            }
            buffer.boxes = []
            clock.lap("\(name): write boxes")
        }
        return report
    }
}
