import Dispatch
import Foundation

/// Splits element-wise work over the machine's cores. `DispatchQueue.concurrentPerform` reuses
/// libdispatch's worker pool, so there is no thread start-up per call; small jobs run inline
/// because a dispatch round-trip (~µs) would cost more than the work.
public enum Parallel {
    /// Worker count; defaults to the active processor count (2 on the reference machine).
    nonisolated(unsafe) public static var threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` with disjoint, contiguous sub-ranges covering `0..<count`. Ranges have at
    /// least `grain` items unless `count` is smaller; `body` must only write its own range.
    public static func forEachRange(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = min(threadCount, max(1, count / max(1, grain)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        let base = count / chunks, extra = count % chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * base + min(chunk, extra)
            let end = start + base + (chunk < extra ? 1 : 0)
            body(start..<end)
        }
    }

    /// Row-parallel helper: `body(row)` for each row, grouped so each worker gets ≥ `minWork`
    /// floats of work (`rowWork` floats per row).
    public static func forEachRow(_ rows: Int, rowWork: Int, minWork: Int = 16_384, _ body: (Int) -> Void) {
        let grain = max(1, minWork / max(1, rowWork))
        forEachRange(rows, grain: grain) { range in
            for row in range { body(row) }
        }
    }

    /// `body(chunk, range)` for `chunks` (default: the thread count, at most `count`) contiguous
    /// ranges covering `0..<count`, one per worker, with the chunk's index (for per-worker scratch).
    public static func forEachChunk(_ count: Int, chunks requested: Int? = nil, _ body: (Int, Range<Int>) -> Void) {
        if count <= 0 { return }
        let chunks = max(1, min(requested ?? threadCount, count))
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        let base = count / chunks, extra = count % chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let start = chunk * base + min(chunk, extra)
            body(chunk, start..<(start + base + (chunk < extra ? 1 : 0)))
        }
    }
}
