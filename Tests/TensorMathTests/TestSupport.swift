import ForgeCore
import Foundation
import TensorMath
import XCTest

/// Shared helpers: seeded inputs, Float buffers from Double values, closeness checks, and central
/// differences in Float64 for gradient checks.
///
/// Gradient-check recipe used throughout: pick a random upstream gradient g, define the scalar
/// L(x) = Σ g ⊙ f(x) with f the op's Float64 reference forward written in the test, and compare
/// the op's Float32 backward (fed dout = g) with central differences of L. Backward accumulates,
/// so gradient buffers start at a non-zero value that the comparison subtracts.
enum TestData {
    static func random(_ count: Int, _ rng: inout SeededRandom, scale: Double = 1) -> [Double] {
        (0..<count).map { _ in Double.random(in: -scale...scale, using: &rng) }
    }

    /// Every buffer made here stays alive for the whole test run, so tests may pass
    /// `TestData.buffer(x).pointer` inline without the temporary being freed before the op reads it.
    nonisolated(unsafe) private static var keepAlive: [FloatBuffer] = []

    static func buffer(_ values: [Double]) -> FloatBuffer { retained(FloatBuffer(values.map { Float($0) })) }

    static func filled(_ count: Int, _ value: Float) -> FloatBuffer {
        let buffer = FloatBuffer(count: count)
        buffer.fill(value)
        return retained(buffer)
    }

    static func retained(_ buffer: FloatBuffer) -> FloatBuffer {
        keepAlive.append(buffer)
        return buffer
    }
}

/// The value every gradient buffer starts at, to prove backward adds rather than overwrites.
let gradientSeed: Float = 0.25

/// max |actual − expected| ≤ atol + rtol·|expected| for every element, with the worst reported.
func assertClose(_ actual: [Float], _ expected: [Double], rtol: Double, atol: Double, _ what: String,
                 subtracting offset: Float = 0, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
    guard actual.count == expected.count, !expected.isEmpty else { return }
    var worst = 0.0, worstIndex = 0, worstExcess = -Double.infinity
    for i in 0..<actual.count {
        let a = Double(actual[i] - offset), e = expected[i]
        let error = abs(a - e)
        let excess = error - (atol + rtol * abs(e))
        if excess > worstExcess { worstExcess = excess; worst = error; worstIndex = i }
        if !a.isFinite { worstExcess = .infinity; worstIndex = i; break }
    }
    if worstExcess > 0 {
        XCTFail("\(what): element \(worstIndex) is \(Double(actual[worstIndex] - offset)), expected \(expected[worstIndex]) (error \(worst))",
                file: file, line: line)
    }
}

/// dL/dx by central differences, L(x) = Σ upstream ⊙ f(x), in Float64.
func numericGradient(of x: [Double], upstream: [Double], step: Double = 1e-6, _ f: ([Double]) -> [Double]) -> [Double] {
    var probe = x
    return (0..<x.count).map { i in
        probe[i] = x[i] + step
        let plus = zip(f(probe), upstream).reduce(0.0) { $0 + $1.0 * $1.1 }
        probe[i] = x[i] - step
        let minus = zip(f(probe), upstream).reduce(0.0) { $0 + $1.0 * $1.1 }
        probe[i] = x[i]
        return (plus - minus) / (2 * step)
    }
}

/// Row-major naive product in Float64: C[m, n] = A[m, k] · B[k, n].
func naiveProduct(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int) -> [Double] {
    var c = [Double](repeating: 0, count: m * n)
    for i in 0..<m { for j in 0..<n { var s = 0.0; for p in 0..<k { s += a[i * k + p] * b[p * n + j] }; c[i * n + j] = s } }
    return c
}

func transposed(_ a: [Double], rows: Int, cols: Int) -> [Double] {
    var t = [Double](repeating: 0, count: a.count)
    for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = a[r * cols + c] } }
    return t
}
