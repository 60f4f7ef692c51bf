import ForgeCore
import Foundation
@testable import TensorMath
import XCTest

/// sgemm/sgemv against naive Float64 loops, and the OpenBLAS core switch.
final class BLASTests: XCTestCase {
    override class func setUp() {
        super.setUp()
        BLASRuntime.ensureBestCore()
    }

    /// All four transpose combinations, odd sizes (kernel edge paths), padded leading dimensions,
    /// alpha and beta.
    func testGEMMAgainstNaiveLoopForEveryTransposeCombination() {
        var rng = SeededRandom(seed: 1)
        let sizes = [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 1, 9), (3, 129, 31)]
        for (m, n, k) in sizes {
            for transA in [Transpose.none, .transpose] {
                for transB in [Transpose.none, .transpose] {
                    // Logical A [m, k], B [k, n]; stored transposed when asked, with 3 floats of row padding.
                    let a = TestData.random(m * k, &rng), b = TestData.random(k * n, &rng), c0 = TestData.random(m * n, &rng)
                    let storedA = transA == .none ? a : transposed(a, rows: m, cols: k)
                    let storedB = transB == .none ? b : transposed(b, rows: k, cols: n)
                    let aCols = transA == .none ? k : m, aRows = transA == .none ? m : k
                    let bCols = transB == .none ? n : k, bRows = transB == .none ? k : n
                    let lda = aCols + 3, ldb = bCols + 3, ldc = n + 3
                    let aBuffer = TestData.retained(FloatBuffer(count: aRows * lda)), bBuffer = TestData.retained(FloatBuffer(count: bRows * ldb))
                    let cBuffer = TestData.retained(FloatBuffer(count: m * ldc))
                    for r in 0..<aRows { for c in 0..<aCols { aBuffer.pointer[r * lda + c] = Float(storedA[r * aCols + c]) } }
                    for r in 0..<bRows { for c in 0..<bCols { bBuffer.pointer[r * ldb + c] = Float(storedB[r * bCols + c]) } }
                    for r in 0..<m { for c in 0..<n { cBuffer.pointer[r * ldc + c] = Float(c0[r * n + c]) } }
                    let alpha: Float = 0.75, beta: Float = -0.5
                    BLAS.gemm(transA, transB, m: m, n: n, k: k, alpha: alpha, a: aBuffer.pointer, lda: lda, b: bBuffer.pointer, ldb: ldb,
                              beta: beta, c: cBuffer.pointer, ldc: ldc)
                    let product = naiveProduct(a.map { Double(Float($0)) }, b.map { Double(Float($0)) }, m: m, n: n, k: k)
                    var expected = [Double](), actual = [Float]()
                    for r in 0..<m {
                        for c in 0..<n {
                            expected.append(Double(alpha) * product[r * n + c] + Double(beta) * Double(Float(c0[r * n + c])))
                            actual.append(cBuffer.pointer[r * ldc + c])
                        }
                    }
                    assertClose(actual, expected, rtol: 1e-5, atol: 2e-5 * Double(k), "gemm \(transA)/\(transB) \(m)×\(n)×\(k)")
                    // Padding columns of C are untouched.
                    for r in 0..<m { for c in n..<ldc { XCTAssertEqual(cBuffer.pointer[r * ldc + c], 0) } }
                }
            }
        }
    }

    func testGEMVBothOrientations() {
        var rng = SeededRandom(seed: 2)
        let m = 37, n = 21
        let a = TestData.random(m * n, &rng), x = TestData.random(max(m, n), &rng), y0 = TestData.random(max(m, n), &rng)
        let aBuffer = TestData.buffer(a)
        for trans in [Transpose.none, .transpose] {
            let inCount = trans == .none ? n : m, outCount = trans == .none ? m : n
            let xBuffer = TestData.buffer(Array(x[0..<inCount])), yBuffer = TestData.buffer(Array(y0[0..<outCount]))
            BLAS.gemv(trans, m: m, n: n, alpha: 2, a: aBuffer.pointer, lda: n, x: xBuffer.pointer, beta: 0.5, y: yBuffer.pointer)
            let matrix = trans == .none ? a.map { Double(Float($0)) } : transposed(a.map { Double(Float($0)) }, rows: m, cols: n)
            let product = naiveProduct(matrix, x[0..<inCount].map { Double(Float($0)) }, m: outCount, n: 1, k: inCount)
            let expected = (0..<outCount).map { 2 * product[$0] + 0.5 * Double(Float(y0[$0])) }
            assertClose(yBuffer.toArray(), expected, rtol: 1e-5, atol: 1e-4, "gemv \(trans)")
        }
    }

    func testEmptyProductsLeaveOutputAlone() {
        let c = TestData.filled(4, 3)
        let a = TestData.retained(FloatBuffer(count: 4)), b = TestData.retained(FloatBuffer(count: 4))
        BLAS.gemm(.none, .none, m: 0, n: 2, k: 2, a: a.pointer, lda: 2, b: b.pointer, ldb: 2, c: c.pointer, ldc: 2)
        XCTAssertEqual(c.toArray(), [3, 3, 3, 3])
        // k = 0: C = beta·C.
        BLAS.gemm(.none, .none, m: 2, n: 2, k: 0, a: a.pointer, lda: 1, b: b.pointer, ldb: 2, beta: 0.5, c: c.pointer, ldc: 2)
        XCTAssertEqual(c.toArray(), [1.5, 1.5, 1.5, 1.5])
    }

    // MARK: - Core selection

    static let skylakeFlags: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
    static let intelAVX512 = CPUFeatures(vendor: "GenuineIntel", flags: skylakeFlags)

    func testPlanSwitchesPrescottToSkylakeXOnAnAVX512CPU() {
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: Self.intelAVX512, environment: [:]),
                       .switchTo(core: "SkylakeX", reason: "OpenBLAS chose Prescott but the CPU supports avx512"))
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Haswell", cpu: Self.intelAVX512, environment: [:]).switchTarget, "SkylakeX")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "SkylakeX", cpu: Self.intelAVX512, environment: [:]).switchTarget, nil)
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Cooperlake", cpu: Self.intelAVX512, environment: [:]).switchTarget, nil)
    }

    func testPlanRespectsTheCPUAndTheEnvironment() {
        let avx2Intel = CPUFeatures(vendor: "GenuineIntel", flags: ["avx", "avx2", "fma"])
        let avx2AMD = CPUFeatures(vendor: "AuthenticAMD", flags: ["avx", "avx2", "fma"])
        let old = CPUFeatures(vendor: "GenuineIntel", flags: ["sse3"])
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: avx2Intel, environment: [:]).switchTarget, "Haswell")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: avx2AMD, environment: [:]).switchTarget, "Zen")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: old, environment: [:]).switchTarget, nil)
        XCTAssertEqual(BLASRuntime.plan(currentCore: "SkylakeX", cpu: avx2Intel, environment: [:]).switchTarget, nil, "never downgrade")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "neoversen1", cpu: Self.intelAVX512, environment: [:]).switchTarget, nil, "unknown cores untouched")
        // AVX-512F alone is not enough for the SkylakeX kernels.
        let partial = CPUFeatures(vendor: "GenuineIntel", flags: ["avx", "avx2", "fma", "avx512f"])
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: partial, environment: [:]).switchTarget, "Haswell")
        // Environment overrides.
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: Self.intelAVX512, environment: ["LLAVA_FORGE_BLAS_CORE": "keep"]).switchTarget, nil)
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: Self.intelAVX512, environment: ["LLAVA_FORGE_BLAS_CORE": "Haswell"]).switchTarget, "Haswell")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: Self.intelAVX512, environment: ["OPENBLAS_CORETYPE": "Prescott"]).switchTarget, nil)
    }

    func testCPUInfoParsing() {
        let text = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Xeon(R) Processor
        flags\t\t: fpu sse3 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl

        processor\t: 1
        vendor_id\t: Other
        flags\t\t: fpu
        """
        let cpu = CPUFeatures.parse(cpuinfo: text)
        XCTAssertEqual(cpu.vendor, "GenuineIntel")
        XCTAssertTrue(cpu.hasAVX512)
        XCTAssertEqual(OpenBLASCore.tier(of: cpu), .avx512)
        XCTAssertEqual(OpenBLASCore.tier(ofCore: "PRESCOTT"), .generic)
        XCTAssertEqual(CPUFeatures.parse(cpuinfo: "").flags, [])
    }

    /// On this machine: after the switch, the active core matches the CPU's tier, and products are
    /// still right (the switch is done in-process under the test runner too).
    func testEnsureBestCoreKeepsProductsCorrect() {
        let selection = BLASRuntime.ensureBestCore()
        XCTAssertEqual(BLASRuntime.ensureBestCore(), selection, "selected once per process")
        XCTAssertEqual(selection.activeCore.lowercased(), BLASRuntime.coreName.lowercased())
        let cpu = CPUFeatures.current()
        if ProcessInfo.processInfo.environment["LLAVA_FORGE_BLAS_CORE"] == nil, ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
           let tier = OpenBLASCore.tier(ofCore: selection.initialCore), tier < OpenBLASCore.tier(of: cpu) {
            XCTAssertTrue(selection.switched, "expected a switch: \(selection)")
            XCTAssertEqual(OpenBLASCore.tier(ofCore: BLASRuntime.coreName), OpenBLASCore.tier(of: cpu), BLASRuntime.describe())
        }
        for threads in [1, 2] {
            let saved = BLASRuntime.threadCount
            BLASRuntime.threadCount = threads
            defer { BLASRuntime.threadCount = saved }
            var rng = SeededRandom(seed: UInt64(threads))
            let m = 150, n = 97, k = 211  // big enough for the threaded, blocked paths
            let a = TestData.random(m * k, &rng), b = TestData.random(k * n, &rng)
            let c = TestData.retained(FloatBuffer(count: m * n))
            BLAS.gemm(.none, .none, m: m, n: n, k: k, a: TestData.buffer(a).pointer, lda: k, b: TestData.buffer(b).pointer, ldb: n, c: c.pointer, ldc: n)
            let expected = naiveProduct(a.map { Double(Float($0)) }, b.map { Double(Float($0)) }, m: m, n: n, k: k)
            assertClose(c.toArray(), expected, rtol: 1e-5, atol: 1e-4, "\(BLASRuntime.coreName) with \(threads) threads")
        }
    }

    /// The in-process switch itself (what fixes the Prescott mis-detection): force Prescott, check
    /// products, switch to the CPU's best core, check again, then restore the selected core.
    func testInProcessCoreSwitchBothWays() throws {
        let selected = BLASRuntime.ensureBestCore().activeCore
        defer { _ = BLASRuntime.reselectCore(selected) }
        guard let prescott = BLASRuntime.reselectCore("Prescott") else { throw XCTSkip("OpenBLAS is not a DYNAMIC_ARCH build") }
        XCTAssertEqual(prescott.lowercased(), "prescott")
        XCTAssertTrue(BLASRuntime.productIsCorrect(), "Prescott products")
        let cpu = CPUFeatures.current()
        guard let best = OpenBLASCore.preferredCore(for: OpenBLASCore.tier(of: cpu), cpu: cpu) else { return }
        XCTAssertEqual(BLASRuntime.reselectCore(best)?.lowercased(), best.lowercased())
        XCTAssertTrue(BLASRuntime.productIsCorrect(), "\(best) products")
        XCTAssertEqual(BLASRuntime.plan(currentCore: "Prescott", cpu: cpu, environment: [:]).switchTarget, cpu.hasAVX512 ? "SkylakeX" : best)
    }
}

extension BLASRuntime.CorePlan {
    var switchTarget: String? {
        if case .switchTo(let core, _) = self { return core }
        return nil
    }
}
