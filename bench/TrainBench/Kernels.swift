// `TrainBench --config C --kernels [--repeat N] [--profile]`: the element-wise and attention kernels of one
// decoder layer of the config's training step, each timed alone, best (and median) of N runs.
// `--profile` adds attention's per-sgemm-shape and softmax times (OpProfile) of one call. Attention
// is timed on both of its paths (the AVX-512 block kernels and the sgemm one) where both exist.
// Short runs repeated and the best kept are what survives a shared machine: the step's
// wall-clock shares move with the load, a kernel's best-of-N much less. One JSON object.
import Dispatch
import Foundation
import Models
import TensorMath

func kernelBench(_ bench: BenchConfig, repetitions: Int, profile: Bool) -> [String: Any] {
    let c = bench.text, t = bench.sequenceLength, rows = bench.batch * t
    let hidden = c.hiddenSize, inter = c.intermediateSize, qw = c.qWidth, kw = c.kvWidth
    func filled(_ count: Int, _ seed: Int) -> FloatBuffer {
        let b = FloatBuffer(count: count)
        for i in 0..<count { b.pointer[i] = Float(((i &* 2_654_435_761 &+ seed &* 40_503) & 0xFFFF)) / 32_768 - 1 }
        return b
    }
    let q = filled(rows * qw, 1), k = filled(rows * kw, 2), v = filled(rows * kw, 3), dout = filled(rows * qw, 4)
    let out = FloatBuffer(count: rows * qw), dq = FloatBuffer(count: rows * qw), dk = FloatBuffer(count: rows * kw), dv = FloatBuffer(count: rows * kw)
    let probs = FloatBuffer(count: c.numAttentionHeads * bench.batch * t * t)
    let x = filled(rows * hidden, 5), dy = filled(rows * hidden, 6), weight = filled(hidden, 7), normOut = FloatBuffer(count: rows * hidden)
    let rstd = FloatBuffer(count: rows), dx = FloatBuffer(count: rows * hidden), dweight = FloatBuffer(count: hidden)
    let gate = filled(rows * inter, 8), up = filled(rows * inter, 9), dgated = filled(rows * inter, 10)
    let gated = FloatBuffer(count: rows * inter), dgate = FloatBuffer(count: rows * inter), dup = FloatBuffer(count: rows * inter)
    let shape = Attention.Shape(tokens: t, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim, causal: true)
    let scale = 1 / Float(c.headDim).squareRoot()

    var results: [[String: Any]] = []
    // Wall-clock and process CPU time (all threads) of each run: on a shared machine the wall
    // clock moves with the other processes, the CPU time (the work our threads did) much less.
    func cpuSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
    // A training step runs attention right after multi-threaded sgemms (the q/k/v projections),
    // whose OpenBLAS worker threads keep polling for work a while (OPENBLAS_THREAD_TIMEOUT): the
    // `… after a threaded sgemm` entries time the kernel in that state, untimed sgemm before each run.
    let weightForLinear = filled(inter * hidden, 11), linearOut = FloatBuffer(count: rows * inter)
    func threadedSGEMM() {
        BLAS.gemm(.none, .transpose, m: rows, n: inter, k: hidden, a: x.pointer, lda: hidden, b: weightForLinear.pointer, ldb: hidden,
                  c: linearOut.pointer, ldc: inter)
    }
    func time(_ name: String, flops: Double = 0, before: (() -> Void)? = nil, _ body: () -> Void) {
        body()
        var samples: [Double] = [], cpu: [Double] = []
        for _ in 0..<repetitions {
            before?()
            let start = DispatchTime.now().uptimeNanoseconds, cpuStart = cpuSeconds()
            body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            cpu.append(cpuSeconds() - cpuStart)
        }
        samples.sort()
        cpu.sort()
        var entry: [String: Any] = ["name": name, "best_seconds": samples[0], "median_seconds": samples[samples.count / 2],
                                    "best_cpu_seconds": cpu[0], "median_cpu_seconds": cpu[cpu.count / 2]]
        if flops > 0 { entry["best_gflops"] = flops / samples[0] / 1e9 }
        results.append(entry)
    }
    // Causal block products as the kernel runs them (QKᵀ and PV forward, four products backward).
    var blockPairs = 0.0, r0 = 0
    while r0 < t { let r1 = min(t, r0 + Attention.causalBlockRows); blockPairs += Double((r1 - r0) * r1); r0 = r1 }
    let attentionFlops = 2 * blockPairs * Double(c.headDim) * Double(c.numAttentionHeads) * Double(bench.batch)
    func attentionForward() {
        for s in 0..<bench.batch {
            Attention.forward(out: out.pointer + s * t * qw, probs: probs.pointer + s * c.numAttentionHeads * t * t,
                              q: q.pointer + s * t * qw, k: k.pointer + s * t * kw, v: v.pointer + s * t * kw, shape: shape, scale: scale)
        }
    }
    func attentionBackward() {
        for s in 0..<bench.batch {
            Attention.backward(dq: dq.pointer + s * t * qw, dk: dk.pointer + s * t * kw, dv: dv.pointer + s * t * kw,
                               dout: dout.pointer + s * t * qw, probs: probs.pointer + s * c.numAttentionHeads * t * t,
                               q: q.pointer + s * t * qw, k: k.pointer + s * t * kw, v: v.pointer + s * t * kw, shape: shape, scale: scale)
        }
    }
    // Both attention paths where the CPU has the block kernels (AttentionBlocks.c), alternating
    // over two rounds so a change in the machine's speed shows in both; else the sgemm path only.
    let paths = Attention.usesBlockKernels(headDim: c.headDim) ? [[true, false], [false, true]] : [[false]]
    for round in paths {
        for blockKernels in round {
            Attention.blockKernelsEnabled = blockKernels
            let path = blockKernels ? "block kernels" : "sgemm"
            time("attention.forward (all sequences, one layer) [\(path)]", flops: 2 * attentionFlops) { attentionForward() }
            time("attention.backward (all sequences, one layer) [\(path)]", flops: 4 * attentionFlops) { attentionBackward() }
            time("attention.forward after a threaded sgemm [\(path)]", flops: 2 * attentionFlops, before: threadedSGEMM) { attentionForward() }
            time("attention.backward after a threaded sgemm [\(path)]", flops: 4 * attentionFlops, before: threadedSGEMM) { attentionBackward() }
        }
    }
    Attention.blockKernelsEnabled = true
    var attentionProfile: [[String: Any]] = []
    if profile {
        // Where one layer's attention goes: per-sgemm-shape and softmax seconds of one call each.
        OpProfile.reset()
        OpProfile.isEnabled = true
        for _ in 0..<repetitions { attentionForward(); attentionBackward() }
        OpProfile.isEnabled = false
        attentionProfile = OpProfile.snapshot().map { e -> [String: Any] in
            var entry: [String: Any] = ["name": e.name, "calls_per_run": Double(e.calls) / Double(repetitions),
                                        "milliseconds_per_run": 1e3 * e.seconds / Double(repetitions)]
            if e.flops > 0 { entry["gflops"] = e.flops / e.seconds / 1e9 }
            return entry
        }
    }
    if profile {
        // dv of one key block over 3 × 512 stacked query rows, two ways (single-threaded, as
        // attention's items run them): dv = Pᵀ·dout [128, 64], or dvᵀ = doutᵀ·P [64, 128].
        let kRows = 1536, p = filled(kRows * t, 12), d = filled(kRows * c.headDim, 13), o = FloatBuffer(count: 128 * 128)
        for (label, m, n, a, lda, b, ldb) in [("dv = Pᵀ·dout (TN 128×64)", 128, c.headDim, p, t, d, c.headDim),
                                              ("dvᵀ = doutᵀ·P (TN 64×128)", c.headDim, 128, d, c.headDim, p, t)] {
            time("probe \(label) K=\(kRows)", flops: 2 * Double(m * n * kRows)) {
                BLASRuntime.withSingleThreadedBLAS {
                    BLAS.gemm(.transpose, .none, m: m, n: n, k: kRows, a: a.pointer, lda: lda, b: b.pointer, ldb: ldb, c: o.pointer, ldc: n)
                }
            }
        }
    }
    time("rmsnorm.forward") {
        RMSNorm.forward(out: normOut.pointer, rstd: rstd.pointer, input: x.pointer, weight: weight.pointer, rows: rows, dim: hidden, eps: 1e-5)
    }
    time("rmsnorm.backward") {
        RMSNorm.backward(dinput: dx.pointer, dweight: dweight.pointer, dout: dy.pointer, input: x.pointer, weight: weight.pointer,
                         rstd: rstd.pointer, rows: rows, dim: hidden)
    }
    time("swiglu.forward") { SwiGLU.forward(out: gated.pointer, gate: gate.pointer, up: up.pointer, count: rows * inter) }
    time("swiglu.backward") {
        SwiGLU.backward(dgate: dgate.pointer, dup: dup.pointer, dout: dgated.pointer, gate: gate.pointer, up: up.pointer, count: rows * inter)
    }
    return ["config": bench.name, "repetitions": repetitions, "kernels": results, "attention_profile": attentionProfile,
            "loadavg": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8).split(separator: " ").prefix(3).joined(separator: " ")) ?? "?"]
}
