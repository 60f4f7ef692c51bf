import GRDB

extension ForgeSchema {
    /// Captions and boxes move from one row per annotation (`captions`, `boxes`, with their
    /// by-image indexes) to one packed row per image (`image_captions`, `image_boxes`; see
    /// `AnnotationStore` for why). Existing rows are converted — same ids, seqs, texts, numbers
    /// bit for bit — and the old tables dropped, in the migration's transaction.
    ///
    ///     image_captions(image_id PK, count, packed)            — count = captions in the pack
    ///     image_boxes(image_id PK, count, drawable, packed)     — drawable = boxes with w > 0 and h > 0
    static func registerAnnotationPacks(_ m: inout DatabaseMigrator) {
        m.registerMigration("v_annotation_packs") { db in
            try db.execute(sql: """
            CREATE TABLE image_captions (
                image_id INTEGER PRIMARY KEY,
                count INTEGER NOT NULL,
                packed BLOB NOT NULL
            );
            CREATE TABLE image_boxes (
                image_id INTEGER PRIMARY KEY,
                count INTEGER NOT NULL,
                drawable INTEGER NOT NULL,
                packed BLOB NOT NULL
            );
            """)
            let arena = ByteArena()
            try AnnotationStore.upsertCaptions(try oldCaptions(db, arena: arena), db: db)
            try AnnotationStore.upsertBoxes(try oldBoxes(db), db: db)
            withExtendedLifetime(arena) {}
            try db.execute(sql: "DROP TABLE captions; DROP TABLE boxes")
        }
    }

    /// The v1 `captions` rows, texts copied into `arena`. (The statement is finalized on return,
    /// before the table is dropped.)
    private static func oldCaptions(_ db: Database, arena: ByteArena) throws -> [CaptionSpan] {
        let read = try RawStatement(try AnnotationStore.connection(db), "SELECT id, image_id, seq, caption FROM captions")
        var captions: [CaptionSpan] = []
        while try read.nextRow() {
            var text = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
            read.withTextBytes(3) { text = arena.store($0) }
            captions.append(CaptionSpan(id: read.int64(0), imageID: read.int64(1), seq: read.int64(2), text: text))
        }
        return captions
    }

    /// The v1 `boxes` rows.
    private static func oldBoxes(_ db: Database) throws -> [StoredBox] {
        let read = try RawStatement(try AnnotationStore.connection(db), "SELECT id, image_id, category_id, seq, x, y, w, h, iscrowd, area FROM boxes")
        var boxes: [StoredBox] = []
        while try read.nextRow() {
            boxes.append(StoredBox(id: read.int64(0), imageID: read.int64(1), categoryID: read.int64(2), seq: read.int64(3),
                                   x: read.double(4), y: read.double(5), w: read.double(6), h: read.double(7),
                                   isCrowd: read.int64(8), area: read.double(9)))
        }
        return boxes
    }
}
