import ForgeCore
import GRDB
import Store

/// Reads image annotations back from the store, one image at a time or streaming over all of
/// them (three cursors in image id order, merged — no per-image queries for a 118K-image set).
public struct AnnotationSource {
    public let database: ForgeDatabase

    public init(database: ForgeDatabase) { self.database = database }

    public func annotations(imageID: Int64) throws -> ImageAnnotations? {
        try database.read { db in try AnnotationReader(db).annotations(imageID: imageID) }
    }

    /// Calls `body` for every image in id order: images, `image_captions` and `image_boxes` are
    /// all keyed by image id, so three cursors in key order are merged (raw statements: this
    /// decodes 1.5 M captions and boxes for train2017).
    public func forEachImage(includeBoxes: Bool = true, _ body: (ImageAnnotations) throws -> Void) throws {
        try database.read { db in
            guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection", file: database.path) }
            let categories = try AnnotationReader.categoryNames(db)
            let images = try RawStatement(handle, "SELECT id, file_name, width, height FROM images ORDER BY id")
            var captions = try PackedTableCursor(handle, table: "image_captions")
            var boxes = try PackedTableCursor(handle, table: "image_boxes", enabled: includeBoxes)
            do {
                while try images.nextRow() {
                    let id = images.int64(0)
                    var caps: [String] = []
                    try captions.pack(of: id) { blob in
                        try AnnotationPack.forEachCaption(blob, imageID: id) { _, _, text in caps.append(String(decoding: text, as: UTF8.self)) }
                    }
                    var bs: [ImageAnnotations.Box] = []
                    try boxes.pack(of: id) { blob in
                        try AnnotationPack.forEachBox(blob, imageID: id) { b in
                            bs.append(.init(category: categories[b.categoryID] ?? "?", x: b.x, y: b.y, w: b.w, h: b.h))
                        }
                    }
                    try body(ImageAnnotations(imageID: id, fileName: images.text(1), width: images.int64(2), height: images.int64(3),
                                              captions: caps, boxes: bs))
                }
            } catch var e as ForgeError where e.file == nil && e.kind == .database {
                e.file = database.path
                throw e
            }
        }
    }
}

/// One image's annotations at a time, inside a database access the caller holds (many images
/// in one read transaction: generation planning). Category names are read once.
public struct AnnotationReader {
    let db: Database
    let categories: [Int64: String]

    public init(_ db: Database) throws {
        self.db = db
        categories = try Self.categoryNames(db)
    }

    /// The image, its captions and its boxes (category names; "?" for an unknown category) in
    /// file order, or nil when the store has no such image.
    public func annotations(imageID: Int64) throws -> ImageAnnotations? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, file_name, width, height FROM images WHERE id = ?"), arguments: [imageID]) else {
            return nil
        }
        let captions = try AnnotationStore.captions(imageID: imageID, db: db).map(\.text)
        let boxes = try AnnotationStore.boxes(imageID: imageID, db: db).map { b in
            ImageAnnotations.Box(category: categories[b.categoryID] ?? "?", x: b.x, y: b.y, w: b.w, h: b.h)
        }
        return ImageAnnotations(imageID: row[0], fileName: row[1], width: row[2], height: row[3], captions: captions, boxes: boxes)
    }

    static func categoryNames(_ db: Database) throws -> [Int64: String] {
        var names: [Int64: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, name FROM categories") { names[row[0]] = row[1] }
        return names
    }
}
