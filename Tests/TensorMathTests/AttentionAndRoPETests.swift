import ForgeCore
import Foundation
@testable import TensorMath
import XCTest

/// RoPE (rotate-half, and its equivalence with GGUF's interleaved pairs after the row permutation)
/// and attention (causal, bidirectional, grouped-query) against Float64 references.
final class AttentionAndRoPETests: XCTestCase {
    static let gradientTolerance = (rtol: 2e-3, atol: 2e-4)

    // MARK: RoPE

    /// transformers' rotate-half RoPE in Float64: pairs (i, i + D/2), angle p / theta^(2i/D).
    static func ropeReference(_ x: [Double], tokens: Int, heads: Int, headDim: Int, theta: Double, offset: Int) -> [Double] {
        var y = x
        let half = headDim / 2
        for t in 0..<tokens {
            for h in 0..<heads {
                let base = t * heads * headDim + h * headDim
                for i in 0..<half {
                    let angle = Double(offset + t) / pow(theta, Double(2 * i) / Double(headDim))
                    let x1 = x[base + i], x2 = x[base + i + half]
                    y[base + i] = x1 * cos(angle) - x2 * sin(angle)
                    y[base + i + half] = x2 * cos(angle) + x1 * sin(angle)
                }
            }
        }
        return y
    }

    func testRotaryTableMatchesTheFormula() {
        let table = RotaryTable(positions: 40, headDim: 8, theta: 10_000)
        for p in 0..<40 {
            for i in 0..<4 {
                let angle = Double(p) / pow(10_000, Double(2 * i) / 8)
                // Float32 angles (as transformers computes them) cost a few ulps of the angle.
                XCTAssertEqual(Double(table.cos.pointer[p * 4 + i]), cos(angle), accuracy: 1e-5)
                XCTAssertEqual(Double(table.sin.pointer[p * 4 + i]), sin(angle), accuracy: 1e-5)
            }
        }
    }

    func testRoPEForwardAndBackward() {
        var rng = SeededRandom(seed: 20)
        let tokens = 5, heads = 3, headDim = 8, offset = 4, theta = 100_000.0
        let table = RotaryTable(positions: 16, headDim: headDim, theta: theta)
        let x = TestData.random(tokens * heads * headDim, &rng), g = TestData.random(x.count, &rng)
        let buffer = TestData.buffer(x)
        RoPE.forward(buffer.pointer, table: table, tokens: tokens, heads: heads, positionOffset: offset)
        let reference = { (v: [Double]) in Self.ropeReference(v, tokens: tokens, heads: heads, headDim: headDim, theta: theta, offset: offset) }
        assertClose(buffer.toArray(), reference(x), rtol: 1e-5, atol: 1e-5, "rope forward")
        // Backward is in place: dx holds d(rotated) on entry and d(input) on return.
        let dx = TestData.buffer(g)
        RoPE.backward(dx.pointer, table: table, tokens: tokens, heads: heads, positionOffset: offset)
        assertClose(dx.toArray(), numericGradient(of: x, upstream: g, reference), rtol: 1e-4, atol: 1e-5, "rope backward")
    }

    /// GGUF llama files permute Q/K rows per head so that ggml's interleaved RoPE (pairs 2i, 2i+1)
    /// computes what rotate-half does. Check the identity the loader relies on: projecting with the
    /// permuted rows and rotating interleaved pairs equals projecting with the original rows and
    /// rotating halves, up to the same permutation of the output.
    func testInterleavedLayoutIsRotateHalfUnderTheConverterPermutation() {
        var rng = SeededRandom(seed: 21)
        let heads = 2, headDim = 6, half = headDim / 2, theta = 10_000.0, position = 3
        let x = TestData.random(heads * headDim, &rng)  // one token's q, HF row order
        // llama.cpp's converter: row h·D + 2i + j of the GGUF tensor is HF row h·D + j·D/2 + i.
        func ggufRow(_ r: Int) -> Int {
            let h = r / headDim, within = r % headDim
            return h * headDim + (within % 2) * half + within / 2
        }
        let permuted = (0..<x.count).map { x[ggufRow($0)] }
        var interleaved = permuted
        for h in 0..<heads {
            for i in 0..<half {
                let angle = Double(position) / pow(theta, Double(2 * i) / Double(headDim))
                let a = permuted[h * headDim + 2 * i], b = permuted[h * headDim + 2 * i + 1]
                interleaved[h * headDim + 2 * i] = a * cos(angle) - b * sin(angle)
                interleaved[h * headDim + 2 * i + 1] = b * cos(angle) + a * sin(angle)
            }
        }
        let table = RotaryTable(positions: 8, headDim: headDim, theta: theta)
        let rotated = TestData.buffer(x)
        RoPE.forward(rotated.pointer, table: table, tokens: 1, heads: heads, positionOffset: position)
        let ours = rotated.toArray()
        assertClose((0..<x.count).map { ours[ggufRow($0)] }, interleaved, rtol: 1e-5, atol: 1e-6, "rotate-half vs interleaved")
    }

