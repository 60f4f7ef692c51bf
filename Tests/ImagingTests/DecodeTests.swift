import ForgeCore
import Foundation
@testable import Imaging
import XCTest

/// Decoding equals Pillow's `np.asarray(Image.open(f).convert("RGB"))` byte for byte.
final class DecodeTests: XCTestCase {
    func testEverySyntheticFixtureDecodesLikePillow() throws {
        let cases = Fixtures.manifest.decode
        XCTAssertGreaterThanOrEqual(cases.count, 30, "fixture set looks incomplete")
        for item in cases {
            let bytes = try Fixtures.bytes(item.file)
            let (image, source) = try ImageDecoder.decodeDescribed(bytes: bytes, name: item.file)
            XCTAssertEqual(image.width, item.width, item.file)
            XCTAssertEqual(image.height, item.height, item.file)
            let expected = try Fixtures.bytes(item.expected)
            XCTAssertEqual(Fixtures.sha256(expected), item.sha256, "\(item.expected) does not match the manifest")
            XCTAssert(image.pixels == expected,
                      "\(item.file) (\(source), PIL mode \(item.pilMode)): \(firstDifference(image.pixels, expected, width: item.width))")
        }
    }

    func testSourceLayoutsAreTheOnesTheFixturesClaim() throws {
        // Guards against a fixture silently degrading into a simpler layout (e.g. YCCK → RGB).
        let expectations = [
            "decode/palette4_trns_interlaced.png": "PNG palette 4-bit tRNS interlaced",
            "decode/gray16_low.png": "PNG gray 16-bit",
            "decode/graya16.png": "PNG gray+alpha 16-bit",
            "decode/ycck_adobe.jpg": "JPEG YCCK (Adobe inverted)",
            "decode/cmyk_adobe.jpg": "JPEG CMYK (Adobe inverted)",
            "decode/rgb420_progressive.jpg": "JPEG YCbCr progressive",
            "decode/gray.jpg": "JPEG grayscale",
        ]
        for (file, description) in expectations {
            let (_, source) = try ImageDecoder.decodeDescribed(bytes: try Fixtures.bytes(file), name: file)
            XCTAssertEqual(source, description, file)
        }
    }

    func testRealPhotosDecodeLikePillow() throws {
        let photos = Fixtures.manifest.photos
        XCTAssertGreaterThanOrEqual(photos.count, 10)
        for photo in photos {
            let image = try ImageDecoder.decode(path: Fixtures.seedPath(photo.file))
            XCTAssertEqual(image.width, photo.width, photo.file)
            XCTAssertEqual(image.height, photo.height, photo.file)
            XCTAssertEqual(Fixtures.sha256(image.pixels), photo.sha256, "\(photo.file): decoded RGB differs from Pillow's")
        }
    }

    func testPathBytesDataAndDataURLAgree() throws {
        let file = Fixtures.manifest.photos[0].file
        let path = Fixtures.seedPath(file)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let fromPath = try ImageDecoder.decode(path: path)
        XCTAssertEqual(try ImageDecoder.decode(bytes: [UInt8](data), name: file), fromPath)
        XCTAssertEqual(try ImageDecoder.decode(data: data, name: file), fromPath)
        // The declared media type is ignored: the bytes are sniffed.
        let url = "data:image/png;base64," + data.base64EncodedString()
        XCTAssertEqual(try ImageDecoder.decode(dataURL: url, name: "request.messages[0]"), fromPath)
    }

    func testFormatIsSniffedFromMagicBytesNotTheExtension() throws {
        let png = try Fixtures.bytes("decode/rgb8.png")
        let jpeg = try Fixtures.bytes("decode/rgb444.jpg")
        XCTAssertEqual(ImageFormat.sniff(png), .png)
        XCTAssertEqual(ImageFormat.sniff(jpeg), .jpeg)
        XCTAssertNil(ImageFormat.sniff(Array("GIF89a".utf8)))
        let expectedPNG = try ImageDecoder.decode(bytes: png, name: "rgb8.png")
        XCTAssertEqual(try ImageDecoder.decode(bytes: png, name: "misnamed.jpg"), expectedPNG)
        let expectedJPEG = try ImageDecoder.decode(bytes: jpeg, name: "rgb444.jpg")
        XCTAssertEqual(try ImageDecoder.decode(bytes: jpeg, name: "misnamed.png"), expectedJPEG)
    }

