import ForgeCore
import GRDBSQLite

/// A thin prepared statement over the raw SQLite handle, for the hot paths where GRDB's per-row
/// argument boxing and `Row` decoding cost more than SQLite itself: ingest (1.5 M inserts for
/// train2017) and streaming every image's annotations (`context --all`, generation planning).
/// Use it inside a GRDB access block (`db.sqliteConnection`), which serializes the connection.
public final class RawStatement {
    private let handle: OpaquePointer
    private var stmt: OpaquePointer?
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public init(_ handle: OpaquePointer, _ sql: String) throws {
        self.handle = handle
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK else {
            throw ForgeError(.database, "prepare failed: \(String(cString: sqlite3_errmsg(handle))) — \(sql)")
        }
    }

    deinit { sqlite3_finalize(stmt) }

    @inline(__always) public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(stmt, i, v) }
    @inline(__always) public func bind(_ i: Int32, _ v: Double) { sqlite3_bind_double(stmt, i, v) }
    @inline(__always) public func bindNull(_ i: Int32) { sqlite3_bind_null(stmt, i) }
    @inline(__always) public func bind(_ i: Int32, _ s: String) { sqlite3_bind_text(stmt, i, s, -1, Self.transient) }

    /// Binds `count` UTF-8 bytes without copying: they must stay valid until the next `step`.
    @inline(__always) public func bindText(_ i: Int32, bytes: UnsafePointer<UInt8>, count: Int) {
        bytes.withMemoryRebound(to: CChar.self, capacity: count) { sqlite3_bind_text(stmt, i, $0, Int32(count), nil) }
    }

    /// Binds `count` bytes as a BLOB without copying: they must stay valid until the next `step`.
    @inline(__always) public func bindBlob(_ i: Int32, bytes: UnsafeRawPointer?, count: Int) {
        if count == 0 || bytes == nil { sqlite3_bind_zeroblob(stmt, i, 0); return }  // an empty BLOB, not NULL
        sqlite3_bind_blob(stmt, i, bytes, Int32(count), nil)
    }

    /// Runs the statement; returns whether a row came back.
    @discardableResult public func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        defer { sqlite3_reset(stmt) }
        if rc == SQLITE_DONE { return false }
        if rc == SQLITE_ROW { return true }
        throw ForgeError(.database, String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs a one-row query and returns the first column as Int64, or nil when no row.
    public func queryInt() throws -> Int64? {
        let rc = sqlite3_step(stmt)
        defer { sqlite3_reset(stmt) }
        if rc == SQLITE_ROW { return sqlite3_column_int64(stmt, 0) }
        if rc == SQLITE_DONE { return nil }
        throw ForgeError(.database, String(cString: sqlite3_errmsg(handle)))
    }

    // MARK: cursor use (a query read row by row; `reset()` to run it again)

    /// Advances to the next row of a query: false at the end.
    public func nextRow() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw ForgeError(.database, String(cString: sqlite3_errmsg(handle)))
    }

    public func reset() { sqlite3_reset(stmt) }

    @inline(__always) public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }
    @inline(__always) public func double(_ column: Int32) -> Double { sqlite3_column_double(stmt, column) }
    /// The column as text ("" for NULL).
    @inline(__always) public func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, column) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Calls `body` with the column's bytes as a BLOB (empty for NULL), valid only inside `body`.
    @inline(__always) public func withBlobBytes<T>(_ column: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let p = sqlite3_column_blob(stmt, column)
        let n = Int(sqlite3_column_bytes(stmt, column))
        return try body(UnsafeRawBufferPointer(start: n > 0 ? p : nil, count: n))
    }

    /// Calls `body` with the column's UTF-8 bytes (empty for NULL), valid only inside `body`.
    @inline(__always) public func withTextBytes(_ column: Int32, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        guard let p = sqlite3_column_text(stmt, column) else { body(UnsafeBufferPointer(start: nil, count: 0)); return }
        body(UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, column))))
    }
}
