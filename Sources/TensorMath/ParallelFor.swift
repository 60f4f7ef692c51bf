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

    /// `body(item)` once for each item of `0..<count`, the items claimed one at a time (in order)
    /// by up to `threadCount` workers: items of uneven cost balance themselves, and a worker the
    /// OS delays takes fewer. Which worker runs an item is not fixed, so `body` must write only
    /// that item's outputs (its result then does not depend on the schedule).
    public static func forEachItem(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let workers = min(threadCount, count)
        if workers <= 1 {
            for item in 0..<count { body(item) }
            return
        }
        let next = ItemCounter()
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let item = next.claim()
                if item >= count { return }
                body(item)
            }
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

/// The next unclaimed item of `Parallel.forEachItem` (a lock: items take ≥ tens of µs, so a claim's
/// ~50 ns is noise).
private final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0

    func claim() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let item = next
        next += 1
        return item
    }
}
