import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Parsers scan it in place (no copy of a 450 MB JSON);
/// `release(upTo:)` drops pages already consumed so peak RSS stays far below the file size.
public final class MappedFile {
    public let path: String
    public let count: Int
    public let base: UnsafePointer<UInt8>?
    private var releasedUpTo = 0
    private let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ForgeError(.io, "cannot open: \(String(cString: strerror(errno)))", file: path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ForgeError(.io, "cannot stat", file: path) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw ForgeError(.io, "is a directory, expected a file", file: path) }
        count = Int(st.st_size)
        if count == 0 { base = nil; return }
        guard let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ForgeError(.io, "cannot map: \(String(cString: strerror(errno)))", file: path)
        }
        madvise(p, count, MADV_SEQUENTIAL)
        base = UnsafePointer(p.assumingMemoryBound(to: UInt8.self))
    }

    public var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    /// Tell the kernel the bytes before `offset` will not be read again.
    public func release(upTo offset: Int) {
        guard let base else { return }
        let end = (offset / pageSize) * pageSize
        guard end > releasedUpTo + 16 * 1024 * 1024 else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + releasedUpTo), end - releasedUpTo, MADV_DONTNEED)
        releasedUpTo = end
    }

    /// Drop the resident pages lying wholly inside `range` (byte offsets): bytes the caller has
    /// copied elsewhere. A later read of them faults them back in from the file.
    public func release(_ range: Range<Int>) {
        guard let base else { return }
        let start = (max(0, range.lowerBound) + pageSize - 1) / pageSize * pageSize
        let end = min(count, range.upperBound) / pageSize * pageSize
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }
}
