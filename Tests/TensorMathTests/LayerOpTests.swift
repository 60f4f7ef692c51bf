import ForgeCore
import Foundation
@testable import TensorMath
import XCTest

/// Linear, Embedding, RMSNorm, LayerNorm, Residual: forward against Float64 references, backward
/// against central differences of those references.
final class LayerOpTests: XCTestCase {
    static let forwardTolerance = (rtol: 1e-5, atol: 1e-5)
    static let gradientTolerance = (rtol: 2e-3, atol: 2e-4)

    // MARK: Linear

    static func linearReference(_ x: [Double], _ w: [Double], _ b: [Double]?, rows: Int, inF: Int, outF: Int) -> [Double] {
        var y = naiveProduct(x, transposed(w, rows: outF, cols: inF), m: rows, n: outF, k: inF)
        if let b { for r in 0..<rows { for o in 0..<outF { y[r * outF + o] += b[o] } } }
        return y
    }

    func testLinearWithAndWithoutBias() {
        var rng = SeededRandom(seed: 10)
        let rows = 5, inF = 7, outF = 3
        for withBias in [true, false] {
            let x = TestData.random(rows * inF, &rng), w = TestData.random(outF * inF, &rng), b = TestData.random(outF, &rng)
            let g = TestData.random(rows * outF, &rng)
            let xb = TestData.buffer(x), wb = TestData.buffer(w), bb = TestData.buffer(b), out = TestData.filled(rows * outF, .nan)
            Linear.forward(out: out.pointer, input: xb.pointer, weight: wb.pointer, bias: withBias ? UnsafePointer(bb.pointer) : nil,
                           rows: rows, inFeatures: inF, outFeatures: outF)
            let bias = withBias ? b : nil
            assertClose(out.toArray(), Self.linearReference(x, w, bias, rows: rows, inF: inF, outF: outF),
                        rtol: Self.forwardTolerance.rtol, atol: Self.forwardTolerance.atol, "linear forward bias=\(withBias)")

            let dx = TestData.filled(rows * inF, gradientSeed), dw = TestData.filled(outF * inF, gradientSeed), db = TestData.filled(outF, gradientSeed)
            Linear.backward(dinput: dx.pointer, dweight: dw.pointer, dbias: withBias ? db.pointer : nil, dout: TestData.buffer(g).pointer,
                            input: xb.pointer, weight: wb.pointer, rows: rows, inFeatures: inF, outFeatures: outF)
            let t = Self.gradientTolerance
            assertClose(dx.toArray(), numericGradient(of: x, upstream: g) { Self.linearReference($0, w, bias, rows: rows, inF: inF, outF: outF) },
                        rtol: t.rtol, atol: t.atol, "linear dinput", subtracting: gradientSeed)
            assertClose(dw.toArray(), numericGradient(of: w, upstream: g) { Self.linearReference(x, $0, bias, rows: rows, inF: inF, outF: outF) },
                        rtol: t.rtol, atol: t.atol, "linear dweight", subtracting: gradientSeed)
            if withBias {
                assertClose(db.toArray(), numericGradient(of: b, upstream: g) { Self.linearReference(x, w, $0, rows: rows, inF: inF, outF: outF) },
                            rtol: t.rtol, atol: t.atol, "linear dbias", subtracting: gradientSeed)
            } else {
                XCTAssertEqual(db.toArray(), [Float](repeating: gradientSeed, count: outF), "no bias gradient requested")
            }
        }
    }

    // MARK: Embedding

    func testEmbeddingGathersRowsAndScattersGradients() {
        var rng = SeededRandom(seed: 11)
        let vocab = 6, dim = 4
        let table = TestData.random(vocab * dim, &rng).map { Double(Float($0)) }  // exactly representable: a gather is exact
        let ids = [3, 0, 3, 5]  // a repeated id must accumulate
        let out = TestData.retained(FloatBuffer(count: ids.count * dim))
        ids.withUnsafeBufferPointer { Embedding.forward(out: out.pointer, tokenIDs: $0, table: TestData.buffer(table).pointer, vocab: vocab, dim: dim) }
        let reference: ([Double]) -> [Double] = { t in ids.flatMap { Array(t[($0 * dim)..<($0 * dim + dim)]) } }
        assertClose(out.toArray(), reference(table), rtol: 0, atol: 0, "embedding forward")
        let g = TestData.random(ids.count * dim, &rng)
        let dtable = TestData.filled(vocab * dim, gradientSeed)
        ids.withUnsafeBufferPointer { Embedding.backward(dtable: dtable.pointer, dout: TestData.buffer(g).pointer, tokenIDs: $0, vocab: vocab, dim: dim) }
        assertClose(dtable.toArray(), numericGradient(of: table, upstream: g, reference), rtol: 1e-5, atol: 1e-6, "embedding dtable",
                    subtracting: gradientSeed)
    }

