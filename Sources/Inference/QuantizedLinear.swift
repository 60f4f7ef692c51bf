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

/// Which direct kernel decode uses.
public enum DecodeKernel: Sendable, CaseIterable {
    /// AVX-512 VNNI C kernel (vpdpwssd with broadcast activations) over the weights' interleaved
    /// copy (16 rows per register), x rounded to int16 per block, rows split over the persistent
    /// pool. The default where the CPU has it.
    case vnni
    /// AVX2 C kernel: weights widened to int16 × x rounded to int16 per block (vpmaddwd), pool.
    case int16
    /// Swift SIMD: weights unpacked to Float, x exact (`BlockDot`), libdispatch.
    case float

    /// The kernels this CPU runs, best first.
    public static var supported: [DecodeKernel] { lf_has_vnni() != 0 ? [.vnni, .int16, .float] : [.int16, .float] }
    public static var best: DecodeKernel { supported[0] }
}

/// `Linear.forward` over `WeightMatrix` weights, for `vectors` activation rows `[n, in]`.
///
/// - Quant blocks through the C kernels (`.vnni` / `.int16`): x is rounded to int16 per 32-block
///   once per product, then every job sharing that input (q, k, v; gate, up) is ONE parallel region
///   on the persistent pool (`lf_linear`): rows × groups of 8 vectors cut into chunks, each weight
///   block unpacked once for up to 8 vectors — decode, batched decode and prefill alike.
/// - `.float` (Swift `BlockDot`, libdispatch), the previous kernel, stays for comparison; with it,
///   many rows (prefill) go through dequantized tiles + sgemm.
/// - F32 weights: sgemv / sgemm.
enum QuantizedLinear {
    nonisolated(unsafe) static var kernel: DecodeKernel = .best
    /// From this many rows on, the `.float` kernel hands products to tiles + sgemm (measured on
    /// SmolLM2, bench `threshold`). The int kernels run every row count directly.
    static let defaultGEMMThreshold = 12
    nonisolated(unsafe) static var gemmThreshold = defaultGEMMThreshold
    /// Dequantized tile size in floats (16 MB: every SmolLM2 layer matrix in one tile). Small tiles
    /// (1 MB, L2-sized) were slower: each tile alternates our dequantization threads with
    /// OpenBLAS's, whose idle threads spin in sched_yield — measured ~50% of prefill time on the
    /// loaded 2-core machine.
    static let tileFloats = 4_194_304

    static func forward(jobs: [LinearJob], input: UnsafePointer<Float>, vectors n: Int, inFeatures: Int, scratch: LinearScratch) {
        if kernel != .float {
            integer(jobs, input: input, gatedBy: nil, vectors: n, inFeatures: inFeatures, scratch: scratch)
            return
        }
        if n >= gemmThreshold {
            for job in jobs { tiledGEMM(job, input: input, vectors: n, scratch: scratch) }
            addBias(jobs, vectors: n)
        } else {
            direct(jobs, input: input, vectors: n, inFeatures: inFeatures, scratch: scratch)
        }
    }

    private static func addBias(_ jobs: [LinearJob], vectors n: Int) {
        for job in jobs {
            guard let bias = job.bias else { continue }
            for v in 0..<n {
                let row = job.out + v * job.outStride
                for r in 0..<job.weight.rows { row[r] += bias[r] }
            }
        }
    }

