import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS process-wide state: which kernel family ("core") runs, and how many threads.
///
/// Why this exists: Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its core in a load-time
/// constructor from the CPU model number. CPUs newer than its tables (e.g. family 6 model 207
/// under KVM) fall back to Prescott (SSE3), 4–5× slower than the SkylakeX kernel the CPU can run.
/// Setting `OPENBLAS_CORETYPE` from inside the process is too late — the constructor already ran.
///
/// The fix, chosen over re-exec'ing the process: OpenBLAS exports `gotoblas_dynamic_quit` (clears
/// the kernel-table pointer) and `gotoblas_dynamic_init` (re-selects it, honouring
/// `OPENBLAS_CORETYPE`). Calling the pair once at start-up, before any BLAS call is in flight,
/// swaps the table in place; buffers and the thread pool do not depend on the core (buffer size
/// is the build's maximum). It works for every host process (CLI, XCTest, benches) without
/// re-exec'ing argv, and leaves the environment as it found it so child processes are unaffected.
/// A result check against a naive product guards the switch; on failure we switch back.
public enum BLASRuntime {
    /// The outcome of core selection, for logs and `describe()`.
    public struct CoreSelection: Sendable, Equatable {
        public var initialCore: String
        public var activeCore: String
        /// Why the core was (or was not) changed.
        public var reason: String
        public var switched: Bool { initialCore.lowercased() != activeCore.lowercased() }
    }

    /// The decision, separated from the act so it can be tested without touching OpenBLAS.
    public enum CorePlan: Equatable, Sendable {
        case keep(reason: String)
        case switchTo(core: String, reason: String)
    }

    /// Environment knob: `LLAVA_FORGE_BLAS_CORE=keep` disables the switch, `=<core name>` forces one.
    public static let overrideVariable = "LLAVA_FORGE_BLAS_CORE"

    public static func plan(currentCore: String, cpu: CPUFeatures, environment: [String: String]) -> CorePlan {
        if let forced = environment[overrideVariable], !forced.isEmpty {
            if forced.lowercased() == "keep" { return .keep(reason: "\(overrideVariable)=keep") }
            if forced.lowercased() == currentCore.lowercased() { return .keep(reason: "\(overrideVariable)=\(forced) already active") }
            return .switchTo(core: forced, reason: "\(overrideVariable)=\(forced)")
        }
        if let chosen = environment["OPENBLAS_CORETYPE"], !chosen.isEmpty {
            return .keep(reason: "OPENBLAS_CORETYPE=\(chosen) set by the environment")
        }
        guard let currentTier = OpenBLASCore.tier(ofCore: currentCore) else {
            return .keep(reason: "core \(currentCore) is not an x86-64 core we rank")
        }
        let cpuTier = OpenBLASCore.tier(of: cpu)
        guard currentTier < cpuTier, let target = OpenBLASCore.preferredCore(for: cpuTier, cpu: cpu) else {
            return .keep(reason: "\(currentCore) already matches the CPU")
        }
        return .switchTo(core: target, reason: "OpenBLAS chose \(currentCore) but the CPU supports \(cpuTier)")
    }

    /// Selects the best core once per process; later calls return the first result. Call it first
    /// thing in `main`, before any other thread can be inside BLAS.
    @discardableResult
    public static func ensureBestCore() -> CoreSelection { selection }

    private static let selection: CoreSelection = selectCore()

