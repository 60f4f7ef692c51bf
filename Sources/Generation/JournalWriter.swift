import Foundation
import LLMClient

/// Hands engine events from the network loop to the one thread that writes the store, and
/// groups them so each transaction carries up to `batch` results or `interval` seconds of them
/// (one commit per result could not keep up with thousands of answers a second).
final class JournalWriter: @unchecked Sendable {
    enum Event {
        case started(jobID: Int64)
        case finished(ChatOutcome)
    }

    private let condition = NSCondition()
    private var events: [Event] = []
    private var finishedCount = 0
    private var closed = false
    let batch: Int
    let interval: Double

    init(batch: Int, interval: Double) {
        self.batch = max(1, batch)
        self.interval = max(0.001, interval)
    }

    /// From the loop thread: never blocks beyond the queue's lock.
    func post(_ event: Event) {
        condition.lock()
        events.append(event)
        if case .finished = event { finishedCount += 1 }
        let wake = finishedCount >= batch
        condition.unlock()
        if wake { condition.signal() }
    }

    func close() {
        condition.lock()
        closed = true
        condition.unlock()
        condition.signal()
    }

    /// The writer thread's loop: `apply` gets each group (in order); `idle` runs at least every
    /// `tick` seconds (for progress). Returns once closed and drained.
    func drain(tick: Double, apply: ([Event]) -> Void, idle: () -> Void) {
        var lastTick = Date()
        while true {
            condition.lock()
            // Wait for the first event (or close), then give the batch `interval` to fill.
            while events.isEmpty && !closed {
                if !condition.wait(until: Date().addingTimeInterval(tick)) { break }
            }
            if !events.isEmpty && !closed && finishedCount < batch {
                let deadline = Date().addingTimeInterval(interval)
                while finishedCount < batch && !closed {
                    if !condition.wait(until: deadline) { break }
                }
            }
            let group = events
            events.removeAll(keepingCapacity: true)
            finishedCount = 0
            let done = closed
            condition.unlock()
            if !group.isEmpty { apply(group) }
            if Date().timeIntervalSince(lastTick) >= tick || done {
                idle()
                lastTick = Date()
            }
            if done && group.isEmpty { return }
        }
    }
}
