/// Dot products of GGUF 32-element quant blocks with Float32 activations, read straight from the
/// stored blocks (no dequantized copy of the weight).
///
/// Every legacy format decodes to `w = d · q + m` per block (Q4_1 as stored; Q4_0: m = −8·d; Q8_0:
/// m = 0), so a row · x is `Σ_b d_b · (q_b · x_b) + m_b · Σx_b`. The per-block sums of x are computed
/// once per activation vector (`BlockSums`), so the inner loop is nibble/byte → Float conversion and
/// one fused multiply-add per weight, in `SIMD16<Float>` (two AVX2 registers). Activations stay in
/// Float32 — no Q8 rounding of x — so the only error against a Float64 reference is Float32
/// accumulation (measured and bounded in the tests).
///
/// Why Float and not int8 dot products: Swift's SIMD types do not lower to `vpmaddubsw`/VNNI,
/// and the widening int8 · int8 → int32 products LLVM emits instead were no faster here than
/// u8 → f32 conversion + FMA; the float form also avoids quantizing x.
protocol LegacyBlockFormat {
    /// Bytes per 32-element block.
    static var blockBytes: Int { get }
    /// Elements 0..<16 and 16..<32 as Float (q, before scale), the scale d and the offset m.
    static func decode(_ block: UnsafeRawPointer) -> (low: SIMD16<Float>, high: SIMD16<Float>, d: Float, m: Float)
}

@inline(__always)
func loadHalf(_ pointer: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

/// Q4_0, 18 bytes: half d; u8 qs[16] (element j: low nibble of qs[j], element j+16: high nibble). w = d·(q − 8).
enum Q4_0Format: LegacyBlockFormat {
    static var blockBytes: Int { 18 }
    @inline(__always)
    static func decode(_ block: UnsafeRawPointer) -> (low: SIMD16<Float>, high: SIMD16<Float>, d: Float, m: Float) {
        let d = loadHalf(block, 0)
        let qs = block.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
        let low = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F))
        let high = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs &>> 4))
        return (low, high, d, -8 * d)
    }
}

/// Q4_1, 20 bytes: half d; half m; u8 qs[16] (nibbles as Q4_0). w = d·q + m.
enum Q4_1Format: LegacyBlockFormat {
    static var blockBytes: Int { 20 }
    @inline(__always)
    static func decode(_ block: UnsafeRawPointer) -> (low: SIMD16<Float>, high: SIMD16<Float>, d: Float, m: Float) {
        let d = loadHalf(block, 0), m = loadHalf(block, 2)
        let qs = block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        let low = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F))
        let high = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs &>> 4))
        return (low, high, d, m)
    }
}

/// Q8_0, 34 bytes: half d; i8 qs[32]. w = d·q.
enum Q8_0Format: LegacyBlockFormat {
    static var blockBytes: Int { 34 }
    @inline(__always)
    static func decode(_ block: UnsafeRawPointer) -> (low: SIMD16<Float>, high: SIMD16<Float>, d: Float, m: Float) {
        let d = loadHalf(block, 0)
        let first = block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
        let second = block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
        return (SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: first)), SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: second)), d, 0)
    }
}

/// Per-32-element block sums of activation rows: `sums[v · blocks + b] = Σ x[v, 32b ..< 32b+32]`.
enum BlockSums {
    static func compute(_ x: UnsafePointer<Float>, vectors: Int, width: Int, into sums: UnsafeMutablePointer<Float>) {
        let blocks = width / 32
        let raw = UnsafeRawPointer(x)
        for v in 0..<vectors {
            for b in 0..<blocks {
                let offset = (v * width + b * 32) * 4
                let a = raw.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                let c = raw.loadUnaligned(fromByteOffset: offset + 64, as: SIMD16<Float>.self)
                sums[v * blocks + b] = (a + c).sum()
            }
        }
    }
}

enum BlockDot {
    /// out[v · outStride + r] = W[r] · x[v] for rows `rows` of a matrix of `blocks` blocks per row
    /// stored at `weights` (row r at `r · blocks · F.blockBytes`), and `vectors` activation rows
    /// `x[v]` (`blocks · 32` floats apart) with their block sums.
    @inline(__always)
    static func rows<F: LegacyBlockFormat>(
        _ format: F.Type, weights: UnsafeRawPointer, rows: Range<Int>, blocks: Int,
        x: UnsafePointer<Float>, sums: UnsafePointer<Float>, vectors: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        let rowBytes = blocks * F.blockBytes, width = blocks * 32
        let xRaw = UnsafeRawPointer(x)
        if vectors == 1 {
            for r in rows {
                let row = weights + r * rowBytes
                var acc = SIMD16<Float>()
                var offsetSum: Float = 0
                for b in 0..<blocks {
                    let (low, high, d, m) = F.decode(row + b * F.blockBytes)
                    let x0 = xRaw.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
                    let x1 = xRaw.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
                    acc.addProduct(low * x0 + high * x1, SIMD16(repeating: d))
                    offsetSum += m * sums[b]
                }
                out[r] = acc.sum() + offsetSum
            }
            return
        }
        // Several activation rows (batched decode): each block is decoded once and used for all of
        // them, four at a time so the accumulators stay in registers.
        var v0 = 0
        while v0 < vectors {
            let group = min(4, vectors - v0)
            let xg = xRaw + v0 * width * 4
            let sg = sums + v0 * blocks
            for r in rows {
                let row = weights + r * rowBytes
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var m0: Float = 0, m1: Float = 0, m2: Float = 0, m3: Float = 0
                for b in 0..<blocks {
                    let (low, high, d, m) = F.decode(row + b * F.blockBytes)
                    let ld = low * d, hd = high * d
                    let o = b * 128
                    a0.addProduct(ld, xg.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
                    a0.addProduct(hd, xg.loadUnaligned(fromByteOffset: o + 64, as: SIMD16<Float>.self))
                    m0 += m * sg[b]
                    if group > 1 {
                        let o1 = o + width * 4
                        a1.addProduct(ld, xg.loadUnaligned(fromByteOffset: o1, as: SIMD16<Float>.self))
                        a1.addProduct(hd, xg.loadUnaligned(fromByteOffset: o1 + 64, as: SIMD16<Float>.self))
                        m1 += m * sg[blocks + b]
                    }
                    if group > 2 {
                        let o2 = o + 2 * width * 4
                        a2.addProduct(ld, xg.loadUnaligned(fromByteOffset: o2, as: SIMD16<Float>.self))
                        a2.addProduct(hd, xg.loadUnaligned(fromByteOffset: o2 + 64, as: SIMD16<Float>.self))
                        m2 += m * sg[2 * blocks + b]
                    }
                    if group > 3 {
                        let o3 = o + 3 * width * 4
                        a3.addProduct(ld, xg.loadUnaligned(fromByteOffset: o3, as: SIMD16<Float>.self))
                        a3.addProduct(hd, xg.loadUnaligned(fromByteOffset: o3 + 64, as: SIMD16<Float>.self))
                        m3 += m * sg[3 * blocks + b]
                    }
                }
                out[v0 * outStride + r] = a0.sum() + m0
                if group > 1 { out[(v0 + 1) * outStride + r] = a1.sum() + m1 }
                if group > 2 { out[(v0 + 2) * outStride + r] = a2.sum() + m2 }
                if group > 3 { out[(v0 + 3) * outStride + r] = a3.sum() + m3 }
            }
            v0 += group
        }
    }
}
