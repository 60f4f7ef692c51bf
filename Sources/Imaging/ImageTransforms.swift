/// Geometry steps of CLIP/LLaVA preprocessing, each matching its Python reference exactly.
public enum ImageTransforms {
    /// Pillow-compatible resize; see `Resampler` and `ResamplePassOrder`.
    public static func resize(_ image: RGBImage, width: Int, height: Int,
                              filter: ResampleFilter = .bicubic, order: ResamplePassOrder = .pillow13) -> RGBImage {
        Resampler.resize(image, width: width, height: height, filter: filter, order: order)
    }

    /// transformers' `get_resize_output_image_size(default_to_square=False)`: the short side
    /// becomes `shortestEdge`, the long side `int(shortestEdge * long / short)` (truncated).
    public static func shortestEdgeSize(width: Int, height: Int, shortestEdge: Int) -> (width: Int, height: Int) {
        let short = min(width, height), long = max(width, height)
        if short == shortestEdge { return (width, height) }
        // Python: int(size * long / short), a true (double) division then truncation.
        let newLong = Int(Double(shortestEdge * long) / Double(short))
        return width <= height ? (shortestEdge, newLong) : (newLong, shortestEdge)
    }

    /// transformers' `center_crop`: offsets `(size - crop) // 2`; a crop larger than the image
    /// is first padded with zeros, the image placed at `ceil((padded - size) / 2)`.
    public static func centerCrop(_ image: RGBImage, width cropWidth: Int, height cropHeight: Int) -> RGBImage {
        precondition(cropWidth > 0 && cropHeight > 0, "centerCrop: crop size \(cropWidth)x\(cropHeight)")
        let (left, top) = centerCropOrigin(width: image.width, height: image.height,
                                           cropWidth: cropWidth, cropHeight: cropHeight)
        return crop(image, left: left, top: top, width: cropWidth, height: cropHeight)
    }

    /// The crop window's top-left corner in `image` coordinates (negative = zero padding).
    /// transformers pads a too-small axis to the crop size with the image at
    /// `ceil((crop - size) / 2)` and slices from there, which lands on the same floor-division
    /// offset as the plain case, so one formula covers both.
    static func centerCropOrigin(width: Int, height: Int, cropWidth: Int, cropHeight: Int) -> (left: Int, top: Int) {
        (floorDiv(width - cropWidth, 2), floorDiv(height - cropHeight, 2))
    }

    /// The `width` x `height` window at (`left`, `top`); pixels outside `image` are black.
    public static func crop(_ image: RGBImage, left: Int, top: Int, width: Int, height: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let x0 = max(left, 0), x1 = min(left + width, image.width)
        let y0 = max(top, 0), y1 = min(top + height, image.height)
        guard x0 < x1, y0 < y1 else { return RGBImage(width: width, height: height, pixels: pixels) }
        let spanBytes = (x1 - x0) * 3
        image.pixels.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                for y in y0..<y1 {
                    let from = source.baseAddress! + (y * image.width + x0) * 3
                    let to = target.baseAddress! + ((y - top) * width + (x0 - left)) * 3
                    to.update(from: from, count: spanBytes)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// LLaVA's `expand2square`: a square canvas of the long side filled with `background`, the image
    /// pasted at ((side - w) // 2, (side - h) // 2). Square images are returned unchanged.
    public static func expandToSquare(_ image: RGBImage, background: (UInt8, UInt8, UInt8)) -> RGBImage {
        if image.width == image.height { return image }
        let side = max(image.width, image.height)
        let left = (side - image.width) / 2, top = (side - image.height) / 2
        var canvas = RGBImage(width: side, height: side, filledWith: background)
        let rowBytes = image.width * 3
        image.pixels.withUnsafeBufferPointer { source in
            canvas.pixels.withUnsafeMutableBufferPointer { target in
                for y in 0..<image.height {
                    let to = target.baseAddress! + ((y + top) * side + left) * 3
                    to.update(from: source.baseAddress! + y * rowBytes, count: rowBytes)
                }
            }
        }
        return canvas
    }

    @inline(__always)
    static func floorDiv(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}
