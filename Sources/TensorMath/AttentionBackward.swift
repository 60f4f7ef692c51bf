import CTrainingKernels
import Foundation

/// Attention backward: one pass of work items, each a query block of one kv group, that uses its
/// block of probs and dscores while they are in cache.
///
/// Per item (stacked rows R = G·(r1 − r0) of group g, keys 0..<K, K = r1 when causal):
///   dprobs = dout_s · v_gᵀ            [R, K]  (into the worker's own dscores block)
///   dscores = p ⊙ (dprobs − Σ dprobs·p), 0 on the masked part
///   dq_s (+)= scale · dscores · k_g   [R, D]
///   dv partial of this block = p_blockᵀ · dout_s        [K, D]
///   dk partial of this block = scale · dscoresᵀ · q_s   [K, D]
/// then dk/dv (+)= Σ over the blocks that see key c of their partials, in block order.
///
/// Why: a layer's probs and dscores (SmolLM2: 9 × 512² floats = 9.4 MB each) do not fit a core's
/// 2 MB L2. A separate dk/dv pass over key blocks re-read both from memory, and its products ran
/// at 33–36 GFLOP/s where the same shape with operands in cache runs at 75–86
/// (`TrainBench --kernels --profile`). The dscores block now never leaves the worker's scratch,
/// probs is read once, hot. The partials (Σ keys · D per group and block: ~1 MB per SmolLM2 layer)
/// are summed in a fixed order, so the result does not depend on which worker ran which item.
extension Attention {
    /// dq `[T, heads·D]`, dk and dv `[T, kvHeads·D]` from dout `[T, heads·D]`: accumulated onto
    /// the buffers (`accumulate`, the ops' convention) or written over them (`accumulate: false`,
    /// which saves the caller a zeroing pass).
    public static func backward(
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>,
        probs: UnsafePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        shape: Shape, scale: Float, accumulate: Bool = true
    ) {
        backward(dq: dq, dk: dk, dv: dv, dout: dout, probs: probs, q: q, k: k, v: v,
                 segments: [shape.tokens], shape: shape, scale: scale, accumulate: accumulate)
    }

