import Foundation

/// Counters shared by the worker threads of one run.
final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private var summary: GenerateSummary
    private var _stopped = false

    init(summary: GenerateSummary) { self.summary = summary }

    var stopped: Bool { lock.lock(); defer { lock.unlock() }; return _stopped }

    func stop(reason: String) {
        lock.lock(); defer { lock.unlock() }
        if !_stopped { _stopped = true; summary.stoppedReason = reason }
    }

    func markSent() { lock.lock(); summary.sent += 1; lock.unlock() }

    func recordSuccess(_ outcome: Generator.SampleOutcome, promptTokens: Int, completionTokens: Int) {
        lock.lock(); defer { lock.unlock() }
        summary.succeeded += 1
        summary.promptTokens += promptTokens
        summary.completionTokens += completionTokens
        switch outcome {
        case .ok: summary.samplesOK += 1
        case .parseFailed: summary.parseFailed += 1
        case .truncated: summary.truncated += 1
        }
    }

    func recordError(class cls: String, message: String) {
        lock.lock(); defer { lock.unlock() }
        summary.failed += 1
        summary.errorsByClass[cls, default: 0] += 1
        if summary.firstErrors.count < 5 { summary.firstErrors.append(message) }
    }

    func snapshot() -> GenerateSummary { lock.lock(); defer { lock.unlock() }; return summary }
}

/// Hands jobs to workers in plan order.
final class JobQueue: @unchecked Sendable {
    private let lock = NSLock()
    private var jobs: [Generator.Job]
    private var index = 0

    init(_ jobs: [Generator.Job]) { self.jobs = jobs }

    func next() -> Generator.Job? {
        lock.lock(); defer { lock.unlock() }
        guard index < jobs.count else { return nil }
        defer { index += 1 }
        return jobs[index]
    }
}

/// One progress line per interval: done/total, requests/s, output tokens/s, errors, ETA.
final class ProgressReporter: @unchecked Sendable {
    private let lock = NSLock()
    private let total: Int
    private let interval: Double
    private let sink: ((String) -> Void)?
    private let start = Date()
    private var last = Date()

    init(total: Int, interval: Double, sink: ((String) -> Void)?) {
        self.total = total
        self.interval = interval
        self.sink = sink
    }

    func tick(state: RunState) {
        guard let sink else { return }
        lock.lock()
        let now = Date()
        let s = state.snapshot()
        let done = s.succeeded + s.failed
        guard now.timeIntervalSince(last) >= interval || done == total else { lock.unlock(); return }
        last = now
        lock.unlock()
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let errors = s.errorsByClass.isEmpty ? "0" : s.errorsByClass.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        sink(String(format: "%@: %d/%d sent, %.1f req/s, %.0f out tok/s, ok %d, parse failed %d, truncated %d, errors %@, ETA %.0fs",
                    s.type, done, total, rate, Double(s.completionTokens) / elapsed, s.samplesOK, s.parseFailed, s.truncated, errors, eta))
    }
}
