import ForgeCore
import Foundation
@testable import TensorMath
import XCTest

/// SiLU, SwiGLU, GELU (exact erf), QuickGELU, Softmax, CrossEntropy (ignore index −100).
final class ActivationAndLossTests: XCTestCase {
    static let gradientTolerance = (rtol: 2e-3, atol: 2e-4)

    typealias Unary = (forward: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void,
                       backward: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void,
                       reference: (Double) -> Double)

    static let unaryOps: [(String, Unary)] = [
        ("silu", ({ SiLU.forward(out: $0, input: $1, count: $2) }, { SiLU.backward(dinput: $0, dout: $1, input: $2, count: $3) },
                  { $0 / (1 + exp(-$0)) })),
        ("gelu", ({ GELU.forward(out: $0, input: $1, count: $2) }, { GELU.backward(dinput: $0, dout: $1, input: $2, count: $3) },
                  { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) })),
        ("quick_gelu", ({ QuickGELU.forward(out: $0, input: $1, count: $2) }, { QuickGELU.backward(dinput: $0, dout: $1, input: $2, count: $3) },
                        { $0 / (1 + exp(-1.702 * $0)) })),
    ]

    func testUnaryActivations() {
        var rng = SeededRandom(seed: 30)
        // Small: exercises the inline path. Large (above the parallel grain): both workers, checked on a sample.
        for count in [37, 70_001] {
            let x = TestData.random(count, &rng, scale: 6), g = TestData.random(count, &rng)
            for (name, op) in Self.unaryOps {
                let xb = TestData.buffer(x), out = TestData.retained(FloatBuffer(count: count))
                op.forward(out.pointer, xb.pointer, count)
                let xs = x.map { Double(Float($0)) }
                assertClose(out.toArray(), xs.map(op.reference), rtol: 2e-6, atol: 2e-7, "\(name) forward n=\(count)")
                let dx = TestData.filled(count, gradientSeed)
                op.backward(dx.pointer, TestData.buffer(g).pointer, xb.pointer, count)
                let sample = stride(from: 0, to: count, by: count > 1000 ? 97 : 1).map { $0 }
                let numeric = sample.map { i -> Double in
                    let h = 1e-6
                    return Double(Float(g[i])) * (op.reference(xs[i] + h) - op.reference(xs[i] - h)) / (2 * h)
                }
                let analytic = dx.toArray()
                assertClose(sample.map { analytic[$0] }, numeric, rtol: 1e-4, atol: 1e-5, "\(name) backward n=\(count)", subtracting: gradientSeed)
            }
        }
    }

    func testGELUIsTheExactErfFormNotTheTanhApproximation() {
        // At x = 1 the forms differ by ≈ 1.6e-4: exact 0.841344746, tanh 0.841191990.
        let out = TestData.retained(FloatBuffer(count: 1))
        GELU.forward(out: out.pointer, input: TestData.buffer([1]).pointer, count: 1)
        XCTAssertEqual(Double(out.pointer[0]), 0.8413447460685429, accuracy: 1e-7)
    }

    func testSwiGLU() {
        var rng = SeededRandom(seed: 31)
        let n = 23
        let gate = TestData.random(n, &rng, scale: 5), up = TestData.random(n, &rng, scale: 2), g = TestData.random(n, &rng)
        let reference = { (gate: [Double], up: [Double]) in zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 } }
        let gb = TestData.buffer(gate), ub = TestData.buffer(up), out = TestData.retained(FloatBuffer(count: n))
        SwiGLU.forward(out: out.pointer, gate: gb.pointer, up: ub.pointer, count: n)
        assertClose(out.toArray(), reference(gate, up), rtol: 2e-6, atol: 1e-6, "swiglu forward")
        let dgate = TestData.filled(n, gradientSeed), dup = TestData.filled(n, gradientSeed)
        SwiGLU.backward(dgate: dgate.pointer, dup: dup.pointer, dout: TestData.buffer(g).pointer, gate: gb.pointer, up: ub.pointer, count: n)
        let t = Self.gradientTolerance
        assertClose(dgate.toArray(), numericGradient(of: gate, upstream: g) { reference($0, up) }, rtol: t.rtol, atol: t.atol, "swiglu dgate",
                    subtracting: gradientSeed)
        assertClose(dup.toArray(), numericGradient(of: up, upstream: g) { reference(gate, $0) }, rtol: t.rtol, atol: t.atol, "swiglu dup",
                    subtracting: gradientSeed)
    }

    // MARK: Softmax

    static func softmaxReference(_ x: [Double], rows: Int, cols: Int) -> [Double] {
        var y = x
        for r in 0..<rows {
            let row = x[(r * cols)..<(r * cols + cols)]
            let top = row.max()!
            let total = row.reduce(0) { $0 + exp($1 - top) }
            for c in 0..<cols { y[r * cols + c] = exp(x[r * cols + c] - top) / total }
        }
        return y
    }

    func testSoftmax() {
        var rng = SeededRandom(seed: 32)
        let rows = 4, cols = 11
        var x = TestData.random(rows * cols, &rng, scale: 4)
        x[3] = 80  // large logits must not overflow
        let g = TestData.random(rows * cols, &rng)
        let xb = TestData.buffer(x), out = TestData.retained(FloatBuffer(count: rows * cols))
        Softmax.forward(out: out.pointer, input: xb.pointer, rows: rows, cols: cols)
        assertClose(out.toArray(), Self.softmaxReference(x, rows: rows, cols: cols), rtol: 1e-5, atol: 1e-7, "softmax forward")
        let dx = TestData.filled(rows * cols, gradientSeed)
        Softmax.backward(dinput: dx.pointer, dout: TestData.buffer(g).pointer, out: out.pointer, rows: rows, cols: cols)
        let t = Self.gradientTolerance
        assertClose(dx.toArray(), numericGradient(of: x, upstream: g) { Self.softmaxReference($0, rows: rows, cols: cols) },
                    rtol: t.rtol, atol: t.atol, "softmax backward", subtracting: gradientSeed)
        // In place (out aliases input).
        Softmax.forward(out: xb.pointer, input: xb.pointer, rows: rows, cols: cols)
        XCTAssertEqual(xb.toArray(), out.toArray())
    }

    // MARK: CrossEntropy

    /// Mean over non-ignored rows of logsumexp(z) − z[target].
    static func crossEntropyReference(_ z: [Double], targets: [Int], vocab: Int) -> (mean: Double, losses: [Double]) {
        var losses = [Double](repeating: 0, count: targets.count), total = 0.0, counted = 0
        for (r, target) in targets.enumerated() where target != CrossEntropy.ignoreIndex {
            let row = z[(r * vocab)..<(r * vocab + vocab)]
            let top = row.max()!
            losses[r] = top + log(row.reduce(0) { $0 + exp($1 - top) }) - z[r * vocab + target]
            total += losses[r]
            counted += 1
        }
        return (counted == 0 ? 0 : total / Double(counted), losses)
    }

    func testCrossEntropyWithIgnoredTargets() {
        var rng = SeededRandom(seed: 33)
        let vocab = 13
        let targets = [4, -100, 0, 12, -100, 4]
        let z = TestData.random(targets.count * vocab, &rng, scale: 5)
        let zb = TestData.buffer(z), losses = TestData.filled(targets.count, .nan)
        let mean = targets.withUnsafeBufferPointer {
            CrossEntropy.forward(losses: losses.pointer, logits: zb.pointer, targets: $0, rows: targets.count, vocab: vocab)
        }
        let reference = Self.crossEntropyReference(z, targets: targets, vocab: vocab)
        XCTAssertEqual(Double(mean), reference.mean, accuracy: 1e-5)
        assertClose(losses.toArray(), reference.losses, rtol: 1e-5, atol: 1e-6, "per-row losses (0 where ignored)")

        let dloss: Float = 1.7  // e.g. a loss scale or 1/accumulation steps
        let dz = TestData.filled(z.count, gradientSeed)
        targets.withUnsafeBufferPointer {
            CrossEntropy.backward(dlogits: dz.pointer, dloss: dloss, logits: zb.pointer, targets: $0, rows: targets.count, vocab: vocab)
        }
        let numeric = numericGradient(of: z, upstream: [Double(dloss)]) { [Self.crossEntropyReference($0, targets: targets, vocab: vocab).mean] }
        let t = Self.gradientTolerance
        assertClose(dz.toArray(), numeric, rtol: t.rtol, atol: t.atol, "cross-entropy dlogits", subtracting: gradientSeed)
        // Ignored rows receive exactly nothing.
        for r in [1, 4] { XCTAssertTrue((0..<vocab).allSatisfy { dz.pointer[r * vocab + $0] == gradientSeed }) }
    }

    func testCrossEntropyAllIgnoredIsZeroWithNoGradient() {
        let targets = [-100, -100]
        let z = TestData.retained(FloatBuffer([1, 2, 3, 4])), losses = TestData.retained(FloatBuffer(count: 2)), dz = TestData.filled(4, gradientSeed)
        let mean = targets.withUnsafeBufferPointer { CrossEntropy.forward(losses: losses.pointer, logits: z.pointer, targets: $0, rows: 2, vocab: 2) }
        XCTAssertEqual(mean, 0)
        targets.withUnsafeBufferPointer { CrossEntropy.backward(dlogits: dz.pointer, dloss: 1, logits: z.pointer, targets: $0, rows: 2, vocab: 2) }
        XCTAssertEqual(dz.toArray(), [Float](repeating: gradientSeed, count: 4))
    }

    func testCrossEntropyOnALargeVocabularyRow() {
        // A 49k-entry row (SmolLM2's vocabulary) with one dominant logit keeps full precision.
        var rng = SeededRandom(seed: 34)
        let vocab = 49_152
        var z = TestData.random(vocab, &rng, scale: 3)
        z[777] = 25
        let losses = TestData.retained(FloatBuffer(count: 1))
        let mean = [777].withUnsafeBufferPointer {
            CrossEntropy.forward(losses: losses.pointer, logits: TestData.buffer(z).pointer, targets: $0, rows: 1, vocab: vocab)
        }
        let reference = Self.crossEntropyReference(z.map { Double(Float($0)) }, targets: [777], vocab: vocab).mean
        XCTAssertEqual(Double(mean), reference, accuracy: 1e-6 + 1e-5 * reference)
    }
}