    /// Every bad input: Pillow's verdict is recorded in the manifest; where Pillow refuses we must
    /// refuse with a ForgeError naming the file, where Pillow accepts (a missing EOI or IEND) we must
    /// produce the same pixels.
    func testBadInputsFailWithTheFileNameOrMatchPillow() throws {
        let cases = Fixtures.manifest.bad
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        var refused = 0
        for item in cases {
            let path = Fixtures.path(item.file)
            do {
                let image = try ImageDecoder.decode(path: path)
                XCTAssertTrue(item.pilAccepts, "\(item.file): decoded \(image.width)x\(image.height) but Pillow refuses it (\(item.pilError ?? ""))")
                if let sha = item.sha256 { XCTAssertEqual(Fixtures.sha256(image.pixels), sha, item.file) }
            } catch let error as ForgeError {
                refused += 1
                XCTAssertEqual(error.file, path, "\(item.file): error does not name the file: \(error)")
                XCTAssertTrue(error.description.contains(path), "\(error)")
                if item.pilAccepts && !item.file.contains("huge") {
                    XCTFail("\(item.file): Pillow accepts this file but we refuse it: \(error)")
                }
            } catch {
                XCTFail("\(item.file): not a ForgeError: \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(refused, 12)
    }

    func testErrorMessagesSayWhatIsWrong() throws {
        func message(_ file: String) -> String {
            do {
                _ = try ImageDecoder.decode(path: Fixtures.path(file))
                return "decoded"
            } catch {
                return "\(error)"
            }
        }
        XCTAssertTrue(message("bad/zero_bytes.png").contains("empty (0 bytes)"))
        XCTAssertTrue(message("bad/gif_named.png").contains("not a JPEG or PNG file (starts with 47 49 46 38"))
        XCTAssertTrue(message("bad/png_huge_side.png").contains("20000x100, over the limit of 16384 pixels per side"))
        XCTAssertTrue(message("bad/png_huge_pixels.png").contains("108000000 pixels, over the limit of 100000000"))
        XCTAssertTrue(message("bad/jpeg_huge_side.jpg").contains("20000x20000, over the limit"))
        XCTAssertTrue(message("bad/jpeg_huge_pixels.jpg").contains("108000000 pixels"))
        XCTAssertTrue(message("bad/jpeg_truncated_half.jpg").contains("truncated"))
        XCTAssertTrue(message("bad/jpeg_progressive_truncated.jpg").contains("truncated"))
        XCTAssertTrue(message("bad/png_truncated_half.png").contains("truncated"))
        XCTAssertTrue(message("bad/png_bad_ihdr_crc.png").contains("bad CRC in PNG chunk IHDR at byte 8"), message("bad/png_bad_ihdr_crc.png"))
        XCTAssertEqual(message("bad/png_bad_idat_crc.png"), "decoded")  // as in Pillow
        let missing = Fixtures.path("bad/does_not_exist.png")
        XCTAssertThrowsError(try ImageDecoder.decode(path: missing)) { error in
            XCTAssertEqual((error as? ForgeError)?.kind, .io)
            XCTAssertEqual((error as? ForgeError)?.file, missing)
        }
        XCTAssertThrowsError(try ImageDecoder.decode(dataURL: "data:image/png,abc", name: "part 2")) { error in
            XCTAssertEqual((error as? ForgeError)?.file, "part 2")
        }
    }

    func testLimitsAreConfigurable() throws {
        let bytes = try Fixtures.bytes("decode/rgb8.png")  // 29x19
        XCTAssertNoThrow(try ImageDecoder.decode(bytes: bytes, name: "a.png", limits: ImageLimits(maxSide: 29, maxPixels: 551)))
        XCTAssertThrowsError(try ImageDecoder.decode(bytes: bytes, name: "a.png", limits: ImageLimits(maxSide: 28, maxPixels: 10_000)))
        XCTAssertThrowsError(try ImageDecoder.decode(bytes: bytes, name: "a.png", limits: ImageLimits(maxSide: 100, maxPixels: 550)))
    }

    /// Every prefix of a PNG and a JPEG: an error or (for prefixes Pillow would accept) an image —
    /// never a crash, hang or out-of-bounds read. Also single-byte corruptions across the header.
    func testTruncationAndCorruptionNeverCrash() throws {
        for file in ["decode/palette4_trns_interlaced.png", "decode/rgb420_progressive.jpg", "decode/ycck_adobe.jpg"] {
            let bytes = try Fixtures.bytes(file)
            var failures = 0
            for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 150)) {
                do {
                    _ = try ImageDecoder.decode(bytes: Array(bytes[..<length]), name: file)
                } catch let error as ForgeError {
                    failures += 1
                    XCTAssertEqual(error.file, file)
                }
            }
            XCTAssertGreaterThan(failures, 100, "\(file): most prefixes must be refused")
            for offset in 0..<min(bytes.count, 400) {
                var corrupted = bytes
                corrupted[offset] ^= 0x5A
                do { _ = try ImageDecoder.decode(bytes: corrupted, name: file) } catch let error as ForgeError {
                    XCTAssertEqual(error.file, file)
                }
            }
        }
    }
}
