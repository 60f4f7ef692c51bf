import Foundation
@testable import TensorMath
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `BLASRuntime.setIdlePoll`: OpenBLAS's idle worker burns a core after a threaded product with
/// the built-in poll (2^28 cycles) and sleeps with the trainer's (2^18), products stay correct, the
/// thread count and the environment are unchanged.
final class BLASIdlePollTests: XCTestCase {
    func processCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    func testShortPollStopsTheIdleWorkerBurningACore() throws {
        guard let initial = BLASRuntime.idlePollLog2Cycles else { throw XCTSkip("this OpenBLAS does not export the thread-pool entry points") }
        let threads = BLASRuntime.threadCount
        guard threads >= 2 else { throw XCTSkip("OpenBLAS runs one thread here") }
        defer { BLASRuntime.setIdlePoll(log2Cycles: initial == 0 ? 28 : initial) }
        let environment = getenv("OPENBLAS_THREAD_TIMEOUT").map { String(cString: $0) }
        let n = 384
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        for i in 0..<(n * n) { a.pointer[i] = Float(i % 13) - 6; b.pointer[i] = Float(i % 7) - 3 }
        func product() { BLAS.gemm(.none, .none, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n) }
        /// Process CPU seconds during a 60 ms sleep right after a threaded product.
        func idleBurn() -> Double {
            product()
            let start = processCPUSeconds()
            usleep(60_000)
            return processCPUSeconds() - start
        }
        XCTAssertEqual(BLASRuntime.setIdlePoll(log2Cycles: 28), 28)
        XCTAssertGreaterThan(idleBurn(), 0.015, "with the built-in poll the idle worker should spin through the sleep")
        XCTAssertEqual(BLASRuntime.setIdlePoll(log2Cycles: BLASRuntime.trainingPollLog2Cycles), BLASRuntime.trainingPollLog2Cycles)
        XCTAssertLessThan(idleBurn(), 0.010, "with a 2^18-cycle poll the idle worker should sleep")
        XCTAssertEqual(BLASRuntime.threadCount, threads)
        XCTAssertEqual(getenv("OPENBLAS_THREAD_TIMEOUT").map { String(cString: $0) }, environment)
        // The restarted pool computes the same products (integers: exact in Float).
        for (i, j) in [(0, 0), (17, 300), (383, 383), (200, 5)] {
            var expected: Float = 0
            for x in 0..<n { expected += a.pointer[i * n + x] * b.pointer[x * n + j] }
            XCTAssertEqual(c.pointer[i * n + j], expected, "c[\(i), \(j)]")
        }
    }
}
