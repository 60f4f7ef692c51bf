import ForgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One generating process per database: an exclusive `flock` on `<db>.lock`. A second process
/// is refused with a clear message instead of racing the first one's journal. The kernel drops
/// the lock when the holder dies, so a `kill -9` never leaves a stale lock behind.
///
/// Inside one process the lock is shared: a registry keeps one `flock` per database, counted by
/// its holders, so several Generators (the concurrent generate branches of a pipeline) work
/// on one database together. Their SQLite writes are serialized by the store's one writer.
/// A holder may claim a sample type: two live Generators of the same type on one database
/// would send the same requests, so the second is refused.
final class RunLock {
    private struct Held {
        var fd: Int32
        var holders: Int
        var types: Set<String>
    }

    private static let registryLock = NSLock()
    nonisolated(unsafe) private static var registry: [String: Held] = [:]

    private var key: String?
    private let type: String?

    init(databasePath: String, type: String? = nil) throws {
        let path = URL(fileURLWithPath: databasePath + ".lock").standardizedFileURL.path
        self.type = type
        Self.registryLock.lock()
        defer { Self.registryLock.unlock() }
        if var held = Self.registry[path] {
            if let type {
                guard !held.types.contains(type) else {
                    throw ForgeError(.database, "another Generator in this process is already generating '\(type)' into this database", file: databasePath)
                }
                held.types.insert(type)
            }
            held.holders += 1
            Self.registry[path] = held
        } else {
            let fd = open(path, O_RDWR | O_CREAT, 0o644)
            guard fd >= 0 else { throw ForgeError(.io, "cannot open lock file", file: path) }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                close(fd)
                throw ForgeError(.database, "another llava-forge process is generating into this database; wait for it or stop it", file: databasePath)
            }
            Self.registry[path] = Held(fd: fd, holders: 1, types: type.map { [$0] } ?? [])
        }
        key = path
    }

    /// Holders of the process's lock on this database right now (0 = not held).
    static func holders(databasePath: String) -> Int {
        let path = URL(fileURLWithPath: databasePath + ".lock").standardizedFileURL.path
        registryLock.lock(); defer { registryLock.unlock() }
        return registry[path]?.holders ?? 0
    }

    func release() {
        Self.registryLock.lock()
        defer { Self.registryLock.unlock() }
        guard let path = key, var held = Self.registry[path] else { return }
        key = nil
        if let type { held.types.remove(type) }
        held.holders -= 1
        if held.holders <= 0 {
            flock(held.fd, LOCK_UN)
            close(held.fd)
            Self.registry[path] = nil
        } else {
            Self.registry[path] = held
        }
    }

    deinit { release() }
}
