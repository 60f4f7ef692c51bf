import Store

/// One packed annotations table (`image_captions` or `image_boxes`, keyed by image id) scanned in
/// id order beside the `images` scan — a merge join with no sort. Rows of ids the images scan
/// never reaches (annotations of unknown images) are skipped.
struct PackedTableCursor {
    private let statement: RawStatement
    private var pending: Bool

    /// `enabled: false` reads nothing (contexts without boxes).
    init(_ handle: OpaquePointer, table: String, enabled: Bool = true) throws {
        statement = try RawStatement(handle, "SELECT image_id, packed FROM \(table) " + (enabled ? "ORDER BY image_id" : "WHERE 0"))
        pending = try statement.nextRow()
    }

    /// Calls `body` with the packed bytes of image `id` when it has a row; `id`s must ascend.
    mutating func pack(of id: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while pending, statement.int64(0) < id { pending = try statement.nextRow() }
        guard pending, statement.int64(0) == id else { return }
        try statement.withBlobBytes(1, body)
        pending = try statement.nextRow()
    }
}
