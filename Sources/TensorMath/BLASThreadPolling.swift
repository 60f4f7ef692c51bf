import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How long OpenBLAS's idle worker threads poll for work before they sleep.
///
/// Why: after each multi-threaded product, an OpenBLAS 0.3.21 worker keeps polling for the next
/// one for 2^28 TSC cycles (≈ 0.13 s at 2 GHz) — a core at 100 % (measured: 100 ms of process CPU
/// during a 100 ms sleep after one 2-thread sgemm). A training step alternates threaded sgemms
/// with our own parallel sections (attention work items, RMSNorm, SwiGLU, AdamW, the loss) every
/// few milliseconds, so the poller never sleeps and competes with our two workers for the two
/// cores. OpenBLAS reads `OPENBLAS_THREAD_TIMEOUT` (log2 cycles, 4…30) only when it starts its
/// threads, which its load-time constructor already did; so this sets the variable, has OpenBLAS
/// re-read its environment (`openblas_read_env`), puts the variable back as it was (children see
/// the caller's environment), and stops the pool (`blas_thread_shutdown_`): the next threaded
/// product starts it again, same thread count, with the new timeout. A shorter poll costs a
/// wake-up (tens of µs) when a product follows an idle gap longer than it; back-to-back products
/// still find the worker polling.
extension BLASRuntime {
    /// The trainer's poll: 2^18 cycles ≈ 0.13 ms, about one small product's duration.
    public static let trainingPollLog2Cycles = 18

    /// Sets the idle poll to 2^`log2Cycles` cycles (clamped to OpenBLAS's 4…30) and returns the
    /// value now in force, or nil when this OpenBLAS does not export the entry points (then
    /// nothing changed). No other thread may be inside BLAS meanwhile (the pool is restarted).
    @discardableResult
    public static func setIdlePoll(log2Cycles requested: Int) -> Int? {
        guard let handle = dlopen(nil, RTLD_NOW),
              let readEnv = dlsym(handle, "openblas_read_env"),
              let shutdown = dlsym(handle, "blas_thread_shutdown_"),
              let current = dlsym(handle, "openblas_thread_timeout") else { return nil }
        typealias VoidFunction = @convention(c) () -> Void
        typealias IntFunction = @convention(c) () -> Int32
        let timeout = unsafeBitCast(current, to: IntFunction.self)
        let value = min(30, max(4, requested))
        if Int(timeout()) == value { return value }
        pollLock.lock()
        defer { pollLock.unlock() }
        let name = "OPENBLAS_THREAD_TIMEOUT", previous = getenv(name).map { String(cString: $0) }
        setenv(name, String(value), 1)
        unsafeBitCast(readEnv, to: VoidFunction.self)()
        if let previous { setenv(name, previous, 1) } else { unsetenv(name) }
        unsafeBitCast(shutdown, to: VoidFunction.self)()
        return Int(timeout())
    }

    /// The trainer's setting: `trainingPollLog2Cycles`, unless the user set OPENBLAS_THREAD_TIMEOUT
    /// (then OpenBLAS already runs with it, and it is left alone). Returns the value in force.
    @discardableResult
    public static func useTrainingIdlePoll() -> Int? {
        if let chosen = ProcessInfo.processInfo.environment["OPENBLAS_THREAD_TIMEOUT"], !chosen.isEmpty { return idlePollLog2Cycles }
        return setIdlePoll(log2Cycles: trainingPollLog2Cycles)
    }

    /// The poll in force (log2 cycles; 0 = OpenBLAS's built-in 28), nil if unknown.
    public static var idlePollLog2Cycles: Int? {
        guard let handle = dlopen(nil, RTLD_NOW), let current = dlsym(handle, "openblas_thread_timeout") else { return nil }
        return Int(unsafeBitCast(current, to: (@convention(c) () -> Int32).self)())
    }

    private static let pollLock = NSLock()
}
