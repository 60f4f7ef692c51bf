import ForgeCore
import Foundation
import TrainingData
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class FeatureCacheTests: XCTestCase {
    final class Counter { var value = 0 }

    func fakeTower(_ calls: Counter) -> (Data) throws -> [Float] {
        { bytes in
            calls.value += 1
            let seed = bytes.reduce(0) { $0 &+ Int($1) }
            return (0..<(4 * 6)).map { Float(seed % 97) + Float($0) * 0.25 }
        }
    }

    func testSecondEpochAndSecondRunDoNotCallTheTowerAndGiveIdenticalFeatures() throws {
        let dir = TestPaths.temporaryFolder("cache")
        TestPaths.write("image one", to: dir + "/a.jpg")
        TestPaths.write("image two", to: dir + "/b.jpg")
        let calls = Counter()
        let first = try FeatureCache(directory: dir + "/cache", towerIdentity: "tower-1", rows: 4, width: 6)
        let a1 = try first.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls))
        let b1 = try first.features(imagePath: dir + "/b.jpg", compute: fakeTower(calls))
        XCTAssertEqual(calls.value, 2)
        // Epoch 2 of the same run.
        XCTAssertEqual(try first.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls)), a1)
        XCTAssertEqual(calls.value, 2)
        XCTAssertEqual(first.towerCalls, 2)
        // A new run: from disk, no tower call, bit-identical.
        let second = try FeatureCache(directory: dir + "/cache", towerIdentity: "tower-1", rows: 4, width: 6)
        XCTAssertEqual(try second.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls)).map(\.bitPattern), a1.map(\.bitPattern))
        XCTAssertEqual(try second.features(imagePath: dir + "/b.jpg", compute: fakeTower(calls)), b1)
        XCTAssertEqual(calls.value, 2)
        XCTAssertEqual(second.towerCalls, 0)
        XCTAssertEqual(second.diskHits, 2)
        // Same bytes under another file name share the entry; another tower identity does not.
        TestPaths.write("image one", to: dir + "/copy.jpg")
        _ = try second.features(imagePath: dir + "/copy.jpg", compute: fakeTower(calls))
        XCTAssertEqual(calls.value, 2)
        let otherTower = try FeatureCache(directory: dir + "/cache", towerIdentity: "tower-2", rows: 4, width: 6)
        _ = try otherTower.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls))
        XCTAssertEqual(calls.value, 3)
    }

    func testDamagedCacheFilesAreRecomputedNotTrusted() throws {
        let dir = TestPaths.temporaryFolder("cache-bad")
        TestPaths.write("image one", to: dir + "/a.jpg")
        let calls = Counter()
        let cache = try FeatureCache(directory: dir + "/cache", towerIdentity: "t", rows: 4, width: 6)
        let good = try cache.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls))
        let file = cache.path(forKey: cache.key(imageBytes: Data("image one".utf8)))
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        for damage in [bytes.prefix(bytes.count - 7), { var d = bytes; d[60] ^= 0x40; return d }(), Data("LFFEAT01".utf8)] {
            try damage.write(to: URL(fileURLWithPath: file))
            let fresh = try FeatureCache(directory: dir + "/cache", towerIdentity: "t", rows: 4, width: 6)
            let before = calls.value
            XCTAssertEqual(try fresh.features(imagePath: dir + "/a.jpg", compute: fakeTower(calls)), good)
            XCTAssertEqual(calls.value, before + 1, "a damaged file is recomputed")
            XCTAssertEqual(fresh.rejectedFiles, 1)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), bytes, "and rewritten whole")
        }
        // A cache of another shape rejects the file too.
        let reshaped = try FeatureCache(directory: dir + "/cache", towerIdentity: "t", rows: 6, width: 4)
        let before = calls.value
        _ = try reshaped.features(imagePath: dir + "/a.jpg", compute: { _ in calls.value += 1; return [Float](repeating: 1, count: 24) })
        XCTAssertEqual(calls.value, before + 1)
    }
}

final class MetricsTests: XCTestCase {
    final class SVGCollector: NSObject, XMLParserDelegate {
        var elements: [String: [[String: String]]] = [:]
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            elements[name, default: []].append(attributes)
        }
    }

    let rows: [MetricsRow] = (1...12).map { (s: Int) -> MetricsRow in
        let step = Double(s)
        let rate: Double = s < 3 ? 1e-3 * step / 3 : 1e-3 * (1 - step / 13)
        let eval: Double? = s % 4 == 0 ? 4.0 / step : nil
        return MetricsRow(step: s, epoch: s <= 6 ? 1 : 2, loss: 5.0 / step + 0.1, learningRate: rate, gradNorm: 0.5,
                          tokens: 400 + s, tokensPerSecond: 1234.5, evalLoss: eval)
    }

    func testCSVHasTheColumnsAndRoundTripsExactly() throws {
        let text = TrainingMetrics.csv(rows)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.first, "step,epoch,loss,lr,grad_norm,tokens,tokens_per_s,eval_loss")
        XCTAssertEqual(lines.count, 13)
        XCTAssertEqual(lines[4].split(separator: ",", omittingEmptySubsequences: false).count, 8)
        XCTAssertEqual(try TrainingMetrics.parse(csv: text, file: "m.csv").map { $0.loss }, rows.map { $0.loss })
        XCTAssertEqual(try TrainingMetrics.parse(csv: text, file: "m.csv").map { $0.evalLoss }, rows.map { $0.evalLoss })
        XCTAssertThrowsError(try TrainingMetrics.parse(csv: text + "1,2,x\n", file: "m.csv"))
    }

    func testSVGIsWellFormedWithAxesTicksAndBothSeries() throws {
        let svg = TrainingMetrics.svg(rows)
        let collector = SVGCollector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse(), "well-formed XML: \(String(describing: parser.parserError))")
        let lines = collector.elements["polyline"] ?? []
        XCTAssertEqual(Set(lines.compactMap { $0["id"] }), ["loss", "lr"])
        for line in lines { XCTAssertEqual(line["points"]?.split(separator: " ").count, 12) }
        XCTAssertEqual((collector.elements["circle"] ?? []).filter { $0["class"] == "eval" }.count, 3)
        XCTAssertGreaterThan((collector.elements["line"] ?? []).count, 10, "axes and ticks")
        let texts = svg.components(separatedBy: "<text").count - 1
        XCTAssertGreaterThan(texts, 12, "tick labels and titles")
        // The loss polyline falls (y grows downwards) as the loss does.
        let points = lines.first { $0["id"] == "loss" }!["points"]!.split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
        XCTAssertLessThan(points.first![1], points.last![1])
        XCTAssertTrue(TrainingMetrics.svg([]).hasSuffix("</svg>\n"))
        // A two-step run still labels both steps on the x axis.
        let two = TrainingMetrics.svg(Array(rows.prefix(2)))
        for step in ["1", "2"] { XCTAssertTrue(two.contains("text-anchor=\"middle\">\(step)</text>"), two) }
    }
}
