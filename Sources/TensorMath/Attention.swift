import CTrainingKernels
import Foundation

/// Scaled dot-product attention with grouped-query heads.
///
/// Layouts (row-major): q `[T, heads·D]`, k and v `[T, kvHeads·D]`, out `[T, heads·D]`;
/// query head h reads key/value head g = h / G (G = heads / kvHeads, the group size), as
/// transformers' `repeat_kv`. probs holds softmax(scale·q·kᵀ + mask), kept because backward needs
/// it, as `[kvHeads, T, G, T]`: the G query heads of a kv group stacked row-interleaved (row
/// i·G + j is head g·G + j's query row i; `Shape.probsIndex`), so one group's block of query rows
/// is one contiguous `[rows·G, T]` matrix. For plain multi-head attention (G = 1) that is
/// `[heads, T, T]`. Several independent sequences may be packed row-wise (`segments`): each is its
/// own attention block with its own probs, one after another.
///
/// Stacked heads: every product of a group runs once on its G heads' rows stacked against the
/// shared k/v — M = G·128 rows instead of G products of 128 (SmolLM2: 9 heads over 3 kv heads,
/// 384-row sgemms), and dk/dv of a kv head sum the whole group in one product with K = G·rows.
/// q's heads are adjacent column blocks of each row, so the stacked `[T·G, D]` q (and dout, and
/// the stacked out/dq results) are packed copies in a per-call scratch — O(T·heads·D), against the
/// O(T²·heads·D) products. Measured why: single-threaded per-head sgemms of 128 × 64 ran at
/// 24–40 GFLOP/s, a third of a core's sgemm rate (bench/train_bench.results.md).
///
/// The work is cut into items — a query block of one kv group — that our own workers claim one at a time,
/// each item's products as single-threaded sgemms (`BLASRuntime.withSingleThreadedBLAS`): one
/// fork/join per pass over every group of every packed sequence, both cores busy to the end, and
/// no thread hand-off per small product (per-head products split over OpenBLAS's two threads cost
/// a hand-off each, which on a loaded machine took longer than the arithmetic). Every output
/// element is written by exactly one item, so no private copies or reductions are needed and the
/// result does not depend on which worker ran what.
///
/// Causal attention runs in query blocks of `causalBlockRows`: block [r0, r1) only scores keys
/// 0..<r1, skipping most of the masked upper triangle. A block's scores are softmaxed and
/// multiplied by v right after they are formed, while they are still in cache. Backward
/// (AttentionBackward.swift) consumes each block's probs and dscores while they are in cache too.
public enum Attention {
    public struct Shape: Sendable {
        public var tokens: Int
        public var heads: Int
        public var kvHeads: Int
        public var headDim: Int
        /// Causal (decoder) masking: token i attends to 0...i. False for the vision encoder.
        public var causal: Bool

        public init(tokens: Int, heads: Int, kvHeads: Int, headDim: Int, causal: Bool) {
            precondition(heads % kvHeads == 0, "Attention: \(heads) heads not a multiple of \(kvHeads) kv heads")
            self.tokens = tokens
            self.heads = heads
            self.kvHeads = kvHeads
            self.headDim = headDim
            self.causal = causal
        }

        var qWidth: Int { heads * headDim }
        var kvWidth: Int { kvHeads * headDim }
        var groupSize: Int { heads / kvHeads }
        public var probsCount: Int { heads * tokens * tokens }

        /// Index of probs entry (query head `head`, query row `row`, key `key`) of a sequence of
        /// `length` tokens, from that sequence's probs start: `[kvHeads, length, G, length]`.
        public func probsIndex(head: Int, row: Int, key: Int, length: Int) -> Int {
            let g = head / groupSize, j = head % groupSize
            return ((g * length + row) * groupSize + j) * length + key
        }
    }

    /// Query rows per block ((n+1)/2n of the full causal products for n blocks); key blocks of
    /// the backward use the same boundaries. A variable only so `TrainBench --attention-block`
    /// can measure other sizes; set it before any attention runs, never concurrently.
    nonisolated(unsafe) public static var causalBlockRows = 128

    /// Whether blocks run on the AVX-512 kernels of CTrainingKernels (AttentionBlocks.c) rather
    /// than single-threaded sgemms and the Swift softmax: when the CPU has AVX-512 and the head
    /// dim is a multiple of 16 (SmolLM2, ViT-B: 64). Measured why in AttentionBlocks.c. A variable
    /// so tests and `TrainBench --kernels` can run both paths; never change it concurrently.
    nonisolated(unsafe) public static var blockKernelsEnabled = true

    public static func usesBlockKernels(headDim: Int) -> Bool {
        blockKernelsEnabled && lf_attention_blocks_supported(headDim) != 0
    }

    static func usesBlockKernels(_ shape: Shape) -> Bool { usesBlockKernels(headDim: shape.headDim) }

