import ForgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One generating process per database: an exclusive `flock` on `<db>.lock`. A second process
/// is refused with a clear message instead of racing the first one's journal. The kernel drops
/// the lock when the holder dies, so a `kill -9` never leaves a stale lock behind.
final class RunLock {
    private var fd: Int32

    init(databasePath: String) throws {
        let path = databasePath + ".lock"
        fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw ForgeError(.io, "cannot open lock file", file: path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            close(fd)
            fd = -1
            throw ForgeError(.database, "another llava-forge process is generating into this database; wait for it or stop it", file: databasePath)
        }
    }

    func release() {
        if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 }
    }

    deinit { release() }
}
