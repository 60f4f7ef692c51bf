/// IEEE half (F16) and bfloat16 (BF16) ↔ Float32.
///
/// F16 → F32 goes through a 65,536-entry table (256 KB, built once): one load per element, exact
/// for every bit pattern including subnormals and infinities. BF16 → F32 is a 16-bit shift.
enum HalfFloat {
    /// `table[bits]` = the Float32 value of the F16 bit pattern `bits`.
    static let table: UnsafePointer<Float> = {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 65_536)
        for bits in 0..<65_536 {
            table[bits] = Float(Float16(bitPattern: UInt16(truncatingIfNeeded: bits)))
        }
        return UnsafePointer(table)
    }()

    /// F16 bits at `pointer` (any alignment) as Float32.
    @inline(__always)
    static func load(_ pointer: UnsafeRawPointer, _ table: UnsafePointer<Float>) -> Float {
        table[Int(pointer.loadUnaligned(as: UInt16.self))]
    }

    /// `count` little-endian F16 values at `source` → `destination`.
    static func convertF16(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let table = HalfFloat.table
        for i in 0..<count {
            destination[i] = table[Int(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))]
        }
    }

    /// `count` little-endian BF16 values at `source` → `destination` (the upper half of a Float32).
    static func convertBF16(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        let out = UnsafeMutableRawPointer(destination)
        var i = 0
        while i + 8 <= count {
            let bits = source.loadUnaligned(fromByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            let wide = SIMD8<UInt32>(truncatingIfNeeded: bits) &<< 16
            out.storeBytes(of: wide, toByteOffset: 4 * i, as: SIMD8<UInt32>.self)
            i += 8
        }
        while i < count {
            let bits = UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16
            destination[i] = Float(bitPattern: bits)
            i += 1
        }
    }

    /// Float32 → F16 bits, rounding to nearest even (Swift's conversion, same as numpy's).
    @inline(__always)
    static func f16Bits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// Float32 → BF16 bits, rounding to nearest even; NaNs stay NaN (quieted), as torch and ggml do.
    @inline(__always)
    static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7fff_ffff > 0x7f80_0000 { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
        let rounded = bits &+ 0x7fff &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}
