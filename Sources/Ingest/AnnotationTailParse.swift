import ForgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The annotations array of a large instances file parsed by two threads: this one from the
/// start, a helper from a record boundary guessed near the middle (train2017: 447 MB, ~2 s on
/// one core, most of the ingest's critical path).
///
/// The guess is only a guess — the bytes `}`, `,`, `{` (whitespace allowed) found after the
/// midpoint. It is *confirmed* when this thread's own element-by-element parse arrives at an
/// element start exactly there: then the helper parsed true elements of the same array with the
/// same reader and an identical sink state, so its records are exactly what this thread would
/// have produced, and they are absorbed with their indexes shifted. If this thread passes the
/// guess inside a record, or the helper failed anywhere (a bad record, a misread start), the
/// helper's work is dropped and this thread parses on as if there were no helper — so errors are
/// the serial path's, with the same record index and line. The helper never outlives `readHead`.
final class AnnotationTailParse<S: COCOSink>: @unchecked Sendable {
    /// Offset of the guessed element start (a `{`).
    let start: Int
    private var sink: S
    private var end = 0
    private var failed = false
    private var cancelled = false
    private let lock = NSLock()
    private let done = DispatchSemaphore(value: 0)
    private var joined = false

    private struct Stop: Error {}

    private init(start: Int, sink: S) {
        self.start = start
        self.sink = sink
    }

    /// Starts the helper when the array (at `sc`, before its `[`) is at least `minimumBytes`
    /// from the end of the file and a boundary is found past its middle; else nil.
    static func start(after sc: inout JSONScanner, file: MappedFile, reader: COCOReader, sink: S, minimumBytes: Int) -> AnnotationTailParse? {
        guard sc.peek() == 0x5B, let base = file.base else { return nil }
        let remaining = file.count - sc.pos
        guard remaining >= max(minimumBytes, 64) else { return nil }
        guard let candidate = boundary(in: base, from: sc.pos + remaining / 2, to: min(file.count, sc.pos + remaining / 2 + (8 << 20))) else { return nil }
        let tail = AnnotationTailParse(start: candidate, sink: sink)
        let path = file.path, count = file.count
        let basePointer = UnsafePointer<UInt8>(base)
        Thread.detachNewThread { tail.parseTail(base: basePointer, count: count, path: path, reader: reader) }
        return tail
    }

    /// The offset of the `{` of the first `}` ws `,` ws `{` at or after `from` (and before `to`).
    static func boundary(in base: UnsafePointer<UInt8>, from: Int, to: Int) -> Int? {
        var i = from
        @inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
        while i < to {
            guard base[i] == 0x7D else { i += 1; continue }
            var j = i + 1
            while j < to, isSpace(base[j]) { j += 1 }
            guard j < to, base[j] == 0x2C else { i += 1; continue }
            j += 1
            while j < to, isSpace(base[j]) { j += 1 }
            if j < to, base[j] == 0x7B { return j }
            i += 1
        }
        return nil
    }

    /// The helper thread: elements from `start` to the array's closing `]`.
    private func parseTail(base: UnsafePointer<UInt8>, count: Int, path: String, reader: COCOReader) {
        var sc = JSONScanner(base: base, count: count, file: path)
        sc.pos = start
        var index = 0
        var releasedUpTo = start
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        do {
            while true {
                if index & 1023 == 0, isCancelled { throw Stop() }
                try reader.readAnnotation(&sc, index: index, sink: &sink)
                index += 1
                // Consumed pages of this half, as `MappedFile.release` does for the first.
                if sc.pos - releasedUpTo > 16 << 20 {
                    let from = (releasedUpTo + pageSize - 1) / pageSize * pageSize, to = sc.pos / pageSize * pageSize
                    if to > from { madvise(UnsafeMutableRawPointer(mutating: base + from), to - from, MADV_DONTNEED) }
                    releasedUpTo = sc.pos
                }
                guard let c = sc.peek() else { throw Stop() }
                sc.pos += 1
                if c == 0x2C { continue }
                if c == 0x5D { end = sc.pos; break }
                throw Stop()
            }
        } catch {
            failed = true
        }
        done.signal()
    }

    private var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }

    /// Stops the helper (if still running) and waits for it; its records are dropped.
    private func abandon() {
        guard !joined else { return }
        lock.lock(); cancelled = true; lock.unlock()
        done.wait()
        joined = true
        failed = true
    }

    /// This thread's part: the array from its `[`, element by element, until it reaches the
    /// helper's start (absorb and jump to the helper's end) or the end of the array.
    func readHead(_ sc: inout JSONScanner, file: MappedFile, reader: COCOReader, sink: inout S) throws {
        defer { abandon() }  // never leave the helper reading a mapping that may go away
        let record: RecordPath = "annotations"
        try sc.expect(0x5B, record: record)
        if sc.peek() == 0x5D { sc.pos += 1; return }
        var index = 0
        var helper = true
        while true {
            if helper {
                sc.skipWhitespace()
                if sc.pos == start {
                    done.wait()
                    joined = true
                    if !failed {
                        sink.absorbAnnotationTail(self.sink, indexOffset: index)
                        AnnotationTailStats.countAbsorbed()
                        sc.pos = end
                        file.release(upTo: sc.pos)
                        return
                    }
                    helper = false  // the helper stopped at a bad record: parse it here, for the real error
                } else if sc.pos > start {
                    abandon()  // the guess was inside a record
                    helper = false
                }
            }
            try reader.readAnnotation(&sc, index: index, sink: &sink)
            if index & 4095 == 0 { file.release(upTo: sc.pos) }
            index += 1
            guard let c = sc.peek() else { throw sc.error("unexpected end of file inside an array", record: record) }
            sc.pos += 1
            if c == 0x2C { continue }
            if c == 0x5D { return }
            throw sc.error("expected ',' or ']' but found \(sc.describeByte(c))", at: sc.pos - 1, record: record)
        }
    }
}

/// How many helper halves were confirmed and absorbed in this process (tests check that the
/// two-thread path really ran).
enum AnnotationTailStats {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var count = 0

    static func countAbsorbed() { lock.lock(); count += 1; lock.unlock() }
    static var absorbed: Int { lock.lock(); defer { lock.unlock() }; return count }
}
