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

    /// Calls `body` for every image in id order: three queries ordered by image id, merged.
    /// Raw statements, not GRDB rows: this streams 1.5 M caption/box rows for train2017.
    public func forEachImage(includeBoxes: Bool = true, _ body: (ImageAnnotations) throws -> Void) throws {
        try database.read { db in
            guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection", file: database.path) }
            let categories = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, name FROM categories").map { (r: Row) -> (Int64, String) in (r[0], r[1]) })
            let images = try RawStatement(handle, "SELECT id, file_name, width, height FROM images ORDER BY id")
            let captions = try RawStatement(handle, "SELECT image_id, caption FROM captions ORDER BY image_id, seq, id")
            let boxes = try RawStatement(handle, includeBoxes
                ? "SELECT image_id, category_id, x, y, w, h FROM boxes ORDER BY image_id, seq, id"
                : "SELECT image_id, category_id, x, y, w, h FROM boxes WHERE 0")
            var captionPending = try captions.nextRow()
            var boxPending = try boxes.nextRow()
            while try images.nextRow() {
                let id = images.int64(0)
                var caps: [String] = []
                while captionPending, captions.int64(0) <= id {
                    if captions.int64(0) == id { caps.append(captions.text(1)) }
                    captionPending = try captions.nextRow()
                }
                var bs: [ImageAnnotations.Box] = []
                while boxPending, boxes.int64(0) <= id {
                    if boxes.int64(0) == id {
                        bs.append(.init(category: categories[boxes.int64(1)] ?? "?",
                                        x: boxes.double(2), y: boxes.double(3), w: boxes.double(4), h: boxes.double(5)))
                    }
                    boxPending = try boxes.nextRow()
                }
                try body(ImageAnnotations(imageID: id, fileName: images.text(1), width: images.int64(2), height: images.int64(3),
                                          captions: caps, boxes: bs))
            }
        }
    }
}
