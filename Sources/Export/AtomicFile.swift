import ForgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffered writer to a hidden temporary file next to the destination. `commit(to:)` flushes,
/// fsyncs and renames it over the destination in one step, so readers only ever see the old file
/// or the complete new one; `discard()` (also run on deinit if neither happened) removes it.
final class AtomicFile {
    let tempPath: String
    /// Where errors are reported (the destination the user asked for).
    let reportPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let flushAt = 1 << 20
    private(set) var bytesWritten = 0
    private var finished = false

    private static let counter = Counter()
    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func next() -> Int { lock.lock(); defer { lock.unlock() }; n += 1; return n }
    }

    /// Creates the temporary file in `directory` (the destination's folder).
    init(directory: String, baseName: String, reportPath: String) throws {
        self.reportPath = reportPath
        let dir = directory.isEmpty ? "." : directory
        self.tempPath = (dir as NSString).appendingPathComponent(".\(baseName).tmp-\(getpid())-\(AtomicFile.counter.next())")
        fd = open(tempPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 {
            throw ForgeError(.io, "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))", file: reportPath)
        }
        buffer.reserveCapacity(flushAt + 64 * 1024)
    }

    deinit {
        if !finished { discard() }
    }

    func append(_ s: String) throws {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= flushAt { try flush() }
    }

    private func flush() throws {
        var off = 0
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { raw in
                write(fd, raw.baseAddress! + off, raw.count - off)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ForgeError(.io, "write failed: \(String(cString: strerror(errno)))", file: reportPath)
            }
            off += n
        }
        bytesWritten += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs and atomically renames the temporary file to `path`.
    func commit(to path: String) throws {
        precondition(!finished)
        do {
            try flush()
            if fsync(fd) != 0 {
                throw ForgeError(.io, "fsync failed: \(String(cString: strerror(errno)))", file: path)
            }
            let rc = close(fd)
            fd = -1
            if rc != 0 { throw ForgeError(.io, "close failed: \(String(cString: strerror(errno)))", file: path) }
            if rename(tempPath, path) != 0 {
                throw ForgeError(.io, "cannot move the finished export into place: \(String(cString: strerror(errno)))", file: path)
            }
            finished = true
        } catch {
            discard()
            throw error
        }
    }

    /// Closes and removes the temporary file.
    func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(tempPath)
        finished = true
    }
}