    func testEmbeddingValidationNamesTheBadToken() {
        XCTAssertNoThrow(try [0, 5].withUnsafeBufferPointer { try Embedding.validate(tokenIDs: $0, vocab: 6) })
        XCTAssertThrowsError(try [0, 6].withUnsafeBufferPointer { try Embedding.validate(tokenIDs: $0, vocab: 6, source: "prompt") }) { error in
            XCTAssertEqual((error as? ForgeError)?.location, "token 1")
            XCTAssertTrue((error as? ForgeError)?.description.contains("token id 6") ?? false)
        }
        XCTAssertThrowsError(try [-1].withUnsafeBufferPointer { try Embedding.validate(tokenIDs: $0, vocab: 6) })
    }

    // MARK: RMSNorm

    static func rmsNormReference(_ x: [Double], _ w: [Double], rows: Int, dim: Int, eps: Double) -> [Double] {
        var y = x
        for r in 0..<rows {
            let row = x[(r * dim)..<(r * dim + dim)]
            let rstd = 1 / (row.reduce(0) { $0 + $1 * $1 } / Double(dim) + eps).squareRoot()
            for i in 0..<dim { y[r * dim + i] = w[i] * (x[r * dim + i] * rstd) }
        }
        return y
    }

    func testRMSNorm() {
        var rng = SeededRandom(seed: 12)
        let rows = 4, dim = 9, eps = 1e-5
        let x = TestData.random(rows * dim, &rng, scale: 2), w = TestData.random(dim, &rng), g = TestData.random(rows * dim, &rng)
        let xb = TestData.buffer(x), wb = TestData.buffer(w), out = TestData.retained(FloatBuffer(count: rows * dim)), rstd = TestData.retained(FloatBuffer(count: rows))
        RMSNorm.forward(out: out.pointer, rstd: rstd.pointer, input: xb.pointer, weight: wb.pointer, rows: rows, dim: dim, eps: Float(eps))
        assertClose(out.toArray(), Self.rmsNormReference(x, w, rows: rows, dim: dim, eps: eps), rtol: 1e-5, atol: 1e-6, "rmsnorm forward")
        let dx = TestData.filled(rows * dim, gradientSeed), dw = TestData.filled(dim, gradientSeed)
        RMSNorm.backward(dinput: dx.pointer, dweight: dw.pointer, dout: TestData.buffer(g).pointer, input: xb.pointer, weight: wb.pointer,
                         rstd: rstd.pointer, rows: rows, dim: dim)
        let t = Self.gradientTolerance
        assertClose(dx.toArray(), numericGradient(of: x, upstream: g) { Self.rmsNormReference($0, w, rows: rows, dim: dim, eps: eps) },
                    rtol: t.rtol, atol: t.atol, "rmsnorm dinput", subtracting: gradientSeed)
        assertClose(dw.toArray(), numericGradient(of: w, upstream: g) { Self.rmsNormReference(x, $0, rows: rows, dim: dim, eps: eps) },
                    rtol: t.rtol, atol: t.atol, "rmsnorm dweight", subtracting: gradientSeed)
    }

    func testRMSNormManyRowsTakesTheParallelPath() {
        var rng = SeededRandom(seed: 13)
        let rows = 300, dim = 64
        let x = TestData.random(rows * dim, &rng), w = TestData.random(dim, &rng)
        let out = TestData.retained(FloatBuffer(count: rows * dim))
        RMSNorm.forward(out: out.pointer, rstd: nil, input: TestData.buffer(x).pointer, weight: TestData.buffer(w).pointer, rows: rows, dim: dim, eps: 1e-6)
        assertClose(out.toArray(), Self.rmsNormReference(x, w, rows: rows, dim: dim, eps: 1e-6), rtol: 1e-5, atol: 1e-6, "rmsnorm 300 rows")
    }

    // MARK: LayerNorm

    static func layerNormReference(_ x: [Double], _ w: [Double], _ b: [Double], rows: Int, dim: Int, eps: Double) -> [Double] {
        var y = x
        for r in 0..<rows {
            let row = Array(x[(r * dim)..<(r * dim + dim)])
            let mean = row.reduce(0, +) / Double(dim)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(dim)
            let rstd = 1 / (variance + eps).squareRoot()
            for i in 0..<dim { y[r * dim + i] = (row[i] - mean) * rstd * w[i] + b[i] }
        }
        return y
    }

