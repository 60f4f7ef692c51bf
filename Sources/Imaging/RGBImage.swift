/// An 8-bit RGB image, the common currency between decoding and CLIP preprocessing.
///
/// `pixels` is row-major and interleaved, shape `[height, width, 3]`: the byte for channel `c` of
/// the pixel at column `x`, row `y` is `pixels[(y * width + x) * 3 + c]`. This is the layout of
/// `numpy.asarray(PIL.Image.convert("RGB"))`, so fixtures compare byte for byte.
public struct RGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// `[height, width, 3]`, row-major, interleaved R, G, B.
    public var pixels: [UInt8]

    /// Wraps existing pixels; `pixels.count` must be `width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "RGBImage: negative size \(width)x\(height)")
        precondition(pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) bytes for \(width)x\(height)x3")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// A `width` x `height` image filled with one colour (PIL's `Image.new("RGB", size, colour)`).
    public init(width: Int, height: Int, filledWith colour: (UInt8, UInt8, UInt8)) {
        precondition(width >= 0 && height >= 0, "RGBImage: negative size \(width)x\(height)")
        let pixelCount = width * height
        var pixels = [UInt8](repeating: 0, count: pixelCount * 3)
        pixels.withUnsafeMutableBufferPointer { out in
            let (red, green, blue) = colour
            var offset = 0
            for _ in 0..<pixelCount {
                out[offset] = red
                out[offset + 1] = green
                out[offset + 2] = blue
                offset += 3
            }
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// The channel values at (`x`, `y`); convenient in tests, not for hot loops.
    public subscript(x: Int, y: Int) -> (red: UInt8, green: UInt8, blue: UInt8) {
        let offset = (y * width + x) * 3
        return (pixels[offset], pixels[offset + 1], pixels[offset + 2])
    }
}
