import Foundation

/// Python's `str(round(v, digits))` for a float, byte for byte.
///
/// Python rounds the exact binary value to `digits` decimals (ties to even on the exact value,
/// so round(0.0005, 3) is 0.001 because 0.0005 is really 0.000500000000000000010…), then prints
/// the shortest repr that reads back to the same double.
///
/// Two paths give the same bytes:
/// - `roundedRepr` for v in [0, 1] and 3 digits (every box coordinate of a context — 4 per box,
///   ~3.4 M for train2017) is exact integer arithmetic: an error-free product `v·1000 = p + e`
///   (`fma`) decides the rounding of the exact value, and the shortest repr of `k/1000` is the
///   decimal digits of `k` with trailing zeros dropped (3 significant digits always round-trip).
/// - `roundedReprViaPrintf` for everything else: glibc's printf rounds the exact binary value
///   like CPython's `round`, and Swift's `description` is shortest-round-trip like `repr`.
///   It is also the reference the fast path is tested against.
public enum PythonFloat {
    public static func roundedRepr(_ value: Double, digits: Int = 3) -> String {
        precondition(value.isFinite)
        guard digits == 3, value >= 0, value <= 1 else { return roundedReprViaPrintf(value, digits: digits) }
        return thousandths(roundedThousandths(value))
    }

    /// `round(v * 1000)` of the exact binary value of `v`, ties to even; `v` in [0, 1].
    @inline(__always)
    static func roundedThousandths(_ v: Double) -> Int {
        let p = v * 1000
        let e = (-p).addingProduct(v, 1000)  // fused: exact, so v·1000 = p + e
        let f = p.rounded(.down)
        // d is a multiple of ulp(p) (p < 2^52), so when d ≠ 0 it outweighs |e| ≤ ulp(p)/2.
        let d = (p - f) - 0.5
        let k = Int(f)
        if d > 0 || (d == 0 && e > 0) { return k + 1 }
        if d < 0 || (d == 0 && e < 0) { return k }
        return k & 1 == 0 ? k : k + 1  // exact tie
    }

    /// Python's repr of `k / 1000` for k in 0...1000: "0.0", "0.5", "0.34", "0.574", "1.0".
    @inline(__always)
    static func thousandths(_ k: Int) -> String {
        if k >= 1000 { return "1.0" }
        if k == 0 { return "0.0" }
        let count = k % 10 != 0 ? 5 : (k % 100 != 0 ? 4 : 3)  // "0.xyz" without trailing zeros
        return String(unsafeUninitializedCapacity: 5) { out in
            out[0] = UInt8(ascii: "0"); out[1] = UInt8(ascii: ".")
            out[2] = UInt8(truncatingIfNeeded: 0x30 + k / 100)
            out[3] = UInt8(truncatingIfNeeded: 0x30 + (k / 10) % 10)
            out[4] = UInt8(truncatingIfNeeded: 0x30 + k % 10)
            return count
        }
    }

    /// The general path (any value, any number of digits); see the type's comment.
    public static func roundedReprViaPrintf(_ value: Double, digits: Int = 3) -> String {
        precondition(value.isFinite)
        var buf = [CChar](repeating: 0, count: 400)
        _ = buf.withUnsafeMutableBufferPointer { p in
            withVaList([value]) { vsnprintf(p.baseAddress!, 400, "%.\(digits)f", $0) }
        }
        var rounded = strtod(buf, nil)
        rounded += 0.0  // -0.0 → 0.0
        return repr(rounded)
    }

    /// Python's repr of a float: shortest round-trip digits, always with a decimal point.
    public static func repr(_ value: Double) -> String {
        let s = value.description
        for b in s.utf8 where b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "n") || b == UInt8(ascii: "i") {
            return s
        }
        return s + ".0"
    }
}
