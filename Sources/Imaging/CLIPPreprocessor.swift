/// transformers' slow `CLIPImageProcessor` (Pillow backend), plus LLaVA's pad-to-square.
///
/// Steps, each exact against the Python reference (ImagingTests):
/// 1. optional `expand2square` with the mean colour `int(mean * 255)` = (122, 116, 104) for CLIP;
/// 2. Pillow resize (shortest edge, or exact size) with the configured filter;
/// 3. centre crop with transformers' offsets;
/// 4. `x * rescale_factor` in double, rounded to float32, then `(x - mean) / std` in float32 —
///    the same operations numpy does, so the floats are bit-identical.
public struct CLIPPreprocessor: Sendable {
    public let config: CLIPPreprocessorConfig
    /// LLaVA's padding colour: `tuple(int(x * 255) for x in image_mean)`.
    public let padColour: (UInt8, UInt8, UInt8)
    /// `[3][256]`: the final float of every byte value per channel.
    private let lookup: [Float]

    /// `config` must be valid (`CLIPPreprocessorConfig.load`/`decode` validate files; a config
    /// built in code with the wrong number of mean/std values is a programming error).
    public init(config: CLIPPreprocessorConfig) {
        precondition(config.imageMean.count == 3 && config.imageStd.count == 3,
                     "CLIPPreprocessor: image_mean and image_std need 3 values each")
        self.config = config
        let mean = config.imageMean, std = config.imageStd
        func padByte(_ value: Double) -> UInt8 { UInt8(clamping: Int(value * 255)) }
        padColour = (padByte(mean[0]), padByte(mean[1]), padByte(mean[2]))
        var lookup = [Float](repeating: 0, count: 3 * 256)
        for channel in 0..<3 {
            let mean32 = Float(mean[channel]), std32 = Float(std[channel])
            for byte in 0..<256 {
                var value = config.doRescale ? Float(Double(byte) * config.rescaleFactor) : Float(byte)
                if config.doNormalize { value = (value - mean32) / std32 }
                lookup[channel * 256 + byte] = value
            }
        }
        self.lookup = lookup
    }

    /// The uint8 image the tensor is made from: padded, resized and cropped.
    public func preparedImage(_ image: RGBImage, padToSquare: Bool) -> RGBImage {
        var current = padToSquare ? ImageTransforms.expandToSquare(image, background: padColour) : image
        if config.doResize {
            let target: (width: Int, height: Int)
            switch config.size {
            case .shortestEdge(let edge):
                target = ImageTransforms.shortestEdgeSize(width: current.width, height: current.height, shortestEdge: edge)
            case .exact(let width, let height):
                target = (width, height)
            }
            current = ImageTransforms.resize(current, width: target.width, height: target.height, filter: config.resample)
        }
        if config.doCenterCrop {
            current = ImageTransforms.centerCrop(current, width: config.cropWidth, height: config.cropHeight)
        }
        return current
    }

    /// `[3, H, W]` float32, channels first (H x W = the crop size when cropping).
    public func pixelValues(_ image: RGBImage, padToSquare: Bool) -> [Float] {
        tensor(from: preparedImage(image, padToSquare: padToSquare))
    }

    /// Rescale + normalize an already prepared image into `[3, H, W]`.
    public func tensor(from prepared: RGBImage) -> [Float] {
        let planeSize = prepared.width * prepared.height
        return [Float](unsafeUninitializedCapacity: 3 * planeSize) { out, initialized in
            prepared.pixels.withUnsafeBufferPointer { pixels in
                lookup.withUnsafeBufferPointer { table in
                    let red = out.baseAddress!, green = red + planeSize, blue = green + planeSize
                    let redTable = table.baseAddress!, greenTable = redTable + 256, blueTable = greenTable + 256
                    var source = pixels.baseAddress!
                    for i in 0..<planeSize {
                        red[i] = redTable[Int(source[0])]
                        green[i] = greenTable[Int(source[1])]
                        blue[i] = blueTable[Int(source[2])]
                        source += 3
                    }
                }
            }
            initialized = 3 * planeSize
        }
    }
}
