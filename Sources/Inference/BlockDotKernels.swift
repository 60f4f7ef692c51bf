import Checkpoints

/// Dot products of GGUF 32-element quant blocks with Float32 activations, read straight from the
/// stored blocks (no dequantized copy of the weight).
///
/// Every legacy format decodes to `w = d · q + m` per block (Q4_1 as stored; Q4_0: m = −8·d; Q8_0:
/// m = 0), so a row · x is `Σ_b d_b · (q_b · x_b) + m_b · Σx_b`. The per-block sums of x are computed
/// once per activation vector (`BlockSums`), so the inner loop is nibble/byte → Float unpacking and
/// one fused multiply-add per weight, in 8-lane vectors (one AVX2 register). Activations stay in
/// Float32 — no Q8 rounding of x — so the only error against a Float64 reference is Float32
/// accumulation (measured and bounded in the tests).
///
/// Why Float and not int8 dot products: Swift's SIMD types do not lower to `vpmaddubsw`/VNNI,
/// and the widening int8 · int8 → int32 products LLVM emits instead were no faster here than
/// u8 → f32 conversion + FMA; the float form also avoids quantizing x.
@inline(__always)
func loadHalf(_ pointer: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

/// Activation rows prepared for `BlockDot`: per-32-element block sums, and each block's 32 values
/// permuted into the order the kernels unpack weights in (see `BlockUnpack`).
/// `sums[v · blocks + b] = Σ x[v, 32b ..< 32b+32]`; `permuted[v · width + 32b + 8i + 4h + w] = x[v, 32b + 16h + 4w + i]`.
enum BlockSums {
    static func compute(_ x: UnsafePointer<Float>, vectors: Int, width: Int, into sums: UnsafeMutablePointer<Float>,
                        permuted: UnsafeMutablePointer<Float>) {
        let blocks = width / 32
        let raw = UnsafeRawPointer(x)
        for v in 0..<vectors {
            for b in 0..<blocks {
                let base = v * width + b * 32
                let a = raw.loadUnaligned(fromByteOffset: base * 4, as: SIMD16<Float>.self)
                let c = raw.loadUnaligned(fromByteOffset: base * 4 + 64, as: SIMD16<Float>.self)
                sums[v * blocks + b] = (a + c).sum()
                for i in 0..<4 { for h in 0..<2 { for w in 0..<4 { permuted[base + 8 * i + 4 * h + w] = x[base + 16 * h + 4 * w + i] } } }
            }
        }
    }
}

/// Four 8-lane vectors of one block's 32 quantized values as Float: lane 4h + w of vector i is
/// element 16h + 4w + i. Built from the 16 (or 32) bytes read as 32-bit words — shifts, masks and
/// the 2²³ float trick (`Float(bitPattern: 0x4B00_0000 | q) − 2²³ == q` for q < 2²³) — because
/// Swift's generic SIMD integer → float conversions are not inlined across this build and cost
/// more than the dot itself.
typealias UnpackedBlock = (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)

enum BlockUnpack {
    // Constants are literals inside the inlined functions, not `static let`s: a global's lazy
    // initialisation check (swift_once) inside the loop is a call, which spills every vector register.
    @inline(__always)
    static func float(_ q: SIMD8<UInt32>, minus offset: SIMD8<Float>) -> SIMD8<Float> {
        unsafeBitCast(q | SIMD8<UInt32>(repeating: 0x4B00_0000), to: SIMD8<Float>.self) - offset
    }

    @inline(__always)
    static func bytes(_ words: SIMD8<UInt32>, minus offset: SIMD8<Float>) -> UnpackedBlock {
        (float(words & 0xFF, minus: offset), float((words &>> 8) & 0xFF, minus: offset),
         float((words &>> 16) & 0xFF, minus: offset), float(words &>> 24, minus: offset))
    }

    /// 16 bytes of nibbles: element j = low nibble of byte j, element j + 16 = high nibble.
    @inline(__always)
    static func nibbles(_ qs: UnsafeRawPointer) -> UnpackedBlock {
        let words = qs.loadUnaligned(as: SIMD4<UInt32>.self)
        return bytes(SIMD8(lowHalf: words & 0x0F0F_0F0F, highHalf: (words &>> 4) & 0x0F0F_0F0F), minus: SIMD8<Float>(repeating: 8_388_608))
    }

    /// 32 signed bytes, in order.
    @inline(__always)
    static func signedBytes(_ qs: UnsafeRawPointer) -> UnpackedBlock {
        // Flipping the sign bit maps an int8 s to the uint8 s + 128.
        let words = qs.loadUnaligned(as: SIMD8<UInt32>.self) ^ 0x8080_8080
        return bytes(words, minus: SIMD8<Float>(repeating: 8_388_736))
    }

    /// Σ q · x over the block, as 8 partial sums (x permuted as the unpacked order).
    @inline(__always)
    static func dot(_ q: UnpackedBlock, _ x: UnsafeRawPointer) -> SIMD8<Float> {
        var acc = q.0 * x.loadUnaligned(as: SIMD8<Float>.self)
        acc.addProduct(q.1, x.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
        acc.addProduct(q.2, x.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
        acc.addProduct(q.3, x.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
        return acc
    }
}

enum BlockDot {
    /// The block layout of each directly read type: bytes per block, and where q, d, m live.
    @inline(__always)
    static func unpack(_ type: GGMLType, _ block: UnsafeRawPointer) -> (q: UnpackedBlock, d: Float, m: Float) {
        switch type {
        case .q4_0:  // half d; u8 qs[16]. w = d·(q − 8)
            let d = loadHalf(block, 0)
            return (BlockUnpack.nibbles(block + 2), d, -8 * d)
        case .q4_1:  // half d; half m; u8 qs[16]. w = d·q + m
            return (BlockUnpack.nibbles(block + 4), loadHalf(block, 0), loadHalf(block, 2))
        default:     // Q8_0: half d; i8 qs[32]. w = d·q
            return (BlockUnpack.signedBytes(block + 2), loadHalf(block, 0), 0)
        }
    }

    /// out[v · outStride + r] = W[r] · x[v] for rows `rows` of a `type` matrix with `blocks` blocks
    /// per row at `weights`, and `vectors` activation rows prepared by `BlockSums` (`permuted`,
    /// `blocks · 32` floats apart, and their block sums).
    static func rows(
        _ type: GGMLType, weights: UnsafeRawPointer, rows: Range<Int>, blocks: Int,
        permuted x: UnsafePointer<Float>, sums: UnsafePointer<Float>, vectors: Int,
        out: UnsafeMutablePointer<Float>, outStride: Int
    ) {
        switch type {
        case .q4_0: kernel(.q4_0, 18, weights, rows, blocks, x, sums, vectors, out, outStride)
        case .q4_1: kernel(.q4_1, 20, weights, rows, blocks, x, sums, vectors, out, outStride)
        case .q8_0: kernel(.q8_0, 34, weights, rows, blocks, x, sums, vectors, out, outStride)
        default: preconditionFailure("BlockDot: \(type.name) is not read directly")
        }
    }

    @inline(__always)
    private static func kernel(
        _ type: GGMLType, _ blockBytes: Int, _ weights: UnsafeRawPointer, _ rows: Range<Int>, _ blocks: Int,
        _ x: UnsafePointer<Float>, _ sums: UnsafePointer<Float>, _ vectors: Int,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int
    ) {
        let rowBytes = blocks * blockBytes, width = blocks * 32
        let xRaw = UnsafeRawPointer(x)
        if vectors == 1 {
            for r in rows {
                let row = weights + r * rowBytes
                var acc = SIMD8<Float>()
                var offsetSum: Float = 0
                for b in 0..<blocks {
                    let (q, d, m) = unpack(type, row + b * blockBytes)
                    acc.addProduct(BlockUnpack.dot(q, xRaw + b * 128), SIMD8(repeating: d))
                    offsetSum += m * sums[b]
                }
                out[r] = acc.sum() + offsetSum
            }
            return
        }
        // Several activation rows (batched decode): each block is unpacked once and used for four
        // of them at a time; the row (≤ a few KB) stays in L1 across the groups, so the weights
        // stream from memory once per step whatever the batch size.
        let stride = width * 4
        for r in rows {
            let row = weights + r * rowBytes
            var v0 = 0
            while v0 < vectors {
                let group = min(4, vectors - v0)
                let xg = xRaw + v0 * stride
                let sg = sums + v0 * blocks
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var m0: Float = 0, m1: Float = 0, m2: Float = 0, m3: Float = 0
                for b in 0..<blocks {
                    let (q, d, m) = unpack(type, row + b * blockBytes)
                    let dv = SIMD8<Float>(repeating: d), o = b * 128
                    a0.addProduct(BlockUnpack.dot(q, xg + o), dv)
                    m0 += m * sg[b]
                    if group > 1 { a1.addProduct(BlockUnpack.dot(q, xg + stride + o), dv); m1 += m * sg[blocks + b] }
                    if group > 2 { a2.addProduct(BlockUnpack.dot(q, xg + 2 * stride + o), dv); m2 += m * sg[2 * blocks + b] }
                    if group > 3 { a3.addProduct(BlockUnpack.dot(q, xg + 3 * stride + o), dv); m3 += m * sg[3 * blocks + b] }
                }
                out[v0 * outStride + r] = a0.sum() + m0
                if group > 1 { out[(v0 + 1) * outStride + r] = a1.sum() + m1 }
                if group > 2 { out[(v0 + 2) * outStride + r] = a2.sum() + m2 }
                if group > 3 { out[(v0 + 3) * outStride + r] = a3.sum() + m3 }
                v0 += group
            }
        }
    }
}
