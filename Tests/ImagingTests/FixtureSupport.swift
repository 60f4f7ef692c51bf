import ForgeCore
import Foundation
import Imaging
import XCTest

/// `Fixtures/manifest.json`, written by tools/reference/make_image_fixtures.py.
struct ImageManifest: Decodable {
    struct DecodeCase: Decodable {
        let file: String
        let expected: String
        let pilMode: String
        let width: Int
        let height: Int
        let sha256: String
        enum CodingKeys: String, CodingKey {
            case file, expected, width, height, sha256
            case pilMode = "pil_mode"
        }
    }

    struct Photo: Decodable {
        let file: String
        let width: Int
        let height: Int
        let sha256: String
    }

    struct ResizeSet: Decodable {
        struct Case: Decodable {
            let width: Int
            let height: Int
            let filter: String
            let expected: String
        }
        let source: String
        let sourceWidth: Int
        let sourceHeight: Int
        let cases: [Case]
        enum CodingKeys: String, CodingKey {
            case source, cases
            case sourceWidth = "source_width"
            case sourceHeight = "source_height"
        }
    }

    struct CLIPCase: Decodable {
        let file: String
        let resolution: Int
        let pad: Bool
        /// Pillow crop box (left, top, right, bottom) applied to the photo first, if any.
        let cropBox: [Int]?
        let resizedWidth: Int
        let resizedHeight: Int
        let resizedSHA256: String
        let preparedPNG: String
        let pixelValuesSHA256: String
        let sampleStride: Int
        let sampleValues: [Float]
        enum CodingKeys: String, CodingKey {
            case file, resolution, pad
            case cropBox = "crop_box"
            case resizedWidth = "resized_width"
            case resizedHeight = "resized_height"
            case resizedSHA256 = "resized_sha256"
            case preparedPNG = "prepared_png"
            case pixelValuesSHA256 = "pixel_values_sha256"
            case sampleStride = "sample_stride"
            case sampleValues = "sample_values"
        }
    }

    struct BadCase: Decodable {
        let file: String
        let pilAccepts: Bool
        let pilError: String?
        let sha256: String?
        enum CodingKeys: String, CodingKey {
            case file, sha256
            case pilAccepts = "pil_accepts"
            case pilError = "pil_error"
        }
    }

    let decode: [DecodeCase]
    let photos: [Photo]
    let resize: ResizeSet
    let clip: [CLIPCase]
    let bad: [BadCase]
}

extension ImageManifest.CLIPCase {
    /// The photo as the reference pipeline saw it (decoded, then cropped if the case says so).
    func sourceImage() throws -> RGBImage {
        let photo = try ImageDecoder.decode(path: Fixtures.seedPath(file))
        guard let box = cropBox else { return photo }
        return ImageTransforms.crop(photo, left: box[0], top: box[1], width: box[2] - box[0], height: box[3] - box[1])
    }
}

enum Fixtures {
    /// The copied `Fixtures` folder inside the test bundle.
    static let root: String = {
        guard let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            fatalError("ImagingTests: Fixtures resource folder missing from the bundle")
        }
        return url.path
    }()

    /// The repository root (seed photos are referenced in place, never copied into fixtures).
    static let repositoryRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }()

    static let manifest: ImageManifest = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: root + "/manifest.json"))
        return try! JSONDecoder().decode(ImageManifest.self, from: data)
    }()

    static func path(_ relative: String) -> String { root + "/" + relative }

    static func seedPath(_ relative: String) -> String { repositoryRoot + "/" + relative }

    static func bytes(_ relative: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(relative))))
    }

    /// Lower-case hex SHA-256 of `bytes` (ForgeCore's `SHA256.hex` hashes its argument).
    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hex(bytes) }

    static func sha256(_ floats: [Float]) -> String {
        let bytes = floats.withUnsafeBytes { [UInt8]($0) }  // little-endian float32, like numpy "<f4"
        return sha256(bytes)
    }
}

/// The first differing byte, for a readable failure instead of a 10 kB array dump.
func firstDifference(_ actual: [UInt8], _ expected: [UInt8], width: Int) -> String {
    guard actual.count == expected.count else { return "sizes differ: \(actual.count) vs \(expected.count) bytes" }
    var count = 0, maximum = 0, first = -1
    for i in 0..<actual.count where actual[i] != expected[i] {
        count += 1
        maximum = max(maximum, abs(Int(actual[i]) - Int(expected[i])))
        if first < 0 { first = i }
    }
    guard first >= 0 else { return "identical" }
    let pixel = first / 3
    return "\(count) bytes differ (max |Δ| \(maximum)); first at x=\(pixel % width) y=\(pixel / width) c=\(first % 3): "
        + "\(actual[first]) vs \(expected[first])"
}