    func testLayerNorm() {
        var rng = SeededRandom(seed: 14)
        let rows = 3, dim = 10, eps = 1e-5
        let x = TestData.random(rows * dim, &rng, scale: 3).map { $0 + 1 }  // non-zero mean
        let w = TestData.random(dim, &rng), b = TestData.random(dim, &rng), g = TestData.random(rows * dim, &rng)
        let xb = TestData.buffer(x), wb = TestData.buffer(w), bb = TestData.buffer(b)
        let out = TestData.retained(FloatBuffer(count: rows * dim)), mean = TestData.retained(FloatBuffer(count: rows)), rstd = TestData.retained(FloatBuffer(count: rows))
        LayerNorm.forward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, input: xb.pointer, weight: wb.pointer, bias: bb.pointer,
                          rows: rows, dim: dim, eps: Float(eps))
        assertClose(out.toArray(), Self.layerNormReference(x, w, b, rows: rows, dim: dim, eps: eps), rtol: 1e-5, atol: 1e-5, "layernorm forward")
        let dx = TestData.filled(rows * dim, gradientSeed), dw = TestData.filled(dim, gradientSeed), db = TestData.filled(dim, gradientSeed)
        LayerNorm.backward(dinput: dx.pointer, dweight: dw.pointer, dbias: db.pointer, dout: TestData.buffer(g).pointer, input: xb.pointer,
                           weight: wb.pointer, mean: mean.pointer, rstd: rstd.pointer, rows: rows, dim: dim)
        let t = Self.gradientTolerance
        assertClose(dx.toArray(), numericGradient(of: x, upstream: g) { Self.layerNormReference($0, w, b, rows: rows, dim: dim, eps: eps) },
                    rtol: t.rtol, atol: t.atol, "layernorm dinput", subtracting: gradientSeed)
        assertClose(dw.toArray(), numericGradient(of: w, upstream: g) { Self.layerNormReference(x, $0, b, rows: rows, dim: dim, eps: eps) },
                    rtol: t.rtol, atol: t.atol, "layernorm dweight", subtracting: gradientSeed)
        assertClose(db.toArray(), numericGradient(of: b, upstream: g) { Self.layerNormReference(x, w, $0, rows: rows, dim: dim, eps: eps) },
                    rtol: t.rtol, atol: t.atol, "layernorm dbias", subtracting: gradientSeed)
    }

    // MARK: Residual

    func testResidual() {
        var rng = SeededRandom(seed: 15)
        let n = 100_003  // above the parallel grain, odd
        let a = TestData.random(n, &rng), b = TestData.random(n, &rng), g = TestData.random(n, &rng)
        let ab = TestData.buffer(a), bb = TestData.buffer(b), out = TestData.retained(FloatBuffer(count: n))
        Residual.forward(out: out.pointer, a: ab.pointer, b: bb.pointer, count: n)
        assertClose(out.toArray(), zip(a, b).map { Double(Float($0)) + Double(Float($1)) }, rtol: 1e-7, atol: 0, "residual forward")
        // In place (out aliases a), as the decoder uses it.
        Residual.forward(out: ab.pointer, a: ab.pointer, b: bb.pointer, count: n)
        XCTAssertEqual(ab.toArray(), out.toArray())
        let da = TestData.filled(n, gradientSeed), db = TestData.filled(n, gradientSeed)
        Residual.backward(da: da.pointer, db: db.pointer, dout: TestData.buffer(g).pointer, count: n)
        assertClose(da.toArray(), g, rtol: 1e-6, atol: 1e-7, "residual da", subtracting: gradientSeed)
        assertClose(db.toArray(), g, rtol: 1e-6, atol: 1e-7, "residual db", subtracting: gradientSeed)
    }

    func testParallelRangesCoverEverythingOnce() {
        for count in [0, 1, 5, 1000, 65_537] {
            let hits = TestData.retained(FloatBuffer(count: max(count, 1)))
            Parallel.forEachRange(count, grain: 7) { range in for i in range { hits.pointer[i] += 1 } }
            XCTAssertTrue(hits.toArray().prefix(count).allSatisfy { $0 == 1 }, "count \(count)")
        }
    }

    func testParameterLayoutAlignsEveryTensor() {
        var layout = ParameterLayout()
        layout.add("a", shape: [3, 5])
        layout.add("b", shape: [7])
        layout.add("c", shape: [2, 2, 2])
        XCTAssertEqual(layout.slots.map(\.offset), [0, 16, 32])
        XCTAssertEqual(layout.totalCount, 40)
        let buffer = ParameterBuffer(layout: layout)
        XCTAssertEqual(buffer.parameterCount, 15 + 7 + 8)
        buffer.pointer("b")[6] = 4
        XCTAssertEqual(buffer.values("b").last, 4)
        XCTAssertEqual(Int(bitPattern: buffer.pointer("c")) % 64, 0, "64-byte aligned")
    }
}
