import ForgeCore
import GRDB
import Store

/// Reads image annotations back from the store, one image at a time or streaming over all of
/// them (three cursors ordered by image id, merged — no per-image queries for a 118K-image set).
public struct AnnotationSource {
    public let database: ForgeDatabase

    public init(database: ForgeDatabase) { self.database = database }

    public func annotations(imageID: Int64) throws -> ImageAnnotations? {
        try database.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT id, file_name, width, height FROM images WHERE id = ?", arguments: [imageID]) else {
                return nil
            }
            let captions = try String.fetchAll(db, sql: "SELECT caption FROM captions WHERE image_id = ? ORDER BY seq, id", arguments: [imageID])
            let boxes = try Row.fetchAll(db, sql: """
                SELECT coalesce(c.name, '?'), b.x, b.y, b.w, b.h FROM boxes b LEFT JOIN categories c ON c.id = b.category_id
                WHERE b.image_id = ? ORDER BY b.seq, b.id
                """, arguments: [imageID]).map { r in
                ImageAnnotations.Box(category: r[0], x: r[1], y: r[2], w: r[3], h: r[4])
            }
            return ImageAnnotations(imageID: row[0], fileName: row[1], width: row[2], height: row[3], captions: captions, boxes: boxes)
        }
    }

    /// Calls `body` for every image in id order (or only `ids`, when given).
    public func forEachImage(includeBoxes: Bool = true, _ body: (ImageAnnotations) throws -> Void) throws {
        try database.read { db in
            let categories = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, name FROM categories").map { (r: Row) -> (Int64, String) in (r[0], r[1]) })
            let images = try Row.fetchCursor(db, sql: "SELECT id, file_name, width, height FROM images ORDER BY id")
            let captions = try Row.fetchCursor(db, sql: "SELECT image_id, caption FROM captions ORDER BY image_id, seq, id")
            let boxes = includeBoxes
                ? try Row.fetchCursor(db, sql: "SELECT image_id, category_id, x, y, w, h FROM boxes ORDER BY image_id, seq, id")
                : nil
            var pendingCaption = try captions.next().map { (id: $0[0] as Int64, text: $0[1] as String) }
            var pendingBox = try boxes?.next().map { r in (id: r[0] as Int64, cat: r[1] as Int64, x: r[2] as Double, y: r[3] as Double, w: r[4] as Double, h: r[5] as Double) }
            while let img = try images.next() {
                let id: Int64 = img[0]
                var caps: [String] = []
                while let c = pendingCaption, c.id <= id {
                    if c.id == id { caps.append(c.text) }
                    pendingCaption = try captions.next().map { (id: $0[0] as Int64, text: $0[1] as String) }
                }
                var bs: [ImageAnnotations.Box] = []
                if let boxes {
                    while let b = pendingBox, b.id <= id {
                        if b.id == id { bs.append(.init(category: categories[b.cat] ?? "?", x: b.x, y: b.y, w: b.w, h: b.h)) }
                        pendingBox = try boxes.next().map { r in (id: r[0] as Int64, cat: r[1] as Int64, x: r[2] as Double, y: r[3] as Double, w: r[4] as Double, h: r[5] as Double) }
                    }
                }
                try body(ImageAnnotations(imageID: id, fileName: img[1], width: img[2], height: img[3], captions: caps, boxes: bs))
            }
        }
    }
}
