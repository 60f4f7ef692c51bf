import Foundation

/// Python's `str(round(v, digits))` for a float, byte for byte.
///
/// Python rounds the exact binary value to `digits` decimals (ties to even on the exact value,
/// so round(0.0005, 3) is 0.001 because 0.0005 is really 0.000500000000000000010…), then prints
/// the shortest repr that reads back to the same double. glibc's printf rounds the exact binary
/// value the same way, and Swift's `description` prints the shortest round-trip digits, so the
/// composition matches. Exponent notation cannot appear for values in [0, 1] with ≤ 3 decimals.
public enum PythonFloat {
    public static func roundedRepr(_ value: Double, digits: Int = 3) -> String {
        precondition(value.isFinite)
        var buf = [CChar](repeating: 0, count: 64)
        _ = buf.withUnsafeMutableBufferPointer { p in
            withVaList([value]) { vsnprintf(p.baseAddress!, 64, "%.\(digits)f", $0) }
        }
        var rounded = strtod(buf, nil)
        rounded += 0.0  // -0.0 → 0.0 (contexts clamp to [0, 1] first, so only -0.0 can be negative)
        return repr(rounded)
    }

    /// Python's repr of a float: shortest round-trip digits, always with a decimal point.
    public static func repr(_ value: Double) -> String {
        let s = value.description
        if s.contains(".") || s.contains("e") || s.contains("n") || s.contains("i") { return s }
        return s + ".0"
    }
}
