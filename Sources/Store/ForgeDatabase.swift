import Foundation
import ForgeCore
import GRDB

/// The project's SQLite store (WAL mode, one file). Every stage reads and writes through it;
/// the schema is versioned by `ForgeSchema` migrations so old databases upgrade in place.
public final class ForgeDatabase {
    public let path: String
    public let pool: DatabasePool

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // Reads by image id walk captions/boxes stored in file order (random pages): a memory
            // map turns each page visit from a pread syscall into a load (context --all: 3× less
            // time); a larger page cache keeps index pages hot. Both are per connection.
            try db.execute(sql: "PRAGMA mmap_size = 4294967296")
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try ForgeSchema.migrator.migrate(pool)
        } catch let e as DatabaseError {
            throw ForgeError(.database, e.message ?? "\(e)", file: path)
        }
    }

    public func read<T>(_ body: (Database) throws -> T) throws -> T { try pool.read(body) }
    public func write<T>(_ body: (Database) throws -> T) throws -> T { try pool.write(body) }

    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "?" }
    }
}
