import Dispatch
import Foundation

/// Opt-in wall-clock accounting per op and per sgemm shape, for benchmarks (`bench/TrainBench`):
/// where a training step's time goes. Off by default; when off, `measure` is one branch on a
/// global before calling the body. Sections may nest (an attention section contains its sgemms),
/// so totals are per name, not a partition of the step.
public enum OpProfile {
    nonisolated(unsafe) public static var isEnabled = false

    public struct Entry: Sendable {
        public var name: String
        public var calls: Int
        public var seconds: Double
        /// Floating-point operations recorded under this name (sgemm shapes: 2·m·n·k per call).
        public var flops: Double
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var entries: [String: Entry] = [:]

    @inline(__always)
    public static func measure<R>(_ name: @autoclosure () -> String, flops: @autoclosure () -> Double = 0, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        record(name(), seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, flops: flops())
        return result
    }

    public static func record(_ name: String, seconds: Double, flops: Double = 0) {
        lock.lock()
        defer { lock.unlock() }
        var entry = entries[name] ?? Entry(name: name, calls: 0, seconds: 0, flops: 0)
        entry.calls += 1
        entry.seconds += seconds
        entry.flops += flops
        entries[name] = entry
    }

    public static func reset() {
        lock.lock()
        entries.removeAll()
        lock.unlock()
    }

    /// Entries, most time first.
    public static func snapshot() -> [Entry] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.sorted { $0.seconds > $1.seconds }
    }
}
