import Foundation
@testable import Imaging
import XCTest

/// Resizing equals Pillow's `Image.resize(size, filter)` byte for byte.
final class ResizeTests: XCTestCase {
    static let filters: [String: ResampleFilter] = [
        "bicubic": .bicubic, "bilinear": .bilinear, "lanczos": .lanczos, "box": .box, "hamming": .hamming,
    ]

    func testSyntheticResizesEqualPillow() throws {
        let set = Fixtures.manifest.resize
        let source = RGBImage(width: set.sourceWidth, height: set.sourceHeight, pixels: try Fixtures.bytes(set.source))
        XCTAssertGreaterThanOrEqual(set.cases.count, 10)
        for item in set.cases {
            let filter = try XCTUnwrap(Self.filters[item.filter])
            let result = ImageTransforms.resize(source, width: item.width, height: item.height, filter: filter)
            let expected = try Fixtures.bytes(item.expected)
            XCTAssertEqual(result.width, item.width)
            XCTAssertEqual(result.height, item.height)
            XCTAssert(result.pixels == expected,
                      "\(item.width)x\(item.height) \(item.filter): \(firstDifference(result.pixels, expected, width: item.width))")
        }
    }

    /// Pillow 13's vertical-first rule is what makes the fixtures pass: the legacy order reproduces
    /// every horizontal-first case and misses some vertical-first ones (so the rule is exercised).
    func testPassOrderRuleIsExercised() throws {
        let set = Fixtures.manifest.resize
        let source = RGBImage(width: set.sourceWidth, height: set.sourceHeight, pixels: try Fixtures.bytes(set.source))
        var verticalFirstCases = 0, legacyMisses = 0
        for item in set.cases {
            let filter = try XCTUnwrap(Self.filters[item.filter])
            let legacy = ImageTransforms.resize(source, width: item.width, height: item.height, filter: filter, order: .horizontalFirst)
            let expected = try Fixtures.bytes(item.expected)
            if ResamplePassOrder.pillow13.verticalFirst(inputWidth: source.width, inputHeight: source.height,
                                                        outputWidth: item.width, outputHeight: item.height) {
                verticalFirstCases += 1
                if legacy.pixels != expected { legacyMisses += 1 }
            } else {
                XCTAssert(legacy.pixels == expected, "\(item.width)x\(item.height): orders should agree")
            }
        }
        XCTAssertGreaterThanOrEqual(verticalFirstCases, 4)
        XCTAssertGreaterThanOrEqual(legacyMisses, 2)
        XCTAssertTrue(Fixtures.manifest.clip.contains { item in
            item.cropBox != nil && ResamplePassOrder.pillow13.verticalFirst(
                inputWidth: item.cropBox![2] - item.cropBox![0], inputHeight: item.cropBox![3] - item.cropBox![1],
                outputWidth: item.resizedWidth, outputHeight: item.resizedHeight)
        }, "a real-photo case must take the vertical-first path")
    }

    func testPhotoShortestEdgeResizesEqualPillow() throws {
        for item in Fixtures.manifest.clip {
            var image = try item.sourceImage()
            if item.pad { image = ImageTransforms.expandToSquare(image, background: (122, 116, 104)) }
            let size = ImageTransforms.shortestEdgeSize(width: image.width, height: image.height, shortestEdge: item.resolution)
            XCTAssertEqual(size.width, item.resizedWidth, item.file)
            XCTAssertEqual(size.height, item.resizedHeight, item.file)
            let resized = ImageTransforms.resize(image, width: size.width, height: size.height)
            XCTAssertEqual(Fixtures.sha256(resized.pixels), item.resizedSHA256,
                           "\(item.file) → \(size.width)x\(size.height) pad=\(item.pad): resized bytes differ from Pillow")
        }
    }

    func testUnchangedSizeIsACopyAndSingleAxisResizesTouchOneAxis() throws {
        let set = Fixtures.manifest.resize
        let source = RGBImage(width: set.sourceWidth, height: set.sourceHeight, pixels: try Fixtures.bytes(set.source))
        XCTAssertEqual(ImageTransforms.resize(source, width: source.width, height: source.height), source)
        // A vertical-only resize of a vertically constant image keeps every column's colour.
        let column = RGBImage(width: 5, height: 40, pixels: (0..<40).flatMap { _ in (0..<15).map { UInt8($0 * 17) } })
        let shorter = ImageTransforms.resize(column, width: 5, height: 9)
        for y in 0..<9 { for x in 0..<5 { XCTAssertTrue(shorter[x, y] == column[x, 0]) } }
    }

    func testCoefficientsAreNormalizedAndWindowsStayInBounds() {
        for filter in ResampleFilter.allCases {
            for (input, output) in [(640, 224), (300, 336), (7, 1), (1, 9), (1000, 3)] {
                let axis = ResampleAxis(inputSize: input, outputSize: output, filter: filter)
                for o in 0..<output {
                    let start = Int(axis.start[o]), count = Int(axis.count[o])
                    XCTAssertGreaterThanOrEqual(start, 0)
                    XCTAssertLessThanOrEqual(start + count, input)
                    XCTAssertLessThanOrEqual(count, axis.taps)
                    let sum = (0..<count).reduce(0) { $0 + Int(axis.weights[o * axis.taps + $1]) }
                    // Each weight rounds by at most 1/2 unit in 2^22.
                    XCTAssertLessThanOrEqual(abs(sum - (1 << 22)), count, "\(filter) \(input)→\(output) at \(o)")
                }
            }
        }
    }

    func testParallelAndSerialPassesAgree() throws {
        // Large enough to take the two-worker path.
        let photo = try ImageDecoder.decode(path: Fixtures.seedPath("seeds/images/raccoon.jpg"))
        let parallel = ImageTransforms.resize(photo, width: 1024, height: 768)
        let axisX = ResampleAxis(inputSize: photo.width, outputSize: 1024, filter: .bicubic)
        let axisY = ResampleAxis(inputSize: photo.height, outputSize: 768, filter: .bicubic)
        let rows = Int(axisY.start[0])..<Int(axisY.start[767] + axisY.count[767])
        XCTAssertEqual(rows.count * 1024 * axisX.taps >= 200_000, true)
        var serial = Resampler.horizontalPass(photo, rows: rows, axis: axisX, workers: 1)
        serial = Resampler.verticalPass(serial, axis: axisY, start: axisY.start.map { $0 - Int32(rows.lowerBound) }, workers: 1)
        XCTAssertEqual(parallel, serial)
    }
}
