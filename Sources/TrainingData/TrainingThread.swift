import Foundation

/// One long-lived thread that runs training work for callers on short-lived threads (the pipeline
/// runs each stage on a thread of its own that exits afterwards).
///
/// Why: training inside a pipeline stage thread made the process abort intermittently with heap
/// corruption found later at an unrelated free (SQLite close, exit) — seen in XCTest and in
/// `llava-forge run`, never with the same work on the main thread or in `llava-forge train`. The
/// working theory is OpenBLAS's per-thread buffers being released when a calling thread exits;
/// keeping every BLAS call of a run on one thread that never exits avoids that whatever the cause.
public final class TrainingThread: @unchecked Sendable {
    public static let shared = TrainingThread()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "llava-forge training"
        thread.stackSize = 16 << 20
        thread.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Runs `body` on the training thread and waits for it (runs inline when already there).
    public func run<T>(_ body: @escaping () throws -> T) throws -> T {
        if Thread.current.name == "llava-forge training" { return try body() }
        var result: Result<T, Error>?
        let done = DispatchSemaphore(value: 0)
        condition.lock()
        jobs.append {
            result = Result { try body() }
            done.signal()
        }
        condition.signal()
        condition.unlock()
        done.wait()
        return try result!.get()
    }
}
