import ForgeCore
import Foundation
@testable import Imaging
import XCTest

/// Pixel tensors equal transformers' slow `CLIPImageProcessor` (with LLaVA's pad-to-square).
final class CLIPPreprocessorTests: XCTestCase {
    static let mean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    static let std: [Float] = [0.26862954, 0.26130258, 0.27577711]

    func testPhotoTensorsMatchCLIPImageProcessor() throws {
        let cases = Fixtures.manifest.clip
        XCTAssertTrue(cases.contains { $0.resolution == 224 } && cases.contains { $0.resolution == 336 })
        XCTAssertTrue(cases.contains { $0.pad } && cases.contains { !$0.pad })
        for item in cases {
            let label = "\(item.file) @\(item.resolution) pad=\(item.pad)"
            let photo = try item.sourceImage()
            let preprocessor = CLIPPreprocessor(config: .openAI(resolution: item.resolution))
            let values = preprocessor.pixelValues(photo, padToSquare: item.pad)
            let side = item.resolution, plane = side * side
            XCTAssertEqual(values.count, 3 * plane, label)

            // 1. Every value, de-normalized, within 2/255 of the reference uint8 image.
            let reference = try ImageDecoder.decode(path: Fixtures.path(item.preparedPNG))
            XCTAssertEqual(reference.width, side)
            var worst: Float = 0
            for channel in 0..<3 {
                for i in 0..<plane {
                    let restored = (values[channel * plane + i] * Self.std[channel] + Self.mean[channel]) * 255
                    let difference = abs(restored.rounded() - Float(reference.pixels[i * 3 + channel]))
                    worst = max(worst, difference)
                }
            }
            XCTAssertLessThanOrEqual(worst, 2, "\(label): max de-normalized difference \(worst)/255")

            // 2. The uint8 image before rescaling equals Pillow + transformers exactly.
            let prepared = preprocessor.preparedImage(photo, padToSquare: item.pad)
            XCTAssert(prepared == reference, "\(label): \(firstDifference(prepared.pixels, reference.pixels, width: side))")

            // 3. The float32 tensor is bit-identical (rescale in double, normalize in float32).
            for (n, expected) in item.sampleValues.enumerated() {
                XCTAssertEqual(values[n * item.sampleStride], expected, accuracy: 1e-6, "\(label) value \(n * item.sampleStride)")
            }
            XCTAssertEqual(Fixtures.sha256(values), item.pixelValuesSHA256, "\(label): float32 tensor not bit-identical")
        }
    }

    func testExpandToSquarePlacesTheImageLikeLLaVA() {
        let wide = RGBImage(width: 5, height: 2, filledWith: (1, 2, 3))
        let square = ImageTransforms.expandToSquare(wide, background: (122, 116, 104))
        XCTAssertEqual(square.width, 5)
        XCTAssertEqual(square.height, 5)
        // Pasted at (0, (5 - 2) // 2) = (0, 1).
        for y in 0..<5 {
            for x in 0..<5 {
                let inside = y == 1 || y == 2
                XCTAssertTrue(square[x, y] == (inside ? (1, 2, 3) : (122, 116, 104)), "(\(x), \(y))")
            }
        }
        let tall = RGBImage(width: 2, height: 5, filledWith: (9, 9, 9))
        let tallSquare = ImageTransforms.expandToSquare(tall, background: (0, 0, 0))
        XCTAssertTrue(tallSquare[1, 0] == (9, 9, 9) && tallSquare[2, 4] == (9, 9, 9))
        XCTAssertTrue(tallSquare[0, 0] == (0, 0, 0) && tallSquare[3, 0] == (0, 0, 0))
        XCTAssertEqual(ImageTransforms.expandToSquare(square, background: (0, 0, 0)), square)
        XCTAssertTrue(CLIPPreprocessor(config: .openAI(resolution: 336)).padColour == (122, 116, 104))
    }

    func testCenterCropOffsetsAndPaddingFollowTransformers() {
        // 7x4 with distinct pixels; crop 4x3 → offsets ((7-4)//2, (4-3)//2) = (1, 0).
        let pixels = (0..<(7 * 4 * 3)).map { UInt8($0) }
        let image = RGBImage(width: 7, height: 4, pixels: pixels)
        let cropped = ImageTransforms.centerCrop(image, width: 4, height: 3)
        XCTAssertTrue(cropped[0, 0] == image[1, 0])
        XCTAssertTrue(cropped[3, 2] == image[4, 2])
        // Larger than the image: zero padding, image at ceil((6 - 4) / 2) = 1 vertically, and the
        // width axis still crops at (7 - 5) // 2 = 1.
        let padded = ImageTransforms.centerCrop(image, width: 5, height: 6)
        XCTAssertTrue(padded[0, 0] == (0, 0, 0))
        XCTAssertTrue(padded[0, 1] == image[1, 0])
        XCTAssertTrue(padded[4, 4] == image[5, 3])
        XCTAssertTrue(padded[2, 5] == (0, 0, 0))
        // Odd padding: 3 rows into 6 → top pad ceil(3/2) = 2.
        let short = RGBImage(width: 2, height: 3, filledWith: (5, 5, 5))
        let tall = ImageTransforms.centerCrop(short, width: 2, height: 6)
        XCTAssertEqual((0..<6).map { tall[0, $0].red }, [0, 0, 5, 5, 5, 0])
    }

