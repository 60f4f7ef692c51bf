/// Dequantization of ggml's 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
///
/// Each kernel reads `blocks` consecutive blocks at `source` (any alignment) and writes
/// `blocks * 32` floats. The arithmetic is ggml's reference formula in Float32, one rounding per
/// operation and no fused multiply-add, so the result is bit-identical to gguf-py's numpy
/// `dequantize` (and to ggml's scalar `dequantize_row_*`).
enum LegacyQuantKernels {
    /// Q4_0, 18 bytes: half d; u8 qs[16] (element j low nibble of qs[j], element j+16 high nibble).
    /// y = d · (q − 8).
    static func q4_0(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 18
            let d = HalfFloat.load(block, table)
            let qs = block.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
            let low = SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F) &- 8
            let high = SIMD16<Int32>(truncatingIfNeeded: qs &>> 4) &- 8
            out.storeBytes(of: SIMD16<Float>(low) * d, toByteOffset: b * 128, as: SIMD16<Float>.self)
            out.storeBytes(of: SIMD16<Float>(high) * d, toByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        }
    }

    /// Q4_1, 20 bytes: half d; half m; u8 qs[16] (nibbles as Q4_0). y = d · q + m.
    static func q4_1(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 20
            let d = HalfFloat.load(block, table)
            let m = HalfFloat.load(block + 2, table)
            let qs = block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
            let low = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F))
            let high = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs &>> 4))
            out.storeBytes(of: low * d + m, toByteOffset: b * 128, as: SIMD16<Float>.self)
            out.storeBytes(of: high * d + m, toByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        }
    }

    /// Bit j of `qh` (j = 0..<16 for `upperHalf == false`, 16..<32 otherwise) moved to bit 4.
    @inline(__always)
    private static func fifthBits(_ qh: UInt32, upperHalf: Bool) -> SIMD16<Int32> {
        let shifts = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) &+ (upperHalf ? 16 : 0)
        let bits = (SIMD16<UInt32>(repeating: qh) &>> shifts) & 1
        return SIMD16<Int32>(truncatingIfNeeded: bits &<< 4)
    }

    /// Q5_0, 22 bytes: half d; u32 qh (bit j = 5th bit of element j); u8 qs[16]. y = d · (q − 16).
    static func q5_0(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 22
            let d = HalfFloat.load(block, table)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let qs = block.loadUnaligned(fromByteOffset: 6, as: SIMD16<UInt8>.self)
            let low = (SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F) | fifthBits(qh, upperHalf: false)) &- 16
            let high = (SIMD16<Int32>(truncatingIfNeeded: qs &>> 4) | fifthBits(qh, upperHalf: true)) &- 16
            out.storeBytes(of: SIMD16<Float>(low) * d, toByteOffset: b * 128, as: SIMD16<Float>.self)
            out.storeBytes(of: SIMD16<Float>(high) * d, toByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        }
    }

    /// Q5_1, 24 bytes: half d; half m; u32 qh; u8 qs[16]. y = d · q + m.
    static func q5_1(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 24
            let d = HalfFloat.load(block, table)
            let m = HalfFloat.load(block + 2, table)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let qs = block.loadUnaligned(fromByteOffset: 8, as: SIMD16<UInt8>.self)
            let low = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs & 0x0F) | fifthBits(qh, upperHalf: false))
            let high = SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: qs &>> 4) | fifthBits(qh, upperHalf: true))
            out.storeBytes(of: low * d + m, toByteOffset: b * 128, as: SIMD16<Float>.self)
            out.storeBytes(of: high * d + m, toByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        }
    }

    /// Q8_0, 34 bytes: half d; i8 qs[32]. y = q · d.
    static func q8_0(_ source: UnsafeRawPointer, blocks: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        let out = UnsafeMutableRawPointer(destination)
        for b in 0..<blocks {
            let block = source + b * 34
            let d = HalfFloat.load(block, table)
            let first = block.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
            let second = block.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
            out.storeBytes(of: SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: first)) * d, toByteOffset: b * 128, as: SIMD16<Float>.self)
            out.storeBytes(of: SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: second)) * d, toByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        }
    }
}
