import CInferenceKernels
import Checkpoints
import Dispatch
import TensorMath

/// One product of a fused step: `out[v · outStride + r] = W[r] · x[v] (+ bias[r])`.
struct LinearJob {
    var weight: WeightMatrix
    var bias: UnsafePointer<Float>?
    var out: UnsafeMutablePointer<Float>
    var outStride: Int
}

/// Scratch the products need, grown on demand (owned by a workspace, one per model).
final class LinearScratch {
    private(set) var sums = FloatBuffer(count: 0)
    private(set) var tile = FloatBuffer(count: 0)
    private(set) var permuted = FloatBuffer(count: 0)
    private(set) var scales = FloatBuffer(count: 0)
    private(set) var quantized = UnsafeMutablePointer<Int16>.allocate(capacity: 1)
    private(set) var quantizedCount = 1
    deinit { quantized.deallocate() }
    func scales(_ count: Int) -> UnsafeMutablePointer<Float> {
        if scales.count < count { scales = FloatBuffer(count: count) }
        return scales.pointer
    }
    func quantized(_ count: Int) -> UnsafeMutablePointer<Int16> {
        if quantizedCount < count {
            quantized.deallocate()
            quantized = UnsafeMutablePointer<Int16>.allocate(capacity: count)
            quantizedCount = count
        }
        return quantized
    }
    func permuted(_ count: Int) -> UnsafeMutablePointer<Float> {
        if permuted.count < count { permuted = FloatBuffer(count: count) }
        return permuted.pointer
    }
    func sums(_ count: Int) -> UnsafeMutablePointer<Float> {
        if sums.count < count { sums = FloatBuffer(count: count) }
        return sums.pointer
    }
    func tile(_ count: Int) -> UnsafeMutablePointer<Float> {
        if tile.count < count { tile = FloatBuffer(count: count) }
        return tile.pointer
    }
}

/// `Linear.forward` over `WeightMatrix` weights, for `vectors` activation rows `[n, in]`.
///
/// - Few rows (decode, batched decode): `BlockDot` reads the quant blocks directly; the rows of
///   all jobs sharing one input (q, k, v; gate, up) are split over the threads in ONE parallel
///   region, so a layer costs 4 fork/joins instead of 7.
/// - Many rows (prefill): tiles of the weight are dequantized (in parallel) into a Float32 scratch
///   and multiplied by sgemm — compute-bound work where OpenBLAS's kernel wins over any
///   block-by-block loop (measured in the bench: see docs/ARCHITECTURE.md Inference).
/// Which direct kernel decode uses.
public enum DecodeKernel: Sendable {
    /// AVX2 C kernel: weights widened to int16 × x rounded to int16 per block (vpmaddwd).
    case int16
    /// Swift SIMD: weights unpacked to Float, x exact (`BlockDot`).
    case float
}

enum QuantizedLinear {
    /// Measured (bench `kernels`, SmolLM2 Q4_1, shared 2-core machine): Float 24–40 tokens/s,
    /// int16 19–31 — decode waits on the weight stream, so the int16 kernel's fewer instructions
    /// do not pay here. The bench keeps comparing both.
    nonisolated(unsafe) static var kernel: DecodeKernel = .float
    /// From this many rows on, tiles + sgemm (decided by measurement on SmolLM2, see the bench).
    static let defaultGEMMThreshold = 12
    nonisolated(unsafe) static var gemmThreshold = defaultGEMMThreshold
    /// Dequantized tile size in floats (16 MB: every SmolLM2 layer matrix in one tile). Small tiles
    /// (1 MB, L2-sized) were slower: each tile alternates our dequantization threads with
    /// OpenBLAS's, whose idle threads spin in sched_yield — measured ~50% of prefill time on the
    /// loaded 2-core machine.
    static let tileFloats = 4_194_304

    static func forward(jobs: [LinearJob], input: UnsafePointer<Float>, vectors n: Int, inFeatures: Int, scratch: LinearScratch) {
        if n >= gemmThreshold {
            for job in jobs { tiledGEMM(job, input: input, vectors: n, scratch: scratch) }
        } else {
            direct(jobs, input: input, vectors: n, inFeatures: inFeatures, scratch: scratch)
        }
        for job in jobs {
            guard let bias = job.bias else { continue }
            for v in 0..<n {
                let row = job.out + v * job.outStride
                for r in 0..<job.weight.rows { row[r] += bias[r] }
            }
        }
    }

