import XCTest
import Checkpoints
import TensorMath
@testable import Inference

/// Each direct kernel against "dequantize with Checkpoints' reference kernels, then dot in Float64".
final class BlockDotTests: XCTestCase {
    /// Activations stay Float32 (no Q8 rounding), so the only error is Float32 accumulation:
    /// |Δ| ≤ n·ε·Σ|w·x| with n ≈ 2 + blocks (one rounding per FMA chain step and per block sum);
    /// 1e-5·Σ|w·x| is ~10× that for 6 blocks. A wrong nibble order, offset or scale is off by O(Σ|w·x|).
    func check(_ type: GGMLType, rows: Int, columns: Int, vectors: Int, bias: Bool = false, line: UInt = #line) throws {
        let saved = QuantizedLinear.kernel
        defer { setDecodeKernel(saved) }
        XCTAssertEqual(DecodeKernel.supported.count, CPUFeatures.current().flags.contains("avx512_vnni") ? 3 : 2)
        for kernel in DecodeKernel.supported {
            setDecodeKernel(kernel)
            try check(type, rows: rows, columns: columns, vectors: vectors, kernel: kernel, bias: bias, line: line)
        }
    }

    /// The int kernels round x to int16 per block: |Δx| ≤ max|x_block| / 65534, so their extra
    /// error is bounded by Σ_b Σ|w_b| · max|x_b| / 65534 (added to the Float32 bound).
    func check(_ type: GGMLType, rows: Int, columns: Int, vectors: Int, kernel: DecodeKernel, bias: Bool, line: UInt) throws {
        let values = Support.randomFloats(rows * columns, seed: UInt64(rows * 31 + columns + Int(type.rawValue)))
        let matrix = try values.withUnsafeBufferPointer {
            try BlockQuantizer.matrix(type, name: "w", values: $0.baseAddress!, rows: rows, columns: columns)
        }
        guard case .blocks(_, let base) = matrix.storage else { return XCTFail("not stored as blocks") }
        var dequantized = [Float](repeating: 0, count: rows * columns)
        try dequantized.withUnsafeMutableBufferPointer {
            try GGMLDequantizer.dequantize(type, from: UnsafeRawBufferPointer(start: base, count: rows * matrix.rowBytes), into: $0)
        }
        // Quantization itself must be close to the input (catches a broken quantizer too).
        let step: Float = type == .q8_0 ? 1.0 / 127 : 2.0 / 15
        XCTAssertLessThanOrEqual(Support.maxAbsDifference(values, dequantized), step, "\(type.name) quantization error", line: line)
        let x = Support.randomFloats(vectors * columns, seed: 7, scale: 2)
        var out = [Float](repeating: .nan, count: vectors * rows)
        let biasValues = bias ? Support.randomFloats(rows, seed: 11) : [Float](repeating: 0, count: rows)
        let scratch = LinearScratch()
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                biasValues.withUnsafeBufferPointer { bp in
                    QuantizedLinear.forward(jobs: [LinearJob(weight: matrix, bias: bias ? bp.baseAddress! : nil, out: op.baseAddress!, outStride: rows)],
                                            input: xp.baseAddress!, vectors: vectors, inFeatures: columns, scratch: scratch)
                }
            }
        }
        var worst = 0.0
        for v in 0..<vectors {
            for r in 0..<rows {
                var exact = Double(biasValues[r]), magnitude = 0.0, roundingBound = 0.0
                for b in 0..<(columns / 32) {
                    var wSum = 0.0, xMax = 0.0
                    for c in (b * 32)..<(b * 32 + 32) {
                        let p = Double(dequantized[r * columns + c]) * Double(x[v * columns + c])
                        exact += p
                        magnitude += abs(p)
                        wSum += abs(Double(dequantized[r * columns + c]))
                        xMax = max(xMax, abs(Double(x[v * columns + c])))
                    }
                    roundingBound += wSum * xMax / 65534
                }
                let error = abs(Double(out[v * rows + r]) - exact)
                worst = max(worst, error / magnitude)
                let bound = 1e-5 * magnitude + 1e-6 + (kernel == .float ? 0 : roundingBound)
                XCTAssertLessThanOrEqual(error, bound, "\(type.name) \(kernel) row \(r) vector \(v): \(out[v * rows + r]) vs \(exact)", line: line)
            }
        }
        print("\(type.name) \(kernel) \(rows)×\(columns), \(vectors) vector(s): worst |Δ|/Σ|w·x| = \(worst)")
    }

    /// Odd block counts, one block, row counts that are not multiples of 16 (the VNNI kernel's
    /// padded, masked last group), bias, and more vectors than one register group (8): remainder
    /// groups, for every type and kernel.
    func testOddBlockCountsBiasAndVectorGroups() throws {
        for type in [GGMLType.q4_0, .q4_1, .q8_0] {
            try check(type, rows: 19, columns: 32, vectors: 1, bias: true)
            try check(type, rows: 23, columns: 96, vectors: 11, bias: true)
            try check(type, rows: 41, columns: 224, vectors: 9)
        }
    }

    /// Many products in a row through the pool, with chunks spread over both threads, equal the
    /// same products run on one thread (bit for bit: a chunk's arithmetic does not depend on
    /// which thread runs it).
    func testPoolMatchesSingleThread() throws {
        let rows = 900, columns = 576
        let values = Support.randomFloats(rows * columns, seed: 5)
        let matrix = try values.withUnsafeBufferPointer { try BlockQuantizer.matrix(.q4_1, name: "w", values: $0.baseAddress!, rows: rows, columns: columns) }
        let x = Support.randomFloats(3 * columns, seed: 6)
        func run(threads: Int) -> [Float] {
            let saved = Parallel.threadCount
            Parallel.threadCount = threads
            defer { Parallel.threadCount = saved }
            var out = [Float](repeating: .nan, count: 3 * rows)
            for _ in 0..<20 {
                x.withUnsafeBufferPointer { xp in
                    out.withUnsafeMutableBufferPointer { op in
                        QuantizedLinear.forward(jobs: [LinearJob(weight: matrix, bias: nil, out: op.baseAddress!, outStride: rows)],
                                                input: xp.baseAddress!, vectors: 3, inFeatures: columns, scratch: LinearScratch())
                    }
                }
            }
            return out
        }
        XCTAssertFalse(run(threads: 2).contains { $0.isNaN })
        XCTAssertEqual(run(threads: 2), run(threads: 1))
    }

    /// The MLP's down projection of silu(gate) ⊙ up: the interleaved kernels quantize the product
    /// straight from gate and up with their own AVX-512 e^x; every kernel must give what SwiGLU
    /// written out and then multiplied gives (the e^x's differ by ~1 ulp, below the int16 step).
    func testSwiGLUInputMatchesWrittenOutProduct() throws {
        let saved = QuantizedLinear.kernel
        defer { setDecodeKernel(saved) }
        let rows = 48, columns = 160, vectors = 9
        let values = Support.randomFloats(rows * columns, seed: 21)
        let matrix = try values.withUnsafeBufferPointer { try BlockQuantizer.matrix(.q4_1, name: "down", values: $0.baseAddress!, rows: rows, columns: columns) }
        let gate = Support.randomFloats(vectors * columns, seed: 22, scale: 6), up = Support.randomFloats(vectors * columns, seed: 23, scale: 2)
        var product = [Float](repeating: 0, count: vectors * columns)
        SwiGLU.forward(out: &product, gate: gate, up: up, count: product.count)
        for kernel in DecodeKernel.supported {
            setDecodeKernel(kernel)
            var expected = [Float](repeating: .nan, count: vectors * rows), fused = expected
            product.withUnsafeBufferPointer { xp in
                expected.withUnsafeMutableBufferPointer { op in
                    QuantizedLinear.forward(jobs: [LinearJob(weight: matrix, bias: nil, out: op.baseAddress!, outStride: rows)],
                                            input: xp.baseAddress!, vectors: vectors, inFeatures: columns, scratch: LinearScratch())
                }
            }
            var gateCopy = gate
            gateCopy.withUnsafeMutableBufferPointer { gp in
                up.withUnsafeBufferPointer { upp in
                    fused.withUnsafeMutableBufferPointer { op in
                        QuantizedLinear.forwardSwiGLU(jobs: [LinearJob(weight: matrix, bias: nil, out: op.baseAddress!, outStride: rows)],
                                                      gate: gp.baseAddress!, up: upp.baseAddress!, vectors: vectors, inFeatures: columns,
                                                      scratch: LinearScratch())
                    }
                }
            }
            let scale = expected.map(abs).max()!
            XCTAssertGreaterThan(scale, 1, "\(kernel): a degenerate product")
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(expected, fused), 1e-4 * scale, "\(kernel)")
        }
    }

    func testQ4_0() throws {
        for n in [1, 3, 6] { try check(.q4_0, rows: 37, columns: 192, vectors: n) }
    }

    func testQ4_1() throws {
        for n in [1, 3, 6] { try check(.q4_1, rows: 37, columns: 192, vectors: n) }
    }

    func testQ8_0() throws {
        for n in [1, 3, 6] { try check(.q8_0, rows: 37, columns: 192, vectors: n) }
    }

    /// Big enough to go through both threads, and through the dequantized-tile + sgemm path.
    func testLargeShapesThreadedAndTiled() throws {
        try check(.q4_1, rows: 700, columns: 576, vectors: 1)
        try check(.q8_0, rows: 700, columns: 576, vectors: 5)
        try check(.q4_0, rows: 600, columns: 576, vectors: QuantizedLinear.gemmThreshold + 3)
    }

    func testF32MatrixGoesThroughBLAS() throws {
        let rows = 40, columns = 64
        let buffer = FloatBuffer(Support.randomFloats(rows * columns, seed: 3))
        let matrix = try WeightMatrix.make(name: "f", rows: rows, columns: columns, storage: .float32(UnsafePointer(buffer.pointer)), owner: buffer)
        let x = Support.randomFloats(2 * columns, seed: 4)
        var out = [Float](repeating: 0, count: 2 * rows)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                QuantizedLinear.forward(jobs: [LinearJob(weight: matrix, bias: nil, out: op.baseAddress!, outStride: rows)],
                                        input: xp.baseAddress!, vectors: 2, inFeatures: columns, scratch: LinearScratch())
            }
        }
        for v in 0..<2 {
            for r in 0..<rows {
                var exact = 0.0
                for c in 0..<columns { exact += Double(buffer.pointer[r * columns + c]) * Double(x[v * columns + c]) }
                XCTAssertEqual(Double(out[v * rows + r]), exact, accuracy: 1e-4)
            }
        }
    }
}