    // MARK: Attention

    static func attentionReference(q: [Double], k: [Double], v: [Double], shape: Attention.Shape, scale: Double) -> [Double] {
        let t = shape.tokens, d = shape.headDim, qWidth = shape.heads * d, kvWidth = shape.kvHeads * d
        var out = [Double](repeating: 0, count: t * qWidth)
        for h in 0..<shape.heads {
            let g = h / (shape.heads / shape.kvHeads)
            for i in 0..<t {
                let visible = shape.causal ? i + 1 : t
                var scores = (0..<visible).map { j in
                    scale * (0..<d).reduce(0.0) { $0 + q[i * qWidth + h * d + $1] * k[j * kvWidth + g * d + $1] }
                }
                let top = scores.max()!
                scores = scores.map { exp($0 - top) }
                let total = scores.reduce(0, +)
                for j in 0..<visible {
                    for c in 0..<d { out[i * qWidth + h * d + c] += scores[j] / total * v[j * kvWidth + g * d + c] }
                }
            }
        }
        return out
    }

    func testAttentionForwardAndBackward() {
        var rng = SeededRandom(seed: 22)
        for (heads, kvHeads, causal) in [(4, 2, true), (3, 3, true), (2, 1, false), (4, 4, false)] {
            let shape = Attention.Shape(tokens: 5, heads: heads, kvHeads: kvHeads, headDim: 3, causal: causal)
            let scale = 1 / Double(3).squareRoot()
            let t = shape.tokens, qCount = t * heads * 3, kvCount = t * kvHeads * 3
            let q = TestData.random(qCount, &rng), k = TestData.random(kvCount, &rng), v = TestData.random(kvCount, &rng)
            let g = TestData.random(qCount, &rng)
            let qb = TestData.buffer(q), kb = TestData.buffer(k), vb = TestData.buffer(v)
            let out = TestData.retained(FloatBuffer(count: qCount)), probs = TestData.filled(shape.probsCount, .nan)
            Attention.forward(out: out.pointer, probs: probs.pointer, q: qb.pointer, k: kb.pointer, v: vb.pointer, shape: shape, scale: Float(scale))
            let what = "attention heads=\(heads) kv=\(kvHeads) causal=\(causal)"
            assertClose(out.toArray(), Self.attentionReference(q: q, k: k, v: v, shape: shape, scale: scale), rtol: 1e-5, atol: 1e-5, what)
            // probs rows are distributions over the visible keys, zero beyond them.
            for h in 0..<heads {
                for i in 0..<t {
                    let row = (0..<t).map { probs.pointer[shape.probsIndex(head: h, row: i, key: $0, length: t)] }
                    XCTAssertEqual(Double(row.reduce(0, +)), 1, accuracy: 1e-5)
                    if causal { XCTAssertTrue(row[(i + 1)...].allSatisfy { $0 == 0 }, "\(what): masked row \(i)") }
                }
            }
            let dq = TestData.filled(qCount, gradientSeed), dk = TestData.filled(kvCount, gradientSeed), dv = TestData.filled(kvCount, gradientSeed)
            Attention.backward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: TestData.buffer(g).pointer, probs: probs.pointer,
                               q: qb.pointer, k: kb.pointer, v: vb.pointer, shape: shape, scale: Float(scale))
            let tol = Self.gradientTolerance
            assertClose(dq.toArray(), numericGradient(of: q, upstream: g) { Self.attentionReference(q: $0, k: k, v: v, shape: shape, scale: scale) },
                        rtol: tol.rtol, atol: tol.atol, "\(what) dq", subtracting: gradientSeed)
            assertClose(dk.toArray(), numericGradient(of: k, upstream: g) { Self.attentionReference(q: q, k: $0, v: v, shape: shape, scale: scale) },
                        rtol: tol.rtol, atol: tol.atol, "\(what) dk", subtracting: gradientSeed)
            assertClose(dv.toArray(), numericGradient(of: v, upstream: g) { Self.attentionReference(q: q, k: k, v: $0, shape: shape, scale: scale) },
                        rtol: tol.rtol, atol: tol.atol, "\(what) dv", subtracting: gradientSeed)
        }
    }

    /// Attention's 8-lane exponent equals `VectorExp.exp` bit for bit on x ≤ 0 (so probabilities
    /// are the Float they were), and its softmax row is a distribution over the first `valid`
    /// entries with zeros after, for every tail length, read as a whole block or not.
    func testAttentionSoftmaxRowMatchesVectorExpAndMasksTheTail() {
        var rng = SeededRandom(seed: 24)
        var inputs: [Float] = [0, -0.0, -1e-30, -87.33, -87.3365478515625, -87.34, -88, -200, -.infinity]
        for _ in 0..<4000 { inputs.append(Float(TestData.random(1, &rng)[0] - 1) * 60) }
        while inputs.count % 16 != 0 { inputs.append(-3) }
        for start in stride(from: 0, to: inputs.count, by: 16) {
            let x16 = VectorExp.Vector((0..<16).map { inputs[start + $0] })
            let wide = VectorExp.exp(x16)
            for half in 0..<2 {
                let narrow = AttentionSoftmax.expNonPositive(AttentionSoftmax.Vector((0..<8).map { x16[half * 8 + $0] }))
                for j in 0..<8 { XCTAssertEqual(narrow[j].bitPattern, wide[half * 8 + j].bitPattern, "exp(\(x16[half * 8 + j]))") }
            }
        }
        for count in [1, 7, 8, 9, 23, 64, 65, 130] {
            for valid in Set([1, 2, max(1, count / 2), max(1, count - 8), max(1, count - 7), max(1, count - 1), count]) where valid <= count {
                let x = TestData.random(count, &rng).map { $0 * 6 }
                let row = TestData.filled(count, .nan)
                for i in 0..<valid { row.pointer[i] = Float(x[i]) }
                AttentionSoftmax.forwardRow(row.pointer, valid: valid, count: count)
                let top = x[..<valid].max()!, total = x[..<valid].reduce(0.0) { $0 + exp($1 - top) }
                for i in 0..<count {
                    let expected = i < valid ? exp(x[i] - top) / total : 0
                    XCTAssertEqual(Double(row.pointer[i]), expected, accuracy: 1e-6, "count \(count) valid \(valid) entry \(i)")
                }
            }
        }
    }

    func testAttentionLongerSequenceUsesParallelRows() {
        var rng = SeededRandom(seed: 23)
        let shape = Attention.Shape(tokens: 70, heads: 2, kvHeads: 1, headDim: 8, causal: true)
        let q = TestData.random(70 * 16, &rng), k = TestData.random(70 * 8, &rng), v = TestData.random(70 * 8, &rng)
        let out = TestData.retained(FloatBuffer(count: 70 * 16)), probs = TestData.retained(FloatBuffer(count: shape.probsCount))
        Attention.forward(out: out.pointer, probs: probs.pointer, q: TestData.buffer(q).pointer, k: TestData.buffer(k).pointer,
                          v: TestData.buffer(v).pointer, shape: shape, scale: 0.35)
        assertClose(out.toArray(), Self.attentionReference(q: q, k: k, v: v, shape: shape, scale: 0.35), rtol: 1e-5, atol: 1e-5, "attention T=70")
    }
}