    /// `backward` of the packed `forward(…segments:…)`.
    public static func backward(
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>,
        probs: UnsafePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        segments lengths: [Int], shape: Shape, scale: Float, accumulate: Bool = true
    ) {
        precondition(lengths.reduce(0, +) == shape.tokens, "Attention: segments \(lengths) do not add up to \(shape.tokens) tokens")
        OpProfile.measure("attention.backward") {
            let d = shape.headDim, kw = shape.kvWidth, gs = shape.groupSize, size = shape.tokens * shape.qWidth
            let segments = layout(lengths, heads: shape.heads)
            // Stacked q, dout and dq (`[kvHeads, T, G, D]` each) when groups have several heads.
            let stack = gs > 1 ? stackScratch.take(count: 3 * size) : nil
            defer { if let stack { stackScratch.give(stack) } }
            let qPacked = stack?.pointer, doutPacked = stack.map { $0.pointer + size }, dqPacked = stack.map { $0.pointer + 2 * size }
            // Partial dv then dk of each (segment, group, query block): keys(block) × D floats each.
            let plan = PartialPlan(segments, shape)
            let partials = partialScratch.take(count: 2 * plan.count)
            defer { partialScratch.give(partials) }
            let dvPartials = partials.pointer, dkPartials = partials.pointer + plan.count
            let maxRows = causalBlockRows * gs, maxKeys = lengths.max() ?? 0
            let betaFirst: Float = accumulate ? 1 : 0
            let blockKernels = usesBlockKernels(shape)
            // The block kernels take each group's values transposed, formed once here.
            let transposed = blockKernels ? TransposedGroups(segments, shape) : nil
            let valuesT = transposed.map { transposeScratch.take(count: $0.count) }
            defer { if let valuesT { transposeScratch.give(valuesT) } }
            if let transposed, let valuesT { transposed.fill(valuesT.pointer, from: v, segments, shape) }
            run(queryBlocks(segments, shape), blas: !blockKernels) { item in
                let b = Block(item, segments, shape)
                let (t, g, r0, keys, rows, first, tokens) = (b.t, b.g, b.r0, b.keys, b.rows, b.first, b.tokens)
                let p = probs + b.probsOffset, vs = v + b.kvOffset, ks = k + b.kvOffset
                if let qPacked, let doutPacked {
                    pack(q, into: qPacked, group: g, rows: tokens, shape: shape)
                    pack(dout, into: doutPacked, group: g, rows: tokens, shape: shape)
                }
                let dos = stacked(UnsafeMutablePointer(mutating: dout), packed: doutPacked, group: g, row: first, shape: shape)
                let qs = stacked(UnsafeMutablePointer(mutating: q), packed: qPacked, group: g, row: first, shape: shape)
                let offset = plan.offset(segment: item.segment, group: g, block: r0 / causalBlockRows)
                if let transposed, let valuesT {
                    let dqs = stacked(dq, packed: dqPacked, group: g, row: first, shape: shape)
                    var kernel = b.kernelBlock(shape, scale: scale)
                    let scratch = dscoresPool.take(count: lf_attention_block_scratch(maxRows, maxKeys))
                    lf_attention_block_backward(&kernel, qs.base, qs.ld, ks, kw,
                                                transposed.group(valuesT.pointer, segment: item.segment, group: g), transposed.ld[item.segment],
                                                dos.base, dos.ld, p, t,
                                                dqs.base, dqs.ld, dqPacked == nil && accumulate ? 1 : 0,
                                                dvPartials + offset, dkPartials + offset, scratch.pointer)
                    dscoresPool.give(scratch)
                    if let dqPacked { unpack(dqPacked, into: dq, group: g, rows: tokens, shape: shape, accumulate: accumulate) }
                    return
                }
                let block = dscoresPool.take(count: maxRows * maxKeys)
                defer { dscoresPool.give(block) }
                let ds = block.pointer  // [rows, keys]
                BLAS.gemm(.none, .transpose, m: rows, n: keys, k: d, a: dos.base, lda: dos.ld, b: vs, ldb: kw, c: ds, ldc: keys)
                OpProfile.measure("attention.softmax.backward") {
                    for row in 0..<rows {
                        let valid = shape.causal ? r0 + row / gs + 1 : t
                        softmaxBackwardRow(ds + row * keys, probs: p + row * t, count: valid)
                        if valid < keys { (ds + row * keys + valid).update(repeating: 0, count: keys - valid) }
                    }
                }
                let dqs = stacked(dq, packed: dqPacked, group: g, row: first, shape: shape)
                BLAS.gemm(.none, .none, m: rows, n: d, k: keys, alpha: scale, a: ds, lda: keys, b: ks, ldb: kw,
                          beta: dqPacked == nil ? betaFirst : 0, c: dqs.base, ldc: dqs.ld)
                if let dqPacked { unpack(dqPacked, into: dq, group: g, rows: tokens, shape: shape, accumulate: accumulate) }
                // This block's share of dv and dk for keys 0..<keys (masked entries of p and ds are 0).
                BLAS.gemm(.transpose, .none, m: keys, n: d, k: rows, a: p, lda: t, b: dos.base, ldb: dos.ld,
                          c: dvPartials + offset, ldc: d)
                BLAS.gemm(.transpose, .none, m: keys, n: d, k: rows, alpha: scale, a: ds, lda: keys, b: qs.base, ldb: qs.ld,
                          c: dkPartials + offset, ldc: d)
            }
            // dk/dv rows c0..<c1 of a group = Σ, block by block in order, of the partials that cover them.
            OpProfile.measure("attention.backward.sum") {
                run(keyBlocks(segments, shape), blas: false) { item in
                    let segment = segments[item.segment], t = segment.length, g = item.group
                    let blocks = (t + causalBlockRows - 1) / causalBlockRows
                    let firstBlock = shape.causal ? item.r0 / causalBlockRows : 0
                    for c in item.r0..<item.r1 {
                        let dvRow = dv + (segment.start + c) * kw + g * d, dkRow = dk + (segment.start + c) * kw + g * d
                        if !accumulate {
                            dvRow.update(repeating: 0, count: d)
                            dkRow.update(repeating: 0, count: d)
                        }
                        for b in firstBlock..<blocks {
                            let at = plan.offset(segment: item.segment, group: g, block: b) + c * d
                            let pv = dvPartials + at, pk = dkPartials + at
                            for x in 0..<d {
                                dvRow[x] += pv[x]
                                dkRow[x] += pk[x]
                            }
                        }
                    }
                }
            }
        }
    }

    /// Where each (segment, group, query block)'s partial dk/dv (`[keys, D]`) lies.
    struct PartialPlan {
        var starts: [Int] = []  // per segment: offset of (group 0, block 0); groups follow, blocks within
        var blockOffsets: [[Int]] = []  // per segment: offset of block b within one group's run
        var groupStride: [Int] = []
        var count = 0

        init(_ segments: [Segment], _ shape: Shape) {
            for segment in segments {
                let t = segment.length
                var offsets: [Int] = [], within = 0, r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + causalBlockRows)
                    offsets.append(within)
                    within += (shape.causal ? r1 : t) * shape.headDim
                    r0 = r1
                }
                starts.append(count)
                blockOffsets.append(offsets)
                groupStride.append(within)
                count += within * shape.kvHeads
            }
        }

        @inline(__always)
        func offset(segment s: Int, group g: Int, block b: Int) -> Int {
            starts[s] + g * groupStride[s] + blockOffsets[s][b]
        }
    }

    /// Each worker's dscores block (`[rows·G, keys]`, the block kernels' rows rounded up to 16
    /// keys): a small pool, so the block a worker reuses item after item stays in its cache.
    static let dscoresPool = BufferPool()
}

/// Buffers handed out one per concurrent user and taken back (a lock-protected stack).
final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [FloatBuffer] = []

    func take(count: Int) -> FloatBuffer {
        lock.lock()
        defer { lock.unlock() }
        if let index = free.lastIndex(where: { $0.count >= count }) { return free.remove(at: index) }
        return FloatBuffer(count: count)
    }

    func give(_ buffer: FloatBuffer) {
        lock.lock()
        defer { lock.unlock() }
        if free.count < 8 { free.append(buffer) }
    }
}
