/// Dequantization of ggml's 256-element K-quant super-blocks (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K).
///
/// Layouts are ggml-common.h's `block_qN_K`. As in `LegacyQuantKernels`, every value is computed
/// with ggml's reference formula in Float32 — first the sub-block scale (`d · sc`), then
/// `scale · q − min` — with no fused multiply-add, so results are bit-identical to gguf-py.
enum KQuantKernels {
    @inline(__always)
    private static func store(_ value: SIMD16<Float>, _ out: UnsafeMutableRawPointer, element: Int) {
        out.storeBytes(of: value, toByteOffset: 4 * element, as: SIMD16<Float>.self)
    }

    @inline(__always)
    private static func floats(_ bytes: SIMD16<UInt8>) -> SIMD16<Float> {
        SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: bytes))
    }

    /// The 6-bit scale and min of sub-block `j` (0..<8) from Q4_K/Q5_K's 12 packed bytes:
    /// bytes 0–3 hold scale 0–3 (low 6 bits) and the top 2 bits of scale 4–7, bytes 4–7 the same
    /// for the mins, bytes 8–11 the low 4 bits of scale 4–7 (low nibble) and min 4–7 (high nibble).
    @inline(__always)
    private static func scaleAndMin(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: Float, min: Float) {
        let s = scales.assumingMemoryBound(to: UInt8.self)
        if j < 4 {
            return (Float(s[j] & 63), Float(s[j + 4] & 63))
        }
        let scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4)
        let min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4)
        return (Float(scale), Float(min))
    }

    /// Q2_K, 84 bytes: u8 scales[16] (low nibble scale, high nibble min, per 16 elements);
    /// u8 qs[64] (2 bits each); half d; half dmin.
    /// Element h·128 + k·32 + l takes bits 2k of qs[h·32 + l]. y = (d·sc)·q − (dmin·m).
    static func q2_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 84
            let scales = block.assumingMemoryBound(to: UInt8.self)
            let d = HalfFloat.load(block + 80, table)
            let dmin = HalfFloat.load(block + 82, table)
            for half in 0..<2 {
                for part in 0..<2 {  // l in part·16 ..< part·16 + 16
                    let qs = block.loadUnaligned(fromByteOffset: 16 + half * 32 + part * 16, as: SIMD16<UInt8>.self)
                    for k in 0..<4 {
                        let group = half * 8 + k * 2 + part
                        let scale = d * Float(scales[group] & 0x0F)
                        let min = dmin * Float(scales[group] >> 4)
                        let q = floats((qs &>> UInt8(2 * k)) & 3)
                        store(scale * q - min, out, element: b * 256 + half * 128 + k * 32 + part * 16)
                    }
                }
            }
        }
    }

    /// Q3_K, 110 bytes: u8 hmask[32] (3rd bit; bit j of hmask[l] for element j·32 + l);
    /// u8 qs[64] (low 2 bits, arranged as Q2_K); u8 scales[12] (16 six-bit scales: low nibbles in
    /// bytes 0–7, top 2 bits in bytes 8–11); half d.
    /// q = low2 − (hbit ? 0 : 4); y = (d·(scale − 32))·q.
    static func q3_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 110
            let packed = (block + 96).assumingMemoryBound(to: UInt8.self)
            let d = HalfFloat.load(block + 108, table)
            for half in 0..<2 {
                for part in 0..<2 {
                    let qs = block.loadUnaligned(fromByteOffset: 32 + half * 32 + part * 16, as: SIMD16<UInt8>.self)
                    let hmask = block.loadUnaligned(fromByteOffset: part * 16, as: SIMD16<UInt8>.self)
                    for k in 0..<4 {
                        let group = half * 8 + k * 2 + part
                        let low4 = group < 8 ? packed[group] & 0x0F : packed[group - 8] >> 4
                        let high2 = (packed[8 + group % 4] >> UInt8(2 * (group / 4))) & 3
                        let scale = d * Float(Int(low4 | (high2 << 4)) - 32)
                        let low2 = SIMD16<Int32>(truncatingIfNeeded: (qs &>> UInt8(2 * k)) & 3)
                        let hbit = SIMD16<Int32>(truncatingIfNeeded: (hmask &>> UInt8(half * 4 + k)) & 1)
                        let q = low2 &- ((hbit ^ 1) &<< 2)
                        store(scale * SIMD16<Float>(q), out, element: b * 256 + half * 128 + k * 32 + part * 16)
                    }
                }
            }
        }
    }

    /// Q4_K, 144 bytes: half d; half dmin; u8 scales[12] (see `scaleAndMin`); u8 qs[128].
    /// Sub-block 2p (32 elements) is the low nibbles of qs[32p ..< 32p + 32], sub-block 2p + 1 the
    /// high nibbles. y = (d·sc)·q − (dmin·m).
    static func q4_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 144
            let d = HalfFloat.load(block, table)
            let dmin = HalfFloat.load(block + 2, table)
            for pair in 0..<4 {
                let (scaleLow, minLow) = scaleAndMin(block + 4, 2 * pair)
                let (scaleHigh, minHigh) = scaleAndMin(block + 4, 2 * pair + 1)
                let d1 = d * scaleLow, m1 = dmin * minLow
                let d2 = d * scaleHigh, m2 = dmin * minHigh
                for part in 0..<2 {
                    let qs = block.loadUnaligned(fromByteOffset: 16 + pair * 32 + part * 16, as: SIMD16<UInt8>.self)
                    let base = b * 256 + pair * 64 + part * 16
                    store(d1 * floats(qs & 0x0F) - m1, out, element: base)
                    store(d2 * floats(qs &>> 4) - m2, out, element: base + 32)
                }
            }
        }
    }

    /// Q5_K, 176 bytes: half d; half dmin; u8 scales[12]; u8 qh[32] (bit g of qh[l] is the 5th bit
    /// of element g·32 + l); u8 qs[128] (low nibbles as Q4_K). y = (d·sc)·q − (dmin·m).
    static func q5_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 176
            let d = HalfFloat.load(block, table)
            let dmin = HalfFloat.load(block + 2, table)
            for pair in 0..<4 {
                let (scaleLow, minLow) = scaleAndMin(block + 4, 2 * pair)
                let (scaleHigh, minHigh) = scaleAndMin(block + 4, 2 * pair + 1)
                let d1 = d * scaleLow, m1 = dmin * minLow
                let d2 = d * scaleHigh, m2 = dmin * minHigh
                for part in 0..<2 {
                    let qs = block.loadUnaligned(fromByteOffset: 48 + pair * 32 + part * 16, as: SIMD16<UInt8>.self)
                    let qh = block.loadUnaligned(fromByteOffset: 16 + part * 16, as: SIMD16<UInt8>.self)
                    let highLow = ((qh &>> UInt8(2 * pair)) & 1) &<< 4
                    let highHigh = ((qh &>> UInt8(2 * pair + 1)) & 1) &<< 4
                    let base = b * 256 + pair * 64 + part * 16
                    store(d1 * floats((qs & 0x0F) | highLow) - m1, out, element: base)
                    store(d2 * floats((qs &>> 4) | highHigh) - m2, out, element: base + 32)
                }
            }
        }
    }

    /// Q6_K, 210 bytes: u8 ql[128] (low 4 bits); u8 qh[64] (high 2 bits); i8 scales[16]; half d.
    /// In half h (128 elements), for l < 32: element l is ql[l] low | qh[l] bits 0–1, l + 32 is
    /// ql[l + 32] low | bits 2–3, l + 64 is ql[l] high | bits 4–5, l + 96 is ql[l + 32] high |
    /// bits 6–7 (ql and qh offset by 64·h and 32·h). y = (d·scale)·(q − 32), scale per 16.
    static func q6_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 210
            let scales = (block + 192).assumingMemoryBound(to: Int8.self)
            let d = HalfFloat.load(block + 208, table)
            for half in 0..<2 {
                for part in 0..<2 {
                    let l = part * 16
                    let ql0 = block.loadUnaligned(fromByteOffset: half * 64 + l, as: SIMD16<UInt8>.self)
                    let ql1 = block.loadUnaligned(fromByteOffset: half * 64 + 32 + l, as: SIMD16<UInt8>.self)
                    let qh = block.loadUnaligned(fromByteOffset: 128 + half * 32 + l, as: SIMD16<UInt8>.self)
                    let q1 = (ql0 & 0x0F) | ((qh & 3) &<< 4)
                    let q2 = (ql1 & 0x0F) | (((qh &>> 2) & 3) &<< 4)
                    let q3 = (ql0 &>> 4) | (((qh &>> 4) & 3) &<< 4)
                    let q4 = (ql1 &>> 4) | ((qh &>> 6) &<< 4)
                    let base = b * 256 + half * 128 + l
                    let groups = half * 8 + part
                    store(centered(q1, scale: d * Float(scales[groups])), out, element: base)
                    store(centered(q2, scale: d * Float(scales[groups + 2])), out, element: base + 32)
                    store(centered(q3, scale: d * Float(scales[groups + 4])), out, element: base + 64)
                    store(centered(q4, scale: d * Float(scales[groups + 6])), out, element: base + 96)
                }
            }
        }
    }

    /// scale · (q − 32) for six-bit quants.
    @inline(__always)
    private static func centered(_ q: SIMD16<UInt8>, scale: Float) -> SIMD16<Float> {
        scale * SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q) &- 32)
    }

    /// Q8_K, 292 bytes: float d; i8 qs[256]; i16 bsums[16] (sums for dot products, unused here).
    /// y = d · q.
    static func q8_K(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 292
            let d = Float(bitPattern: UInt32(littleEndian: block.loadUnaligned(as: UInt32.self)))
            for part in 0..<16 {
                let qs = block.loadUnaligned(fromByteOffset: 4 + part * 16, as: SIMD16<Int8>.self)
                store(d * SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs)), out, element: b * 256 + part * 16)
            }
        }
    }
}