    /// Floats of probs for packed sequences of `segments` lengths.
    public static func probsCount(heads: Int, segments: [Int]) -> Int { heads * segments.reduce(0) { $0 + $1 * $1 } }

    /// One packed sequence: first row, length, and where its probs start.
    struct Segment {
        var start: Int
        var length: Int
        var probsOffset: Int
    }

    static func layout(_ lengths: [Int], heads: Int) -> [Segment] {
        var result: [Segment] = [], start = 0, offset = 0
        for n in lengths {
            result.append(Segment(start: start, length: n, probsOffset: offset))
            start += n
            offset += heads * n * n
        }
        return result
    }

    /// A work item: query rows (or, in backward, key rows) r0..<r1 of one kv group of one segment.
    struct Item {
        var segment: Int
        var group: Int
        var r0: Int
        var r1: Int
        var cost: Int
    }

    /// Where one query-block item works, for forward and backward alike: its segment's length t,
    /// kv group g, query rows r0..<r1 (absolute tokens `tokens`, the first `first`), the keys it
    /// sees, its stacked row count (r1 − r0)·G, and the offsets of its probs rows `[rows, t]` and
    /// of its group's k/v columns.
    struct Block {
        var t: Int, g: Int, r0: Int, r1: Int, keys: Int, rows: Int, first: Int
        var tokens: Range<Int>
        var probsOffset: Int, kvOffset: Int

        init(_ item: Item, _ segments: [Segment], _ shape: Shape) {
            let segment = segments[item.segment]
            t = segment.length; g = item.group; r0 = item.r0; r1 = item.r1
            keys = shape.causal ? r1 : t
            rows = (r1 - r0) * shape.groupSize
            first = segment.start + r0
            tokens = first..<(segment.start + r1)
            probsOffset = segment.probsOffset + (g * t + r0) * shape.groupSize * t
            kvOffset = segment.start * shape.kvWidth + g * shape.headDim
        }

        /// The block as the C kernels take it.
        func kernelBlock(_ shape: Shape, scale: Float) -> lf_attention_block {
            lf_attention_block(rows: rows, keys: keys, head_dim: shape.headDim, group: shape.groupSize, first_token: r0,
                               causal: shape.causal ? 1 : 0, scale: scale)
        }
    }