    private static func direct(_ jobs: [LinearJob], input: UnsafePointer<Float>, vectors n: Int, inFeatures: Int, scratch: LinearScratch) {
        var blockJobs: [LinearJob] = []
        for job in jobs {
            switch job.weight.storage {
            case .float32(let w):
                if n == 1 {
                    BLAS.gemv(.none, m: job.weight.rows, n: inFeatures, a: w, lda: inFeatures, x: input, y: job.out)
                } else {
                    BLAS.gemm(.none, .transpose, m: n, n: job.weight.rows, k: inFeatures, a: input, lda: inFeatures,
                              b: w, ldb: inFeatures, c: job.out, ldc: job.outStride)
                }
            case .blocks:
                blockJobs.append(job)
            }
        }
        if blockJobs.isEmpty { return }
        let blocks = inFeatures / 32
        let sums = scratch.sums(n * blocks)
        let useInt16 = kernel == .int16
        let permuted = scratch.permuted(useInt16 ? 1 : n * inFeatures)
        let scales = scratch.scales(n * blocks)
        let quantized = scratch.quantized(useInt16 ? n * inFeatures : 1)
        if useInt16 {
            lf_quantize_i16(input, n, inFeatures, quantized, scales, sums)
        } else {
            BlockSums.compute(input, vectors: n, width: inFeatures, into: sums, permuted: permuted)
        }
        let totalRows = blockJobs.reduce(0) { $0 + $1.weight.rows }
        // Below ~64k multiply-adds a fork/join costs more than it saves.
        let parts = totalRows * inFeatures * n < 65_536 ? 1 : min(Parallel.threadCount, totalRows)
        let run: (Int) -> Void = { part in
            let start = part * totalRows / parts, end = (part + 1) * totalRows / parts
            var base = 0
            for job in blockJobs {
                let lower = max(start, base), upper = min(end, base + job.weight.rows)
                if lower < upper, case .blocks(let type, let weights) = job.weight.storage {
                    if useInt16 {
                        lf_rows_i16(Int32(type.rawValue), weights.assumingMemoryBound(to: UInt8.self), lower - base, upper - base, blocks,
                                    quantized, scales, sums, n, job.out, job.outStride)
                    } else {
                        BlockDot.rows(type, weights: weights, rows: (lower - base)..<(upper - base), blocks: blocks, permuted: permuted,
                                      sums: sums, vectors: n, out: job.out, outStride: job.outStride)
                    }
                }
                base += job.weight.rows
            }
        }
        if parts == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: run) }
    }

    private static func tiledGEMM(_ job: LinearJob, input: UnsafePointer<Float>, vectors n: Int, scratch: LinearScratch) {
        let w = job.weight, k = w.columns
        if case .float32(let pointer) = w.storage {
            BLAS.gemm(.none, .transpose, m: n, n: w.rows, k: k, a: input, lda: k, b: pointer, ldb: k, c: job.out, ldc: job.outStride)
            return
        }
        let tileRows = max(16, min(w.rows, tileFloats / k))
        let tile = scratch.tile(tileRows * k)
        var r0 = 0
        while r0 < w.rows {
            let count = min(tileRows, w.rows - r0)
            Parallel.forEachRange(count, grain: 32) { range in
                w.dequantize(rows: (r0 + range.lowerBound)..<(r0 + range.upperBound), into: tile + range.lowerBound * k)
            }
            BLAS.gemm(.none, .transpose, m: n, n: count, k: k, a: input, lda: k, b: tile, ldb: k, c: job.out + r0, ldc: job.outStride)
            r0 += count
        }
    }
}

/// Benchmarks: override the row count from which products go through tiles + sgemm (nil = default).
public func setPrefillGEMMThreshold(_ rows: Int?) {
    QuantizedLinear.gemmThreshold = rows ?? QuantizedLinear.defaultGEMMThreshold
}

/// Benchmarks and tests: choose the direct decode kernel.
public func setDecodeKernel(_ kernel: DecodeKernel) { QuantizedLinear.kernel = kernel }