    public static var coreName: String { String(cString: openblas_get_corename()) }

    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }

    /// Build configuration string, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Prescott MAX_THREADS=64".
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// One line for logs: core (and how it was chosen), threads, optionally measured GFLOP/s.
    public static func describe(measure: Bool = false) -> String {
        let s = selection
        var text = "OpenBLAS core \(s.activeCore)"
        text += s.switched ? " (switched from \(s.initialCore): \(s.reason))" : " (\(s.reason))"
        text += ", \(threadCount) thread\(threadCount == 1 ? "" : "s")"
        if measure { text += String(format: ", sgemm 1024³ %.1f GFLOP/s", measureSGEMM(size: 1024, repetitions: 5)) }
        return text
    }

    /// Times `repetitions` square products of `size` after one warm-up; returns GFLOP/s.
    public static func measureSGEMM(size n: Int, repetitions: Int) -> Double {
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.2 }
        BLAS.gemm(.none, .none, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<repetitions {
            BLAS.gemm(.none, .none, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return 2 * Double(n) * Double(n) * Double(n) * Double(repetitions) / seconds / 1e9
    }

    // MARK: - Switching

    private static func selectCore() -> CoreSelection {
        let initial = coreName
        let plan = plan(currentCore: initial, cpu: CPUFeatures.current(), environment: ProcessInfo.processInfo.environment)
        switch plan {
        case .keep(let reason):
            return CoreSelection(initialCore: initial, activeCore: initial, reason: reason)
        case .switchTo(let target, let reason):
            guard DynamicArch.canSwitch(to: target) else {
                return CoreSelection(initialCore: initial, activeCore: initial,
                                     reason: "\(reason); this OpenBLAS cannot switch in-process (set OPENBLAS_CORETYPE=\(target) before start)")
            }
            DynamicArch.switchCore(to: target)
            let active = coreName
            if active.lowercased() == target.lowercased(), productIsCorrect() {
                return CoreSelection(initialCore: initial, activeCore: active, reason: reason)
            }
            DynamicArch.switchCore(to: initial)
            return CoreSelection(initialCore: initial, activeCore: coreName,
                                 reason: "\(reason); switch to \(target) failed its check (got \(active)), kept \(initial)")
        }
    }

    /// Re-selects the kernel family now (tests and benchmarks only: no other thread may be inside
    /// BLAS). Returns the core active afterwards, or nil when this OpenBLAS cannot switch.
    static func reselectCore(_ core: String) -> String? {
        guard DynamicArch.canSwitch(to: core) else { return nil }
        DynamicArch.switchCore(to: core)
        return coreName
    }

    /// A 67×45×53 product (odd sizes exercise the kernels' edge paths) against a Double loop.
    static func productIsCorrect() -> Bool {
        let m = 67, n = 45, k = 53
        var a = [Float](repeating: 0, count: m * k), b = [Float](repeating: 0, count: k * n)
        for i in 0..<a.count { a[i] = Float((i * 37) % 101) / 50 - 1 }
        for i in 0..<b.count { b[i] = Float((i * 53) % 89) / 44 - 1 }
        var c = [Float](repeating: 0, count: m * n)
        BLAS.gemm(.none, .none, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n)
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(a[i * k + p]) * Double(b[p * n + j]) }
                if abs(Double(c[i * n + j]) - sum) > 1e-4 * max(1, abs(sum)) { return false }
            }
        }
        return true
    }
}

extension BLASRuntime {
    /// Runs `body` with OpenBLAS limited to one thread, then restores the count: for callers that
    /// parallelise over independent small products themselves (each worker's sgemm then runs in
    /// the worker, with no hand-off to OpenBLAS's threads). No other thread of the process should
    /// rely on BLAS's thread count meanwhile (the count is process-wide).
    public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
        let previous = Int(openblas_get_num_threads())
        if previous > 1 { openblas_set_num_threads(1) }
        defer { if previous > 1 { openblas_set_num_threads(Int32(previous)) } }
        return try body()
    }
}

/// OpenBLAS DYNAMIC_ARCH entry points, looked up at run time so the package still links against
/// a fixed-target OpenBLAS (where they do not exist and no switch is attempted).
private enum DynamicArch {
    typealias VoidFunction = @convention(c) () -> Void

    static func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        guard let handle = dlopen(nil, RTLD_NOW) else { return nil }
        return dlsym(handle, name)
    }

    static func canSwitch(to core: String) -> Bool {
        symbol("gotoblas_dynamic_init") != nil && symbol("gotoblas_dynamic_quit") != nil
            && symbol(OpenBLASCore.tableSymbol(forCore: core)) != nil
    }

    /// Re-runs OpenBLAS's core selection with `OPENBLAS_CORETYPE=core`, then restores the variable.
    static func switchCore(to core: String) {
        guard let quitSymbol = symbol("gotoblas_dynamic_quit"), let initSymbol = symbol("gotoblas_dynamic_init") else { return }
        let quit = unsafeBitCast(quitSymbol, to: VoidFunction.self)
        let reinit = unsafeBitCast(initSymbol, to: VoidFunction.self)
        let previous = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        setenv("OPENBLAS_CORETYPE", core, 1)
        quit()
        reinit()
        if let previous { setenv("OPENBLAS_CORETYPE", previous, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
    }
}
