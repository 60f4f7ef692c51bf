import Foundation

/// Pillow's convolution filters, numbered as `PIL.Image.Resampling` (and as `resample` in
/// `preprocessor_config.json`). Nearest (0) is a different algorithm in Pillow and is not offered.
public enum ResampleFilter: Int, Sendable, Codable, CaseIterable {
    case lanczos = 1
    case bilinear = 2
    case bicubic = 3
    case box = 4
    case hamming = 5

    /// Half-width of the kernel at scale 1, in input pixels.
    public var support: Double {
        switch self {
        case .box: return 0.5
        case .bilinear, .hamming: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    /// The kernel, evaluated in double precision exactly as Pillow's Resample.c does.
    @inline(__always)
    public func weight(_ t: Double) -> Double {
        switch self {
        case .box:
            return (t > -0.5 && t <= 0.5) ? 1 : 0
        case .bilinear:
            let x = abs(t)
            return x < 1 ? 1 - x : 0
        case .bicubic:
            // Keys' cubic convolution with a = -0.5.
            let a = -0.5
            let x = abs(t)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .hamming:
            let x = abs(t)
            if x == 0 { return 1 }
            if x >= 1 { return 0 }
            let px = x * Double.pi
            // Pillow writes the window constants as C floats (0.54f, 0.46f).
            return sin(px) / px * (Double(Float(0.54)) + Double(Float(0.46)) * cos(px))
        case .lanczos:
            guard t >= -3, t < 3 else { return 0 }
            return Self.sinc(t) * Self.sinc(t / 3)
        }
    }

    private static func sinc(_ t: Double) -> Double {
        if t == 0 { return 1 }
        let px = t * Double.pi
        return sin(px) / px
    }
}

/// Per-output-pixel taps of one resampling axis, in Pillow's 8-bit fixed point.
///
/// Output pixel `o` reads input pixels `start[o] ..< start[o] + count[o]` with weights
/// `weights[o * taps ..< o * taps + count[o]]`, each `round(w * 2^22)` of the normalized double
/// weight. The kernel is widened by the downscale factor (antialiasing), exactly as Pillow's
/// `precompute_coeffs`: centre = (o + 0.5) * scale, window rounded with `(int)(x + 0.5)`.
struct ResampleAxis {
    static let precisionBits = 22  // 32 - 8 - 2: two bits of headroom for negative lobes

    let outputSize: Int
    let taps: Int
    var start: [Int32]
    var count: [Int32]
    var weights: [Int32]

    init(inputSize: Int, outputSize: Int, filter: ResampleFilter) {
        precondition(inputSize > 0 && outputSize > 0, "ResampleAxis: empty axis \(inputSize) → \(outputSize)")
        let scale = Double(inputSize) / Double(outputSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        self.outputSize = outputSize
        self.taps = taps
        var start = [Int32](repeating: 0, count: outputSize)
        var count = [Int32](repeating: 0, count: outputSize)
        var weights = [Int32](repeating: 0, count: outputSize * taps)
        var kernel = [Double](repeating: 0, count: taps)
        let inverseFilterScale = 1 / filterScale
        let one = Double(1 << Self.precisionBits)
        for o in 0..<outputSize {
            let centre = (Double(o) + 0.5) * scale
            // C's (int) truncates toward zero; negative windows are clamped to 0 right after.
            let first = max(Int(centre - support + 0.5), 0)
            let last = min(Int(centre + support + 0.5), inputSize)
            let n = max(last - first, 0)
            var total = 0.0
            for t in 0..<n {
                let w = filter.weight((Double(t + first) - centre + 0.5) * inverseFilterScale)
                kernel[t] = w
                total += w
            }
            for t in 0..<n {
                let w = total != 0 ? kernel[t] / total : kernel[t]
                weights[o * taps + t] = w < 0 ? Int32(-0.5 + w * one) : Int32(0.5 + w * one)
            }
            start[o] = Int32(first)
            count[o] = Int32(n)
        }
        self.start = start
        self.count = count
        self.weights = weights
    }
}
