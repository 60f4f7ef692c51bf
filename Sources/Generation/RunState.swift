import Foundation
import LLMClient

/// Counters of one run. Written by the store-writer thread; read by progress and the end.
final class RunState: @unchecked Sendable {
    private let lock = NSLock()
    private var summary: GenerateSummary

    init(summary: GenerateSummary) { self.summary = summary }

    func markSent() { lock.lock(); summary.sent += 1; lock.unlock() }

    func recordSuccess(_ outcome: SampleWriter.Outcome, promptTokens: Int, completionTokens: Int) {
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

    func update(_ body: (inout GenerateSummary) -> Void) { lock.lock(); body(&summary); lock.unlock() }

    func snapshot() -> GenerateSummary { lock.lock(); defer { lock.unlock() }; return summary }
}

/// Live progress: done/total, requests/s, output tokens/s, errors by class, ETA and cost.
/// `.lines` writes one plain line per interval through the sink; `.terminal` rewrites one
/// status line on stderr.
final class ProgressReporter: @unchecked Sendable {
    private let total: Int
    private let interval: Double
    private let style: ProgressStyle
    private let sink: ((String) -> Void)?
    private let prices: PriceTable
    private let model: String
    private let start = Date()
    private var last = Date()
    private var wroteLive = false

    init(total: Int, interval: Double, style: ProgressStyle, prices: PriceTable, model: String, sink: ((String) -> Void)?) {
        self.total = total
        self.interval = interval
        self.style = style
        self.prices = prices
        self.model = model
        self.sink = sink
    }

    /// Called from the writer thread only.
    func tick(_ s: GenerateSummary, final: Bool = false) {
        let now = Date()
        switch style {
        case .lines:
            guard sink != nil, final || now.timeIntervalSince(last) >= interval else { return }
            last = now
            sink?(line(s, now: now))
        case .terminal:
            guard final || now.timeIntervalSince(last) >= 0.5 else { return }
            last = now
            let text = "\r\u{1B}[K" + line(s, now: now) + (final ? "\n" : "")
            FileHandle.standardError.write(Data(text.utf8))
            wroteLive = !final
        }
    }

    func line(_ s: GenerateSummary, now: Date) -> String {
        let done = s.succeeded + s.failed
        let elapsed = max(now.timeIntervalSince(start), 1e-6)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(max(0, total - done)) / rate : 0
        let errors = s.errorsByClass.isEmpty ? "0" : s.errorsByClass.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let retries = s.retriesByClass.values.reduce(0, +)
        let cost = prices.cost(model: model, promptTokens: s.promptTokens, completionTokens: s.completionTokens)
            .map { String(format: ", ~$%.2f", $0) } ?? ""
        return String(format: "%@: %d/%d done, %.1f req/s, %.0f out tok/s, ok %d, parse failed %d, truncated %d, errors %@, retries %d, ETA %@%@",
                      s.type, done, total, rate, Double(s.completionTokens) / elapsed, s.samplesOK, s.parseFailed, s.truncated,
                      errors, retries, Self.duration(eta), cost)
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
