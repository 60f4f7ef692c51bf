import ForgeCore
import Foundation

/// `preprocessor_config.json` of a CLIP image processor (transformers' `CLIPImageProcessor`).
///
/// Accepts both spellings found on the Hub: `"size": 336` or `{"shortest_edge": 336}` (or an exact
/// `{"height", "width"}`), `"crop_size": 336` or `{"height": 336, "width": 336}`. Missing keys take
/// `CLIPImageProcessor`'s defaults; unknown keys (`processor_class`, `image_processor_type`, …) are
/// ignored.
public struct CLIPPreprocessorConfig: Codable, Sendable, Equatable {
    public enum ResizeTarget: Sendable, Equatable {
        /// Short side to N, aspect kept (CLIP's usual setting).
        case shortestEdge(Int)
        /// Exactly width x height.
        case exact(width: Int, height: Int)
    }

    public var doResize: Bool
    public var size: ResizeTarget
    public var resample: ResampleFilter
    public var doCenterCrop: Bool
    public var cropWidth: Int
    public var cropHeight: Int
    public var doRescale: Bool
    public var rescaleFactor: Double
    public var doNormalize: Bool
    public var imageMean: [Double]
    public var imageStd: [Double]

    public static let openAIMean = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd = [0.26862954, 0.26130258, 0.27577711]

    public init(doResize: Bool = true, size: ResizeTarget = .shortestEdge(224), resample: ResampleFilter = .bicubic,
                doCenterCrop: Bool = true, cropWidth: Int = 224, cropHeight: Int = 224,
                doRescale: Bool = true, rescaleFactor: Double = 1.0 / 255.0,
                doNormalize: Bool = true, imageMean: [Double] = openAIMean, imageStd: [Double] = openAIStd) {
        self.doResize = doResize
        self.size = size
        self.resample = resample
        self.doCenterCrop = doCenterCrop
        self.cropWidth = cropWidth
        self.cropHeight = cropHeight
        self.doRescale = doRescale
        self.rescaleFactor = rescaleFactor
        self.doNormalize = doNormalize
        self.imageMean = imageMean
        self.imageStd = imageStd
    }

    /// CLIP ViT-B/16, ViT-L/14 (224) and ViT-L/14-336 as published by OpenAI.
    public static func openAI(resolution: Int) -> CLIPPreprocessorConfig {
        CLIPPreprocessorConfig(size: .shortestEdge(resolution), cropWidth: resolution, cropHeight: resolution)
    }

    /// The output tensor is `[3, outputHeight, outputWidth]`; for aspect-keeping resizes without a
    /// crop it depends on the image, and this is nil.
    public var outputSize: (width: Int, height: Int)? {
        if doCenterCrop { return (cropWidth, cropHeight) }
        if doResize, case .exact(let width, let height) = size { return (width, height) }
        return nil
    }

