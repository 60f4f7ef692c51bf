import ForgeCore
import Foundation
import GRDB
import Store

/// Writes records through prepared statements; tracks ids to validate references.
///
/// Images, captions and boxes are buffered per file and written sorted by id in `finish`: COCO
/// files list them in random id order, and upserting in that order costs a B-tree descent to a
/// random page per row, while id order appends to the rightmost page (ingest time roughly
/// halves). Texts stay spans of the memory-mapped file, so the buffers are small (~100 MB for
/// train2017). Sorting by (id, file position) keeps "the later duplicate wins".
struct StoreSink: COCOSink {
    struct PendingImage { var id: Int64; var seq: Int; var fileName: COCOText; var width, height: Int64 }
    struct PendingCaption { var id, imageID: Int64; var seq: Int; var text: COCOText }
    struct PendingBox { var id, imageID, categoryID: Int64; var seq: Int; var x, y, w, h: Double; var isCrowd: Int64; var area: Double }

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
    var pendingImages: [PendingImage] = []
    var pendingCaptions: [PendingCaption] = []
    var pendingBoxes: [PendingBox] = []

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
        pendingImages.append(PendingImage(id: id, seq: index, fileName: fileName, width: width, height: height))
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
        pendingCaptions.append(PendingCaption(id: id, imageID: imageID, seq: index, text: text))
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
        pendingBoxes.append(PendingBox(id: id, imageID: imageID, categoryID: categoryID, seq: index,
                                       x: x, y: y, w: w, h: h, isCrowd: isCrowd, area: area))
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
        try flush()
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

    /// Writes the buffered rows in id order (see the type's comment).
    private mutating func flush() throws {
        pendingImages.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
        for r in pendingImages {
            insertImage.bind(1, r.id)
            insertImage.bind(2, r.fileName)
            insertImage.bind(3, r.width)
            insertImage.bind(4, r.height)
            insertImage.bind(5, report.path)
            try insertImage.step()
        }
        pendingImages = []
        pendingCaptions.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
        for r in pendingCaptions {
            insertCaption.bind(1, r.id)
            insertCaption.bind(2, r.imageID)
            insertCaption.bind(3, Int64(r.seq))
            insertCaption.bind(4, r.text)
            try insertCaption.step()
        }
        pendingCaptions = []
        pendingBoxes.sort { ($0.id, $0.seq) < ($1.id, $1.seq) }
        for r in pendingBoxes {
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
        pendingBoxes = []
    }
}
