/// Residual connection `out = a + b` (out may alias a or b).
public enum Residual {
    public static func forward(out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, count: Int) {
        OpProfile.measure("residual.forward") {
            Parallel.forEachRange(count, grain: 65_536) { range in
                for i in range { out[i] = a[i] + b[i] }
            }
        }
    }

    /// da += dout; db += dout.
    public static func backward(da: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, count: Int) {
        Parallel.forEachRange(count, grain: 65_536) { range in
            for i in range { da[i] += dout[i]; db[i] += dout[i] }
        }
    }
}