    func testShortestEdgeSizeTruncatesLikePython() {
        XCTAssertTrue(ImageTransforms.shortestEdgeSize(width: 451, height: 300, shortestEdge: 224) == (336, 224))  // int(336.77)
        XCTAssertTrue(ImageTransforms.shortestEdgeSize(width: 512, height: 600, shortestEdge: 336) == (336, 393))  // int(393.75)
        XCTAssertTrue(ImageTransforms.shortestEdgeSize(width: 1024, height: 768, shortestEdge: 336) == (448, 336))
        XCTAssertTrue(ImageTransforms.shortestEdgeSize(width: 300, height: 300, shortestEdge: 224) == (224, 224))
        XCTAssertTrue(ImageTransforms.shortestEdgeSize(width: 224, height: 999, shortestEdge: 224) == (224, 999))
    }

    func testConfigReadsBothHubSpellings() throws {
        let llavaHF = """
        {"crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true,
         "do_normalize": true, "do_rescale": true, "do_resize": true,
         "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
         "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor",
         "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}}
        """
        let openAI = """
        {"crop_size": 336, "do_center_crop": true, "do_normalize": true, "do_resize": true,
         "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
         "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 336}
        """
        let a = try CLIPPreprocessorConfig.decode(Data(llavaHF.utf8), file: "llava-hf/preprocessor_config.json")
        let b = try CLIPPreprocessorConfig.decode(Data(openAI.utf8), file: "openai/preprocessor_config.json")
        XCTAssertEqual(a, .openAI(resolution: 336))
        XCTAssertEqual(b, .openAI(resolution: 336))
        XCTAssertTrue(a.outputSize! == (336, 336))
        let exact = try CLIPPreprocessorConfig.decode(Data(#"{"size": {"height": 32, "width": 48}, "do_center_crop": false, "resample": 2}"#.utf8), file: "x.json")
        XCTAssertEqual(exact.size, .exact(width: 48, height: 32))
        XCTAssertEqual(exact.resample, .bilinear)
        XCTAssertTrue(exact.outputSize! == (48, 32))
        let image = RGBImage(width: 100, height: 10, filledWith: (255, 0, 0))
        XCTAssertEqual(CLIPPreprocessor(config: exact).pixelValues(image, padToSquare: false).count, 3 * 32 * 48)
        // Round trip through our own encoding.
        let encoded = try JSONEncoder().encode(a)
        XCTAssertEqual(try CLIPPreprocessorConfig.decode(encoded, file: "round-trip"), a)
    }

    func testConfigErrorsNameTheFileAndField() {
        func error(_ json: String) -> ForgeError? {
            do {
                _ = try CLIPPreprocessorConfig.decode(Data(json.utf8), file: "m/preprocessor_config.json")
                return nil
            } catch {
                return error as? ForgeError
            }
        }
        let cases: [(String, String)] = [
            (#"{"image_mean": [0.5, 0.5]}"#, "image_mean"),
            (#"{"image_std": [0.5, 0, 0.5]}"#, "image_std"),
            (#"{"size": {"longest_edge": 3}}"#, "size"),
            (#"{"crop_size": {"height": 3}}"#, "crop_size"),
            (#"{"crop_size": 0}"#, "crop_size"),
            (#"{"size": 100000}"#, "size"),
            (#"{"resample": 0}"#, "resample"),
            (#"{"do_resize": "yes"}"#, "do_resize"),
        ]
        for (json, field) in cases {
            let failure = error(json)
            XCTAssertNotNil(failure, json)
            XCTAssertEqual(failure?.file, "m/preprocessor_config.json", json)
            XCTAssertEqual(failure?.location, field, "\(json): \(String(describing: failure))")
        }
        XCTAssertEqual(error("{not json")?.file, "m/preprocessor_config.json")
    }

    /// Times the preprocessing of a 1024x768 photo to 336 (printed for the issue note) and checks
    /// the result against the step-by-step path.
    func testPreprocessing1024x768To336() throws {
        let photo = try ImageDecoder.decode(path: Fixtures.seedPath("seeds/images/raccoon.jpg"))
        let large = ImageTransforms.resize(photo, width: 1024, height: 768)
        let preprocessor = CLIPPreprocessor(config: .openAI(resolution: 336))
        func bestOf5<T>(_ body: () -> T) -> (T, Double) {
            var best = Double.infinity
            var result = body()
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                result = body()
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            return (result, best)
        }
        let (values, total) = bestOf5 { preprocessor.pixelValues(large, padToSquare: true) }
        let (_, unpadded) = bestOf5 { preprocessor.pixelValues(large, padToSquare: false) }
        let (square, padding) = bestOf5 { ImageTransforms.expandToSquare(large, background: (122, 116, 104)) }
        let (resized, resizing) = bestOf5 { ImageTransforms.resize(square, width: 336, height: 336) }
        let (_, normalizing) = bestOf5 { preprocessor.tensor(from: resized) }
        print(String(format: "CLIP preprocessing 1024x768 → 336: pad %.2f ms (expand %.2f + resize %.2f + normalize %.2f), "
                     + "no pad %.2f ms; best of 5, %d worker threads", total, padding, resizing, normalizing, unpadded,
                     Resampler.maximumThreads))
        let stepwise = ImageTransforms.centerCrop(
            ImageTransforms.resize(ImageTransforms.expandToSquare(large, background: (122, 116, 104)), width: 336, height: 336),
            width: 336, height: 336)
        XCTAssertEqual(values, preprocessor.tensor(from: stepwise))
        XCTAssertEqual(values.count, 3 * 336 * 336)
    }
}
