import ForgeCore
import GRDBSQLite

/// A thin prepared statement over the raw SQLite handle, for the ingest hot path where GRDB's
/// per-row argument boxing would cost more than the insert itself (1.5 M rows for train2017).
final class SQLiteStatement {
    private let handle: OpaquePointer
    private var stmt: OpaquePointer?
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ handle: OpaquePointer, _ sql: String) throws {
        self.handle = handle
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK else {
            throw ForgeError(.database, "prepare failed: \(String(cString: sqlite3_errmsg(handle))) — \(sql)")
        }
    }

    deinit { sqlite3_finalize(stmt) }

    @inline(__always) func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(stmt, i, v) }
    @inline(__always) func bind(_ i: Int32, _ v: Double) { sqlite3_bind_double(stmt, i, v) }
    @inline(__always) func bindNull(_ i: Int32) { sqlite3_bind_null(stmt, i) }
    @inline(__always) func bind(_ i: Int32, _ s: String) { sqlite3_bind_text(stmt, i, s, -1, Self.transient) }

    /// Binds a text without copying when it is a span of the mapped file (valid until `step`).
    @inline(__always) func bind(_ i: Int32, _ t: COCOText) {
        switch t {
        case .raw(let p, let n):
            p.withMemoryRebound(to: CChar.self, capacity: n) { sqlite3_bind_text(stmt, i, $0, Int32(n), nil) }
        case .decoded(let s):
            sqlite3_bind_text(stmt, i, s, -1, Self.transient)
        }
    }

    /// Runs the statement; returns whether a row came back.
    @discardableResult func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        defer { sqlite3_reset(stmt) }
        if rc == SQLITE_DONE { return false }
        if rc == SQLITE_ROW { return true }
        throw ForgeError(.database, String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs a one-row query and returns the first column as Int64, or nil when no row.
    func queryInt() throws -> Int64? {
        let rc = sqlite3_step(stmt)
        defer { sqlite3_reset(stmt) }
        if rc == SQLITE_ROW { return sqlite3_column_int64(stmt, 0) }
        if rc == SQLITE_DONE { return nil }
        throw ForgeError(.database, String(cString: sqlite3_errmsg(handle)))
    }
}