    /// Float32 weights through BLAS (bias added); returns the block jobs left for the kernels.
    private static func floatJobs(_ jobs: [LinearJob], input: UnsafePointer<Float>, vectors n: Int, inFeatures: Int) -> [LinearJob] {
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
                addBias([job], vectors: n)
            case .blocks:
                blockJobs.append(job)
            }
        }
        return blockJobs
    }

    /// `forward` of silu(gate) ⊙ up (`[n, inFeatures]` each) — the LLaMA MLP's down projection.
    /// The interleaved kernels quantize the product straight from gate and up (no Float pass over
    /// it, in C); every other path writes it into `gate` first (clobbering it) and runs `forward`.
    static func forwardSwiGLU(jobs: [LinearJob], gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, vectors n: Int,
                              inFeatures: Int, scratch: LinearScratch) {
        if kernel == .vnni, jobs.allSatisfy({ $0.weight.interleaved != nil }) {
            integer(jobs, input: gate, gatedBy: up, vectors: n, inFeatures: inFeatures, scratch: scratch)
            return
        }
        SwiGLU.forward(out: gate, gate: gate, up: up, count: n * inFeatures)
        forward(jobs: jobs, input: gate, vectors: n, inFeatures: inFeatures, scratch: scratch)
    }

    /// `gatedBy` (interleaved jobs only): the input is silu(input) ⊙ gatedBy.
    private static func integer(_ jobs: [LinearJob], input: UnsafePointer<Float>, gatedBy up: UnsafePointer<Float>?, vectors n: Int,
                                inFeatures: Int, scratch: LinearScratch) {
        WorkerPool.prepare()
        let blockJobs = floatJobs(jobs, input: input, vectors: n, inFeatures: inFeatures)
        if blockJobs.isEmpty { return }
        let blocks = inFeatures / 32
        let layout: Int32
        let quantized: UnsafeMutablePointer<Int16>, scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>
        let interleaved = kernel == .vnni && blockJobs.allSatisfy { $0.weight.interleaved != nil }
        precondition(up == nil || interleaved, "QuantizedLinear: a gated input needs the interleaved kernels")
        if interleaved {
            layout = LF_LAYOUT_INTERLEAVED
            quantized = scratch.quantized(n * inFeatures)
            scales = scratch.scales(n * blocks)
            sums = scratch.sums(n * blocks)
            if let up {
                lf_quantize_panels_swiglu(input, up, n, inFeatures, quantized, scales, sums)
            } else {
                lf_quantize_panels(input, n, inFeatures, quantized, scales, sums)
            }
        } else {
            layout = LF_LAYOUT_I16
            quantized = scratch.quantized(n * inFeatures)
            scales = scratch.scales(n * blocks)
            sums = scratch.sums(n * blocks)
            lf_quantize_i16(input, n, inFeatures, quantized, scales, sums)
        }
        withUnsafeTemporaryAllocation(of: lf_job.self, capacity: blockJobs.count) { cJobs in
            for (i, job) in blockJobs.enumerated() {
                guard case .blocks(let type, let weights) = job.weight.storage else { continue }
                let read = interleaved ? UnsafeRawPointer(job.weight.interleaved!.pointer) : weights
                cJobs[i] = lf_job(type: Int32(type.rawValue), weights: read.assumingMemoryBound(to: UInt8.self), rows: job.weight.rows,
                                  bias: job.bias, out: job.out, out_stride: job.outStride)
            }
            lf_linear(layout, cJobs.baseAddress!, Int32(blockJobs.count), blocks, quantized, scales, sums, n)
        }
    }

    private static func direct(_ jobs: [LinearJob], input: UnsafePointer<Float>, vectors n: Int, inFeatures: Int, scratch: LinearScratch) {
        let blockJobs = floatJobs(jobs, input: input, vectors: n, inFeatures: inFeatures)
        if blockJobs.isEmpty { return }
        let blocks = inFeatures / 32
        let sums = scratch.sums(n * blocks)
        let permuted = scratch.permuted(n * inFeatures)
        BlockSums.compute(input, vectors: n, width: inFeatures, into: sums, permuted: permuted)
        let totalRows = blockJobs.reduce(0) { $0 + $1.weight.rows }
        // Below ~64k multiply-adds a fork/join costs more than it saves.
        let parts = totalRows * inFeatures * n < 65_536 ? 1 : min(Parallel.threadCount, totalRows)
        let run: (Int) -> Void = { part in
            let start = part * totalRows / parts, end = (part + 1) * totalRows / parts
            var base = 0
            for job in blockJobs {
                let lower = max(start, base), upper = min(end, base + job.weight.rows)
                if lower < upper, case .blocks(let type, let weights) = job.weight.storage {
                    BlockDot.rows(type, weights: weights, rows: (lower - base)..<(upper - base), blocks: blocks, permuted: permuted,
                                  sums: sums, vectors: n, out: job.out, outStride: job.outStride)
                }
                base += job.weight.rows
            }
        }
        if parts == 1 { run(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: run) }
        addBias(blockJobs, vectors: n)
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

/// The direct decode kernel in use.
public func currentDecodeKernel() -> DecodeKernel { QuantizedLinear.kernel }

/// Swift front of the C persistent pool (`lf_pool_run`): `body(i)` for every `i` in `0..<chunks`,
/// spread over `Parallel.threadCount` threads; returns when all are done.
enum WorkerPool {
    /// Sizes the pool from `Parallel.threadCount` (checked on every call: tests change it).
    @inline(__always)
    static func prepare() {
        let wanted = Int32(max(1, Parallel.threadCount))
        if lf_pool_threads() != wanted { lf_pool_set_threads(wanted) }
    }

    static func run(_ chunks: Int, _ body: (Int) -> Void) {
        prepare()
        if chunks <= 1 {
            if chunks == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            var task = escaping
            withUnsafeMutablePointer(to: &task) { pointer in
                lf_pool_run(chunks, { context, chunk in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(chunk)
                }, pointer)
            }
        }
    }
}
