/// The softmax row of attention's forward, 8 lanes at a time.
///
/// Why not `Softmax.softmaxRow`: built for generic x86-64 (SSE2), its 16-lane `VectorExp.exp`
/// keeps four registers per value and spills, and is called out of line: it was 45 % of
/// attention's forward (TrainBench --kernels --profile, SmolLM2 shape: 7.2 of 16 ms per layer).
/// Here the exponent is taken of x − max ≤ 0 only, so the overflow and NaN selects go, and 8-lane
/// values fit the 16 SSE registers; the arithmetic is `VectorExp.exp`'s, operation for operation,
/// so each probability is the same Float as before (only the row sum's order differs).
/// A row's masked tail (keys past `valid`) is read as −∞ inside the last 8-lane block when the
/// row has room for it, so no lane-by-lane tail loop is needed and the zeros land in one store.
enum AttentionSoftmax {
    typealias Vector = SIMD8<Float>

    /// e^x for x ≤ 0 (−∞ → 0), as `VectorExp.exp` computes it there.
    @inline(__always)
    static func expNonPositive(_ x: Vector) -> Vector {
        let low = Vector(repeating: -87.3365478515625)
        let v = x.replacing(with: low, where: x .< low)
        let magic = Vector(repeating: 12_582_912)  // 1.5 · 2²³
        let t = v * Vector(repeating: 1.44269504088896341) + magic
        let n = t - magic
        var r = v - n * Vector(repeating: 0.693359375)
        r = r - n * Vector(repeating: -2.12194440e-4)
        var p = Vector(repeating: 1.9875691500e-4)
        p = p * r + Vector(repeating: 1.3981999507e-3)
        p = p * r + Vector(repeating: 8.3334519073e-3)
        p = p * r + Vector(repeating: 4.1665795894e-2)
        p = p * r + Vector(repeating: 1.6666665459e-1)
        p = p * r + Vector(repeating: 5.0000001201e-1)
        let y = p * (r * r) + r + Vector(repeating: 1)
        let tBits = unsafeBitCast(t, to: SIMD8<UInt32>.self), magicBits = unsafeBitCast(magic, to: SIMD8<UInt32>.self)
        let scale = unsafeBitCast((tBits &- magicBits &+ SIMD8<UInt32>(repeating: 127)) &<< SIMD8<UInt32>(repeating: 23), to: Vector.self)
        return (y * scale).replacing(with: 0, where: x .< low)
    }

    static let laneIndex = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)

    /// Lanes i..<i+lanes of `p`, the others −∞; reads a whole block when `whole` (the row has room).
    @inline(__always)
    static func loadMasked(_ p: UnsafePointer<Float>, _ i: Int, lanes: Int, whole: Bool) -> Vector {
        if whole {
            let v = UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
            return v.replacing(with: -.infinity, where: laneIndex .>= SIMD8<Int32>(repeating: Int32(lanes)))
        }
        var v = Vector(repeating: -.infinity)
        for j in 0..<lanes { v[j] = p[i + j] }
        return v
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ i: Int) -> Vector { UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self) }

    @inline(__always)
    static func store(_ v: Vector, _ p: UnsafeMutablePointer<Float>, _ i: Int) { UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: Vector.self) }

    /// In place on `row[0..<count]`: softmax over the first `valid` (≥ 1) entries, 0 after them.
    @inline(__always)
    static func forwardRow(_ row: UnsafeMutablePointer<Float>, valid: Int, count: Int) {
        let full = valid / 8 * 8, tail = valid - full
        let whole = full + 8 <= count  // the tail block can be read and written as a whole block
        var top = Vector(repeating: -.infinity)
        var i = 0
        while i < full {
            let v = load(row, i)
            top = top.replacing(with: v, where: v .> top)
            i += 8
        }
        var tailValues = Vector(repeating: -.infinity)
        if tail > 0 {
            tailValues = loadMasked(row, full, lanes: tail, whole: whole)
            top = top.replacing(with: tailValues, where: tailValues .> top)
        }
        let shift = Vector(repeating: top.max())
        // Lane sums flushed to Double every 64 entries: each lane adds ≤ 8 values ≤ 1 in Float.
        var sum = 0.0, lanes = Vector(repeating: 0)
        i = 0
        while i < full {
            let e = expNonPositive(load(row, i) - shift)
            store(e, row, i)
            lanes += e
            i += 8
            if i & 63 == 0 { sum += Double(lanes.sum()); lanes = Vector(repeating: 0) }
        }
        var written = full
        if tail > 0 {
            let e = expNonPositive(tailValues - shift)
            lanes += e
            if whole {
                store(e, row, full)
                written = full + 8
            } else {
                for j in 0..<tail { row[full + j] = e[j] }
                written = valid
            }
        }
        sum += Double(lanes.sum())
        let scale = Vector(repeating: Float(1 / sum))
        i = 0
        while i + 8 <= written {
            store(load(row, i) * scale, row, i)
            i += 8
        }
        while i < written { row[i] *= scale[0]; i += 1 }
        if written < count { (row + written).update(repeating: 0, count: count - written) }
    }
}
