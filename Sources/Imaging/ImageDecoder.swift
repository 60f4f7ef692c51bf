import CImageShims
import ForgeCore
import Foundation

/// The container formats we decode, recognised by their magic bytes (never by file extension).
public enum ImageFormat: String, Sendable {
    case jpeg = "JPEG"
    case png = "PNG"

    /// JPEG starts with SOI + a marker (`FF D8 FF`); PNG with its 8-byte signature.
    public static func sniff<Bytes: Collection>(_ bytes: Bytes) -> ImageFormat? where Bytes.Element == UInt8 {
        let head = Array(bytes.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        return nil
    }
}

/// Sizes refused before any pixel buffer is allocated (a 20-byte header can claim 4 G pixels).
public struct ImageLimits: Sendable, Equatable {
    public var maxSide: Int
    public var maxPixels: Int

    public init(maxSide: Int, maxPixels: Int) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }

    /// 16384 per side, 100 M pixels (300 MB of RGB).
    public static let standard = ImageLimits(maxSide: 16_384, maxPixels: 100_000_000)
}

/// JPEG and PNG → `RGBImage`, matching Pillow's `Image.open(f).convert("RGB")` byte for byte
/// (see Sources/CImageShims for the per-layout rules: CMYK inversion, 16-bit handling, alpha dropped
/// without compositing). EXIF orientation is not applied, as in Pillow and LLaVA.
/// Every failure is a `ForgeError` naming the file (or the `name` given for in-memory bytes).
public enum ImageDecoder {
    public static func decode(path: String, limits: ImageLimits = .standard) throws -> RGBImage {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ForgeError(.io, "cannot read image: \(error.localizedDescription)", file: path)
        }
        return try decode(data: data, name: path, limits: limits)
    }

    public static func decode(data: Data, name: String, limits: ImageLimits = .standard) throws -> RGBImage {
        try data.withUnsafeBytes { raw in
            try decode(buffer: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                   count: raw.count), name: name, limits: limits)
        }
    }

    public static func decode(bytes: [UInt8], name: String, limits: ImageLimits = .standard) throws -> RGBImage {
        try bytes.withUnsafeBufferPointer { try decode(buffer: $0, name: name, limits: limits) }
    }

    /// A `data:image/...;base64,...` URL as sent in OpenAI-style `image_url` content parts.
    /// The declared media type is not trusted; the bytes are sniffed like any other input.
    public static func decode(dataURL: String, name: String, limits: ImageLimits = .standard) throws -> RGBImage {
        guard dataURL.hasPrefix("data:"), let comma = dataURL.firstIndex(of: ",") else {
            throw ForgeError(.badInput, "not a data: URL", file: name)
        }
        let header = dataURL[dataURL.index(dataURL.startIndex, offsetBy: 5)..<comma]
        guard header.split(separator: ";").contains(where: { $0 == "base64" }) else {
            throw ForgeError(.badInput, "data: URL is not base64-encoded (\"\(header)\")", file: name)
        }
        let payload = dataURL[dataURL.index(after: comma)...]
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters) else {
            throw ForgeError(.badInput, "data: URL has invalid base64", file: name)
        }
        return try decode(data: data, name: name, limits: limits)
    }

    /// Like `decode`, plus a one-line description of the source layout ("PNG palette 4-bit tRNS").
    public static func decodeDescribed(bytes: [UInt8], name: String,
                                       limits: ImageLimits = .standard) throws -> (image: RGBImage, source: String) {
        try bytes.withUnsafeBufferPointer { try decodeDescribed(buffer: $0, name: name, limits: limits) }
    }

    static func decode(buffer: UnsafeBufferPointer<UInt8>, name: String, limits: ImageLimits) throws -> RGBImage {
        try decodeDescribed(buffer: buffer, name: name, limits: limits).image
    }

    static func decodeDescribed(buffer: UnsafeBufferPointer<UInt8>, name: String,
                                limits: ImageLimits) throws -> (image: RGBImage, source: String) {
        guard buffer.count > 0, let base = buffer.baseAddress else {
            throw ForgeError(.badInput, "image file is empty (0 bytes)", file: name)
        }
        guard let format = ImageFormat.sniff(buffer) else {
            let head = buffer.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ForgeError(.badInput, "not a JPEG or PNG file (starts with \(head))", file: name)
        }
        var decoded = ForgeDecodedImage()
        let cLimits = ForgeImageLimits(maxSide: Int64(limits.maxSide), maxPixels: Int64(limits.maxPixels))
        let status: ForgeImageStatus
        switch format {
        case .jpeg: status = forge_decode_jpeg(base, buffer.count, cLimits, &decoded)
        case .png: status = forge_decode_png(base, buffer.count, cLimits, &decoded)
        }
        defer { forge_image_release(&decoded) }
        let message = withUnsafeBytes(of: &decoded.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard status == FORGE_IMAGE_OK, let pixels = decoded.pixels else {
            throw ForgeError(.badInput, "cannot decode \(format.rawValue): \(message)", file: name)
        }
        let width = Int(decoded.width), height = Int(decoded.height)
        let bytes = [UInt8](UnsafeBufferPointer(start: pixels, count: width * height * 3))
        return (RGBImage(width: width, height: height, pixels: bytes), message)
    }
}