    /// Query blocks of every (segment, kv group): rows r0..<r1 of the group's heads attend to keys
    /// 0..<keys(r1). Costliest first, so the cheap ones balance the workers at the end (ties in a
    /// fixed order).
    static func queryBlocks(_ segments: [Segment], _ shape: Shape) -> [Item] {
        var items: [Item] = []
        for (s, segment) in segments.enumerated() {
            let t = segment.length
            for g in 0..<shape.kvHeads {
                var r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + causalBlockRows)
                    items.append(Item(segment: s, group: g, r0: r0, r1: r1, cost: (r1 - r0) * (shape.causal ? r1 : t)))
                    r0 = r1
                }
            }
        }
        return sortedByCost(items)
    }

    /// Key blocks c0..<c1 of every (segment, kv group). Causal: only query rows c0..<T see these keys.
    static func keyBlocks(_ segments: [Segment], _ shape: Shape) -> [Item] {
        var items: [Item] = []
        for (s, segment) in segments.enumerated() {
            let t = segment.length
            for g in 0..<shape.kvHeads {
                var c0 = 0
                while c0 < t {
                    let c1 = min(t, c0 + causalBlockRows)
                    items.append(Item(segment: s, group: g, r0: c0, r1: c1, cost: (c1 - c0) * (shape.causal ? t - c0 : t)))
                    c0 = c1
                }
            }
        }
        return sortedByCost(items)
    }

    static func sortedByCost(_ items: [Item]) -> [Item] {
        items.enumerated().sorted { $0.element.cost != $1.element.cost ? $0.element.cost > $1.element.cost : $0.offset < $1.offset }.map(\.element)
    }

    /// Items over our workers, with single-threaded BLAS when the items call sgemm. The block
    /// kernels call none, and leave OpenBLAS's thread count alone: raising it back after the loop
    /// wakes its worker, which then polls for work on one of our two cores while the next items
    /// run (`TrainBench --kernels`: a SmolLM2 layer's attention forward 7.6 ms wall / 14.3 ms CPU
    /// with the switch, 4.2 / 8.1 without).
    static func run(_ items: [Item], blas: Bool = true, _ body: (Item) -> Void) {
        func loop() {
            items.withUnsafeBufferPointer { list in
                Parallel.forEachItem(list.count) { body(list[$0]) }
            }
        }
        if blas { BLASRuntime.withSingleThreadedBLAS(loop) } else { loop() }
    }

    /// Rows r0..<r1 of one group's stacked operand: in place in the `[T, heads·D]` tensor when the
    /// group is one head (row stride heads·D), else in the packed `[kvHeads, T, G, D]` scratch
    /// (row i·G + j at stride D, as probs' rows). `base` is the stacked row r0.
    struct StackedRows {
        var base: UnsafeMutablePointer<Float>
        var ld: Int
    }

    /// The stacked view of group g's rows from token `row` of a `[T, heads·D]` tensor: in `tensor`
    /// itself for G = 1, else in `packed` (`[kvHeads, T, G, D]`).
    @inline(__always)
    static func stacked(_ tensor: UnsafeMutablePointer<Float>, packed: UnsafeMutablePointer<Float>?, group g: Int, row: Int, shape: Shape) -> StackedRows {
        let d = shape.headDim
        guard let packed else { return StackedRows(base: tensor + row * shape.qWidth + g * d, ld: shape.qWidth) }
        let width = shape.groupSize * d
        return StackedRows(base: packed + g * shape.tokens * width + row * width, ld: d)
    }

    /// Copies group g's G·D columns of tokens `rows` of `tensor` `[T, heads·D]` into `packed`
    /// (`[kvHeads, T, G, D]`: one contiguous G·D run per token either side).
    @inline(__always)
    static func pack(_ tensor: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>, group g: Int, rows: Range<Int>, shape: Shape) {
        let qw = shape.qWidth, width = shape.groupSize * shape.headDim
        let source = tensor + g * width, target = packed + g * shape.tokens * width
        for i in rows { (target + i * width).update(from: source + i * qw, count: width) }
    }

    /// The inverse of `pack`, written over `tensor` or added onto it.
    @inline(__always)
    static func unpack(_ packed: UnsafePointer<Float>, into tensor: UnsafeMutablePointer<Float>, group g: Int, rows: Range<Int>, shape: Shape, accumulate: Bool) {
        let qw = shape.qWidth, width = shape.groupSize * shape.headDim
        let source = packed + g * shape.tokens * width, target = tensor + g * width
        for i in rows {
            let from = source + i * width, to = target + i * qw
            if accumulate {
                for x in 0..<width { to[x] += from[x] }
            } else {
                to.update(from: from, count: width)
            }
        }
    }

    public static func forward(
        out: UnsafeMutablePointer<Float>,
        probs: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        shape: Shape, scale: Float
    ) {
        forward(out: out, probs: probs, q: q, k: k, v: v, segments: [shape.tokens], shape: shape, scale: scale)
    }

    /// `forward` over sequences packed row-wise: `segments` are their lengths (sum = `shape.tokens`),
    /// probs holds each one's `[kvHeads, n, G, n]` in order (`probsCount(heads:segments:)` floats).
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        probs: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        segments lengths: [Int], shape: Shape, scale: Float
    ) {
        precondition(lengths.reduce(0, +) == shape.tokens, "Attention: segments \(lengths) do not add up to \(shape.tokens) tokens")
        OpProfile.measure("attention.forward") {
            let d = shape.headDim, kw = shape.kvWidth, gs = shape.groupSize
            let segments = layout(lengths, heads: shape.heads)
            let blockKernels = usesBlockKernels(shape)
            // Stacked q rows, then (same rows, once their scores are formed) the stacked out rows.
            let scratch = gs > 1 ? stackScratch.take(count: shape.tokens * shape.qWidth) : nil
            defer { if let scratch { stackScratch.give(scratch) } }
            let packed = scratch?.pointer
            // The block kernels take each group's keys transposed, formed once here.
            let transposed = blockKernels ? TransposedGroups(segments, shape) : nil
            let keysT = transposed.map { transposeScratch.take(count: $0.count) }
            defer { if let keysT { transposeScratch.give(keysT) } }
            if let transposed, let keysT { transposed.fill(keysT.pointer, from: k, segments, shape) }
            run(queryBlocks(segments, shape), blas: !blockKernels) { item in
                let b = Block(item, segments, shape)
                let (t, g, r0, keys, rows, first, tokens) = (b.t, b.g, b.r0, b.keys, b.rows, b.first, b.tokens)
                // The group's stacked probs rows r0·G..<r1·G, [rows, t].
                let p = probs + b.probsOffset, ks = k + b.kvOffset, vs = v + b.kvOffset
                if let packed { pack(q, into: packed, group: g, rows: tokens, shape: shape) }
                let qs = stacked(UnsafeMutablePointer(mutating: q), packed: packed, group: g, row: first, shape: shape)
                let os = stacked(out, packed: packed, group: g, row: first, shape: shape)
                if let transposed, let keysT {
                    var block = b.kernelBlock(shape, scale: scale)
                    lf_attention_block_forward(&block, qs.base, qs.ld, transposed.group(keysT.pointer, segment: item.segment, group: g),
                                               transposed.ld[item.segment], vs, kw, p, t, t, os.base, os.ld)
                    if let packed { unpack(packed, into: out, group: g, rows: tokens, shape: shape, accumulate: false) }
                    return
                }
                // scores [rows, 0..<keys] = scale · q_stacked · k_gᵀ
                BLAS.gemm(.none, .transpose, m: rows, n: keys, k: d, alpha: scale,
                          a: qs.base, lda: qs.ld, b: ks, ldb: kw, c: p, ldc: t)
                OpProfile.measure("attention.softmax") {
                    for row in 0..<rows {
                        let pr = p + row * t
                        let valid = shape.causal ? r0 + row / gs + 1 : t
                        AttentionSoftmax.forwardRow(pr, valid: valid, count: t)
                    }
                }
                // out_stacked = probs · v_g (no weight past key r1 in a causal block)
                BLAS.gemm(.none, .none, m: rows, n: d, k: keys, a: p, lda: t, b: vs, ldb: kw, c: os.base, ldc: os.ld)
                if let packed { unpack(packed, into: out, group: g, rows: tokens, shape: shape, accumulate: false) }
            }
        }
    }

    /// Every (segment, kv group)'s keys or values transposed for the block kernels: group g of
    /// segment s is `[D, ld[s]]` (ld = the length rounded up to 16) at `offset[s] + g·D·ld[s]`.
    struct TransposedGroups {
        var offset: [Int] = []
        var ld: [Int] = []
        var count = 0
        let headDim: Int

        init(_ segments: [Segment], _ shape: Shape) {
            headDim = shape.headDim
            for segment in segments {
                let rounded = (segment.length + 15) / 16 * 16
                offset.append(count)
                ld.append(rounded)
                count += shape.kvHeads * headDim * rounded
            }
        }

        func group(_ base: UnsafeMutablePointer<Float>, segment s: Int, group g: Int) -> UnsafeMutablePointer<Float> {
            base + offset[s] + g * headDim * ld[s]
        }

        /// Transposes `x` (`[T, kvHeads·D]`) group by group, the groups over our workers.
        func fill(_ target: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>, _ segments: [Segment], _ shape: Shape) {
            let kw = shape.kvWidth, groups = shape.kvHeads
            Parallel.forEachItem(segments.count * groups) { item in
                let s = item / groups, g = item % groups, segment = segments[s]
                lf_attention_transpose(x + segment.start * kw + g * headDim, kw, segment.length, headDim, group(target, segment: s, group: g), ld[s])
            }
        }
    }

    /// In place on dprobs `[count]`: p ⊙ (dprobs − Σ dprobs·p), 16 lanes at a time.
    @inline(__always)
    static func softmaxBackwardRow(_ dr: UnsafeMutablePointer<Float>, probs pr: UnsafePointer<Float>, count: Int) {
        typealias V = SIMD16<Float>
        var lanes = V(repeating: 0)
        var j = 0
        while j + 16 <= count {
            lanes += UnsafeRawPointer(pr + j).loadUnaligned(as: V.self) * UnsafeRawPointer(dr + j).loadUnaligned(as: V.self)
            j += 16
        }
        var dot = lanes.sum()
        while j < count { dot += pr[j] * dr[j]; j += 1 }
        let dotVector = V(repeating: dot)
        j = 0
        while j + 16 <= count {
            let pv = UnsafeRawPointer(pr + j).loadUnaligned(as: V.self), dv = UnsafeRawPointer(dr + j).loadUnaligned(as: V.self)
            UnsafeMutableRawPointer(dr + j).storeBytes(of: pv * (dv - dotVector), as: V.self)
            j += 16
        }
        while j < count { dr[j] = pr[j] * (dr[j] - dot); j += 1 }
    }
}

/// A scratch buffer kept between calls: a training step runs attention once per layer with the
/// same sizes, and a fresh multi-MB buffer each time costs page faults and a zero fill. One buffer
/// is cached; a concurrent caller gets its own. Contents on `take` are whatever was left.
final class ScratchCache: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: FloatBuffer?

    func take(count: Int) -> FloatBuffer {
        lock.lock()
        defer { lock.unlock() }
        if let buffer = cached, buffer.count >= count {
            cached = nil
            return buffer
        }
        return FloatBuffer(count: count)
    }

    func give(_ buffer: FloatBuffer) {
        lock.lock()
        defer { lock.unlock() }
        if (cached?.count ?? 0) < buffer.count { cached = buffer }
    }
}

extension Attention {
    /// The backward's per-block partial dk and dv.
    static let partialScratch = ScratchCache()
    /// Stacked (packed) q / dout / out / dq rows of groups with several heads.
    static let stackScratch = ScratchCache()
    /// The transposed keys (forward) or values (backward) of the block kernels.
    static let transposeScratch = ScratchCache()
}
