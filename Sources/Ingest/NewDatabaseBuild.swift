import ForgeCore
import Foundation
import GRDB
import Store
#if canImport(Glibc)
import Glibc
#endif

/// Ingest into a database file that does not exist yet: build it whole beside the target
/// (`<db>.ingest-<pid>.tmp`) and link it into place only when complete.
///
/// Why: in the ordinary path every page of the new database is written twice (WAL, then the
/// checkpoint) and fsynced; a brand-new file has nothing to protect, so while loading it uses an
/// in-memory rollback journal (ROLLBACK still works) and `synchronous = OFF`. Crash safety comes
/// from the rename instead: a process killed mid-load leaves only its `.tmp` file (removed by the
/// next build into the same path once that pid is gone), never a half-written database at the
/// target. The finished file is fsynced, switched to WAL, and published with `link(2)`, which
/// fails rather than replaces if a database appeared at the target meanwhile.
struct NewDatabaseBuild {
    let path: String

    var tempPath: String { "\(path).ingest-\(getpid()).tmp" }

    func run(_ options: IngestOptions) throws -> [IngestFileReport] {
        let mapped = try COCOIngestor.mapFiles(options)  // a missing input fails before anything is created
        var clock = PhaseClock(observer: options.onPhase)
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        removeStaleBuilds()
        let tmp = tempPath
        Self.removeDatabaseFiles(tmp)
        var published = false
        defer { if !published { Self.removeDatabaseFiles(tmp) } }

        let reports: [IngestFileReport]
        do {
            var config = Configuration()
            config.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = MEMORY")
                try db.execute(sql: "PRAGMA synchronous = OFF")
                try db.execute(sql: "PRAGMA foreign_keys = ON")
                try db.execute(sql: "PRAGMA cache_size = -262144")  // 256 MB: the whole train2017 store stays in cache
                try db.execute(sql: "PRAGMA temp_store = MEMORY")   // CREATE INDEX sorts in memory
            }
            let queue = try DatabaseQueue(path: tmp, configuration: config)
            try ForgeSchema.migrator.migrate(queue)
            clock.lap("create database")
            reports = try queue.inDatabase { db in
                var reports: [IngestFileReport] = []
                try db.inTransaction {
                    reports = try COCOIngestor.load(mapped, db: db, options: options, clock: &clock)
                    return .commit
                }
                clock.lap("commit")
                try db.execute(sql: "PRAGMA journal_mode = WAL")  // what ForgeDatabase expects
                return reports
            }
            try queue.close()
        } catch let e as DatabaseError {
            throw ForgeError(.database, e.message ?? "\(e)", file: path)
        }
        try Self.fsync(path: tmp)
        guard link(tmp, path) == 0 else {
            let reason = errno == EEXIST ? "a database appeared at this path during the ingest; nothing was changed, run the ingest again"
                                         : "cannot move the new database into place: \(String(cString: strerror(errno)))"
            throw ForgeError(.io, reason, file: path)
        }
        published = true
        unlink(tmp)
        try Self.fsync(path: dir.isEmpty ? "." : dir)
        clock.lap("publish")
        return reports
    }

    /// Leftovers of builds into the same target whose process is gone (killed mid-load).
    func removeStaleBuilds() {
        let dir = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + ".ingest-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir) else { return }
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            let pidText = name.dropFirst(prefix.count).dropLast(4)
            guard let pid = Int32(pidText), pid != getpid() else { continue }
            if kill(pid, 0) == 0 || errno != ESRCH { continue }  // still running (or not ours to judge)
            Self.removeDatabaseFiles(dir.isEmpty ? name : dir + "/" + name)
        }
    }

    static func removeDatabaseFiles(_ file: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(file + suffix) }
    }

    static func fsync(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ForgeError(.io, "cannot open for fsync: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        guard Glibc.fsync(fd) == 0 else { throw ForgeError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: path) }
    }
}
