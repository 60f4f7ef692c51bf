import Foundation
@testable import Generation
import XCTest

/// Cost estimates, the price table file, and the progress line.
final class AccountingTests: XCTestCase {
    func testPriceTableMatchesAndLoads() throws {
        let table = PriceTable.examples
        XCTAssertEqual(table.cost(model: "gpt-4o-mini", promptTokens: 1_000_000, completionTokens: 1_000_000)!, 0.75, accuracy: 1e-12)
        XCTAssertEqual(table.price(for: "gpt-4o-2024-08-06"), table.prices["gpt-4o"], "longest prefix")
        XCTAssertEqual(table.price(for: "gpt-4o-mini-2024-07-18"), table.prices["gpt-4o-mini"])
        XCTAssertNil(table.cost(model: "llama-3-8b", promptTokens: 10, completionTokens: 10))
        let path = NSTemporaryDirectory() + "prices-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "llama-3-8b: {input: 0.05, output: 0.1}\ngpt-4o: {input: 2, output: 8}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try PriceTable.load(path: path)
        XCTAssertEqual(loaded.cost(model: "llama-3-8b", promptTokens: 2_000_000, completionTokens: 1_000_000)!, 0.2, accuracy: 1e-12)
        XCTAssertEqual(loaded.prices["gpt-4o"]?.outputPerMillion, 8)
        XCTAssertNotNil(loaded.prices["gpt-4o-mini"], "examples kept unless replaced")
        try "gpt-4o: {input: cheap}\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PriceTable.load(path: path)) { XCTAssertTrue("\($0)".contains("gpt-4o") && "\($0)".contains(path)) }
    }

    func testProgressLineHasRatesErrorsETAAndCost() {
        let reporter = ProgressReporter(total: 100, interval: 5, style: .lines, prices: .examples, model: "gpt-4o-mini", sink: nil)
        var s = GenerateSummary(type: "detail", runID: 1)
        s.succeeded = 40
        s.failed = 10
        s.samplesOK = 38
        s.truncated = 2
        s.completionTokens = 5000
        s.promptTokens = 1_000_000
        s.errorsByClass = ["http_400": 4, "timeout": 6]
        let line = reporter.line(s, now: Date().addingTimeInterval(10))
        XCTAssertTrue(line.hasPrefix("detail: 50/100 done, 5.0 req/s, 500 out tok/s"), line)
        XCTAssertTrue(line.contains("errors http_400=4,timeout=6"), line)
        XCTAssertTrue(line.contains("ETA 10s"), line)
        XCTAssertTrue(line.contains("~$0.15"), line)
        XCTAssertEqual(ProgressReporter.duration(3725), "1h02m")
        XCTAssertEqual(ProgressReporter.duration(75), "1m15s")
    }
}
