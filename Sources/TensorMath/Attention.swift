import Foundation

/// Scaled dot-product attention with grouped-query heads.
///
/// Layouts (row-major): q `[T, heads·D]`, k and v `[T, kvHeads·D]`, out `[T, heads·D]`;
/// query head h reads key/value head h / (heads / kvHeads), as transformers' `repeat_kv`.
/// probs `[heads, T, T]` holds softmax(scale·q·kᵀ + mask) — kept because backward needs it.
/// Several independent sequences may be packed row-wise (`segments`): each is its own attention
/// block with its own `[heads, n, n]` probs, one after another.
///
/// The work is cut into items — a query block of one head (forward, and backward's dq), or a key
/// block of one kv group (backward's dk and dv) — that our own workers claim one at a time, each
/// item's products as single-threaded sgemms (`BLASRuntime.withSingleThreadedBLAS`): one fork/join
/// per pass over every head of every packed sequence, both cores busy to the end however the
/// heads divide (9 heads on 2 cores), and no thread hand-off per small product. Measured why: per-
/// head products of 128–512 × 64 split over OpenBLAS's two threads cost a hand-off each, which on a
/// loaded machine took longer than the arithmetic (bench/train_bench.sh PROFILE=1). Every output
/// element is written by exactly one item, so no private copies or reductions are needed and the
/// result does not depend on which worker ran what.
///
/// Causal attention runs in query blocks of `causalBlockRows`: block [r0, r1) only scores keys
/// 0..<r1, skipping most of the masked upper triangle. A block's scores are softmaxed and
/// multiplied by v right after they are formed, while they are still in cache. Backward forms
/// dk and dv per key block c: Σ over the query rows that see it (r ≥ c0) in one product per head,
/// instead of one accumulation per query block.
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
        func kvHead(of head: Int) -> Int { head / (heads / kvHeads) }
        public var probsCount: Int { heads * tokens * tokens }
    }

    /// Query rows per block ((n+1)/2n of the full causal products for n blocks); key blocks of
    /// the backward use the same boundaries.
    public static let causalBlockRows = 128

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

    /// A work item: rows r0..<r1 of one head's (or one kv group's key rows, in backward) block.
    struct Item {
        var segment: Int
        var head: Int
        var r0: Int
        var r1: Int
        var cost: Int
    }

    /// Query blocks of every (segment, head): rows r0..<r1 attend to keys 0..<keys(r1). Costliest
    /// first, so the cheap ones balance the workers at the end (ties in a fixed order).
    static func queryBlocks(_ segments: [Segment], _ shape: Shape) -> [Item] {
        var items: [Item] = []
        for (s, segment) in segments.enumerated() {
            let t = segment.length
            for h in 0..<shape.heads {
                var r0 = 0
                while r0 < t {
                    let r1 = min(t, r0 + causalBlockRows)
                    items.append(Item(segment: s, head: h, r0: r0, r1: r1, cost: (r1 - r0) * (shape.causal ? r1 : t)))
                    r0 = r1
                }
            }
        }
        return sortedByCost(items)
    }

    /// Key blocks c0..<c1 of every (segment, kv group) (`head` = the kv head). Causal: only query
    /// rows c0..<T see these keys.
    static func keyBlocks(_ segments: [Segment], _ shape: Shape) -> [Item] {
        var items: [Item] = []
        for (s, segment) in segments.enumerated() {
            let t = segment.length
            for g in 0..<shape.kvHeads {
                var c0 = 0
                while c0 < t {
                    let c1 = min(t, c0 + causalBlockRows)
                    items.append(Item(segment: s, head: g, r0: c0, r1: c1, cost: (c1 - c0) * (shape.causal ? t - c0 : t)))
                    c0 = c1
                }
            }
        }
        return sortedByCost(items)
    }

    static func sortedByCost(_ items: [Item]) -> [Item] {
        items.enumerated().sorted { $0.element.cost != $1.element.cost ? $0.element.cost > $1.element.cost : $0.offset < $1.offset }.map(\.element)
    }

    /// Items over our workers with single-threaded BLAS.
    static func run(_ items: [Item], _ body: (Item) -> Void) {
        BLASRuntime.withSingleThreadedBLAS {
            items.withUnsafeBufferPointer { list in
                Parallel.forEachItem(list.count) { body(list[$0]) }
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
    /// probs holds each one's `[heads, n, n]` in order (`probsCount(heads:segments:)` floats).
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        probs: UnsafeMutablePointer<Float>,
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
        segments lengths: [Int], shape: Shape, scale: Float
    ) {
        precondition(lengths.reduce(0, +) == shape.tokens, "Attention: segments \(lengths) do not add up to \(shape.tokens) tokens")
        OpProfile.measure("attention.forward") {
            let d = shape.headDim, qw = shape.qWidth, kw = shape.kvWidth
            let segments = layout(lengths, heads: shape.heads)
            run(queryBlocks(segments, shape)) { item in
                let segment = segments[item.segment], t = segment.length, h = item.head, g = shape.kvHead(of: h)
                let r0 = item.r0, r1 = item.r1, keys = shape.causal ? r1 : t
                let p = probs + segment.probsOffset + h * t * t
                let qs = q + segment.start * qw + h * d, ks = k + segment.start * kw + g * d, vs = v + segment.start * kw + g * d
                // scores [r0..<r1, 0..<keys] = scale · q_h · k_gᵀ
                BLAS.gemm(.none, .transpose, m: r1 - r0, n: keys, k: d, alpha: scale,
                          a: qs + r0 * qw, lda: qw, b: ks, ldb: kw, c: p + r0 * t, ldc: t)
                for i in r0..<r1 {
                    let row = p + i * t
                    let valid = shape.causal ? i + 1 : t
                    Softmax.softmaxRow(out: row, input: row, count: valid)
                    if valid < t { (row + valid).update(repeating: 0, count: t - valid) }
                }
                // out_h[r0..<r1] = probs · v_g (no weight past key r1 in a causal block)
                BLAS.gemm(.none, .none, m: r1 - r0, n: d, k: keys,
                          a: p + r0 * t, lda: t, b: vs, ldb: kw, c: out + (segment.start + r0) * qw + h * d, ldc: qw)
            }
        }
    }

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
            let d = shape.headDim, qw = shape.qWidth, kw = shape.kvWidth
            let segments = layout(lengths, heads: shape.heads)
            // dscores, laid out as probs; reused across calls (the caller's layers run one at a time).
            let scratch = ScoreScratch.take(count: probsCount(heads: shape.heads, segments: lengths))
            defer { ScoreScratch.give(scratch) }
            let ds = scratch.pointer
            let betaFirst: Float = accumulate ? 1 : 0
            // 1. Per query block: dprobs = dout_h · v_gᵀ, dscores = p ⊙ (dprobs − Σ dprobs·p) (0 on
            //    the masked part of the scored block), dq_h[r0..<r1] (+)= scale · dscores · k_g.
            run(queryBlocks(segments, shape)) { item in
                let segment = segments[item.segment], t = segment.length, h = item.head, g = shape.kvHead(of: h)
                let r0 = item.r0, r1 = item.r1, keys = shape.causal ? r1 : t
                let offset = segment.probsOffset + h * t * t
                let p = probs + offset, dsh = ds + offset
                BLAS.gemm(.none, .transpose, m: r1 - r0, n: keys, k: d,
                          a: dout + (segment.start + r0) * qw + h * d, lda: qw, b: v + segment.start * kw + g * d, ldb: kw,
                          c: dsh + r0 * t, ldc: t)
                for i in r0..<r1 {
                    let valid = shape.causal ? i + 1 : t
                    softmaxBackwardRow(dsh + i * t, probs: p + i * t, count: valid)
                    if valid < keys { (dsh + i * t + valid).update(repeating: 0, count: keys - valid) }
                }
                BLAS.gemm(.none, .none, m: r1 - r0, n: d, k: keys, alpha: scale,
                          a: dsh + r0 * t, lda: t, b: k + segment.start * kw + g * d, ldb: kw,
                          beta: betaFirst, c: dq + (segment.start + r0) * qw + h * d, ldc: qw)
            }
            // 2. Per key block c0..<c1 of kv group g, over the query rows that see it and every head
            //    of the group: dv_g[c] (+)= Σ_h p_hᵀ · dout_h, dk_g[c] (+)= scale · Σ_h dscores_hᵀ · q_h.
            run(keyBlocks(segments, shape)) { item in
                let segment = segments[item.segment], t = segment.length, g = item.head
                let c0 = item.r0, c1 = item.r1, first = shape.causal ? c0 : 0
                let dvg = dv + (segment.start + c0) * kw + g * d, dkg = dk + (segment.start + c0) * kw + g * d
                for j in 0..<shape.groupSize {
                    let h = g * shape.groupSize + j
                    let offset = segment.probsOffset + h * t * t + first * t + c0
                    let rows = (segment.start + first) * qw + h * d
                    let beta: Float = j == 0 ? betaFirst : 1
                    BLAS.gemm(.transpose, .none, m: c1 - c0, n: d, k: t - first, a: probs + offset, lda: t,
                              b: dout + rows, ldb: qw, beta: beta, c: dvg, ldc: kw)
                    BLAS.gemm(.transpose, .none, m: c1 - c0, n: d, k: t - first, alpha: scale, a: ds + offset, lda: t,
                              b: q + rows, ldb: qw, beta: beta, c: dkg, ldc: kw)
                }
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

/// The backward's dscores buffer, kept between calls: a training step runs attention backward
/// once per layer with the same size, and a fresh multi-MB buffer each time costs page faults and
/// a zero fill. One buffer is cached; a concurrent caller gets its own.
enum ScoreScratch {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var cached: FloatBuffer?

    static func take(count: Int) -> FloatBuffer {
        lock.lock()
        defer { lock.unlock() }
        if let buffer = cached, buffer.count >= count {
            cached = nil
            return buffer
        }
        return FloatBuffer(count: count)
    }

    static func give(_ buffer: FloatBuffer) {
        lock.lock()
        defer { lock.unlock() }
        if (cached?.count ?? 0) < buffer.count { cached = buffer }
    }
}