    /// Reads and validates `path` (a file, or a folder holding `preprocessor_config.json`).
    public static func load(path: String) throws -> CLIPPreprocessorConfig {
        var isDirectory: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = (path as NSString).appendingPathComponent("preprocessor_config.json")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw ForgeError(.io, "cannot read preprocessor config: \(error.localizedDescription)", file: file)
        }
        return try decode(data, file: file)
    }

    /// Decodes and validates JSON; errors name `file` and the offending field.
    public static func decode(_ data: Data, file: String) throws -> CLIPPreprocessorConfig {
        let config: CLIPPreprocessorConfig
        do {
            config = try JSONDecoder().decode(CLIPPreprocessorConfig.self, from: data)
        } catch let error as DecodingError {
            throw Self.forgeError(error, file: file)
        } catch let error as ForgeError {
            throw ForgeError(error.kind, error.message, file: file, location: error.location)
        } catch {
            throw ForgeError(.config, "invalid JSON: \(error.localizedDescription)", file: file)
        }
        try config.validate(file: file)
        return config
    }

    /// Rejects settings that would make preprocessing meaningless or crash.
    public func validate(file: String? = nil) throws {
        func fail(_ field: String, _ message: String) -> ForgeError {
            ForgeError(.config, message, file: file, location: field)
        }
        switch size {
        case .shortestEdge(let edge):
            guard (1...16_384).contains(edge) else { throw fail("size", "shortest_edge \(edge) is out of range 1...16384") }
        case .exact(let width, let height):
            guard (1...16_384).contains(width), (1...16_384).contains(height) else {
                throw fail("size", "size \(width)x\(height) is out of range 1...16384")
            }
        }
        guard (1...16_384).contains(cropWidth), (1...16_384).contains(cropHeight) else {
            throw fail("crop_size", "crop size \(cropWidth)x\(cropHeight) is out of range 1...16384")
        }
        guard imageMean.count == 3 else { throw fail("image_mean", "needs 3 values, has \(imageMean.count)") }
        guard imageStd.count == 3 else { throw fail("image_std", "needs 3 values, has \(imageStd.count)") }
        guard imageStd.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw fail("image_std", "values must be positive") }
        guard imageMean.allSatisfy({ $0.isFinite }) else { throw fail("image_mean", "values must be finite") }
        guard rescaleFactor.isFinite && rescaleFactor > 0 else { throw fail("rescale_factor", "must be positive") }
    }

    // MARK: Codable

    enum CodingKeys: String, CodingKey {
        case doResize = "do_resize"
        case size
        case resample
        case doCenterCrop = "do_center_crop"
        case cropSize = "crop_size"
        case doRescale = "do_rescale"
        case rescaleFactor = "rescale_factor"
        case doNormalize = "do_normalize"
        case imageMean = "image_mean"
        case imageStd = "image_std"
    }

    private struct SizeDictionary: Codable {
        var shortestEdge: Int?
        var height: Int?
        var width: Int?
        enum CodingKeys: String, CodingKey {
            case shortestEdge = "shortest_edge"
            case height, width
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = CLIPPreprocessorConfig()
        doResize = try c.decodeIfPresent(Bool.self, forKey: .doResize) ?? defaults.doResize
        doCenterCrop = try c.decodeIfPresent(Bool.self, forKey: .doCenterCrop) ?? defaults.doCenterCrop
        doRescale = try c.decodeIfPresent(Bool.self, forKey: .doRescale) ?? defaults.doRescale
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? defaults.doNormalize
        rescaleFactor = try c.decodeIfPresent(Double.self, forKey: .rescaleFactor) ?? defaults.rescaleFactor
        imageMean = try c.decodeIfPresent([Double].self, forKey: .imageMean) ?? defaults.imageMean
        imageStd = try c.decodeIfPresent([Double].self, forKey: .imageStd) ?? defaults.imageStd

        if let number = try? c.decodeIfPresent(Int.self, forKey: .resample) {
            guard let filter = ResampleFilter(rawValue: number) else {
                throw ForgeError(.config, "resample \(number) is not supported (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)",
                                 location: "resample")
            }
            resample = filter
        } else {
            resample = defaults.resample
        }

        if c.contains(.size), try !c.decodeNil(forKey: .size) {
            if let edge = try? c.decode(Int.self, forKey: .size) {
                size = .shortestEdge(edge)  // get_size_dict(int, default_to_square=False)
            } else {
                let dictionary = try c.decode(SizeDictionary.self, forKey: .size)
                if let edge = dictionary.shortestEdge {
                    size = .shortestEdge(edge)
                } else if let height = dictionary.height, let width = dictionary.width {
                    size = .exact(width: width, height: height)
                } else {
                    throw ForgeError(.config, "size needs \"shortest_edge\" or \"height\" and \"width\"", location: "size")
                }
            }
        } else {
            size = defaults.size
        }

        if c.contains(.cropSize), try !c.decodeNil(forKey: .cropSize) {
            if let side = try? c.decode(Int.self, forKey: .cropSize) {
                cropWidth = side
                cropHeight = side
            } else {
                let dictionary = try c.decode(SizeDictionary.self, forKey: .cropSize)
                guard let height = dictionary.height, let width = dictionary.width else {
                    throw ForgeError(.config, "crop_size needs \"height\" and \"width\"", location: "crop_size")
                }
                cropWidth = width
                cropHeight = height
            }
        } else {
            cropWidth = defaults.cropWidth
            cropHeight = defaults.cropHeight
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(doResize, forKey: .doResize)
        switch size {
        case .shortestEdge(let edge): try c.encode(SizeDictionary(shortestEdge: edge), forKey: .size)
        case .exact(let width, let height): try c.encode(SizeDictionary(height: height, width: width), forKey: .size)
        }
        try c.encode(resample.rawValue, forKey: .resample)
        try c.encode(doCenterCrop, forKey: .doCenterCrop)
        try c.encode(SizeDictionary(height: cropHeight, width: cropWidth), forKey: .cropSize)
        try c.encode(doRescale, forKey: .doRescale)
        try c.encode(rescaleFactor, forKey: .rescaleFactor)
        try c.encode(doNormalize, forKey: .doNormalize)
        try c.encode(imageMean, forKey: .imageMean)
        try c.encode(imageStd, forKey: .imageStd)
    }

    private static func forgeError(_ error: DecodingError, file: String) -> ForgeError {
        func field(_ path: [CodingKey]) -> String {
            path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return ForgeError(.config, "expected \(type): \(context.debugDescription)", file: file, location: field(context.codingPath))
        case .valueNotFound(let type, let context):
            return ForgeError(.config, "missing \(type) value", file: file, location: field(context.codingPath))
        case .keyNotFound(let key, let context):
            return ForgeError(.config, "missing key", file: file, location: field(context.codingPath + [key]))
        case .dataCorrupted(let context):
            return ForgeError(.config, "invalid JSON: \(context.debugDescription)", file: file, location: field(context.codingPath))
        @unknown default:
            return ForgeError(.config, "invalid config: \(error)", file: file)
        }
    }
}
