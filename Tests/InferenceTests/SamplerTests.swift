import XCTest
@testable import Inference

final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.0, 2.9]

    func draws(_ options: SamplingOptions, _ count: Int = 4000) -> [Int: Int] {
        var sampler = Sampler(options)
        var histogram: [Int: Int] = [:]
        for _ in 0..<count { histogram[sampler.next(logits: logits), default: 0] += 1 }
        return histogram
    }

    func testGreedyIsArgmaxFirstOnTies() {
        var sampler = Sampler(.greedy)
        XCTAssertEqual(sampler.next(logits: logits), 1)
        XCTAssertEqual(sampler.next(logits: [0, 5, 5, 1]), 1)
    }

    func testSeededSamplingIsReproducibleAndSeedsDiffer() {
        var a = Sampler(SamplingOptions(temperature: 1, seed: 42)), b = Sampler(SamplingOptions(temperature: 1, seed: 42))
        var c = Sampler(SamplingOptions(temperature: 1, seed: 43))
        let sa = (0..<64).map { _ in a.next(logits: logits) }
        XCTAssertEqual(sa, (0..<64).map { _ in b.next(logits: logits) })
        XCTAssertNotEqual(sa, (0..<64).map { _ in c.next(logits: logits) })
    }

    func testTemperatureOneMatchesSoftmax() {
        let histogram = draws(SamplingOptions(temperature: 1, seed: 1), 20000)
        let exps = logits.map { exp(Double($0)) }, total = exps.reduce(0, +)
        for (i, e) in exps.enumerated() {
            let expected = e / total, observed = Double(histogram[i, default: 0]) / 20000
            XCTAssertEqual(observed, expected, accuracy: 0.015, "token \(i)")
        }
    }

    func testTopKKeepsOnlyKMostLikely() {
        XCTAssertEqual(Set(draws(SamplingOptions(temperature: 1, topK: 2, seed: 3)).keys), [1, 5])
    }

    func testTopPKeepsTheNucleus() {
        // p(1)=0.370, p(5)=0.335, p(2)=0.224: top_p 0.6 needs {1, 5}; 0.8 adds 2.
        XCTAssertEqual(Set(draws(SamplingOptions(temperature: 1, topP: 0.6, seed: 4)).keys), [1, 5])
        XCTAssertEqual(Set(draws(SamplingOptions(temperature: 1, topP: 0.8, seed: 4)).keys), [1, 5, 2])
    }

    func testMinPDropsTheTail() {
        // p/p_max: token 2 = e^-0.5 = 0.61, token 0 = e^-2 = 0.135.
        XCTAssertEqual(Set(draws(SamplingOptions(temperature: 1, minP: 0.5, seed: 5)).keys), [1, 5, 2])
    }

    func testRepetitionPenaltyChangesTheArgmax() {
        var sampler = Sampler(SamplingOptions(repetitionPenalty: 1.5))
        XCTAssertEqual(sampler.next(logits: logits, history: [1]), 5)  // 3.0 / 1.5 = 2.0 < 2.9
    }

    func testLowTemperatureIsAlmostGreedy() {
        XCTAssertEqual(draws(SamplingOptions(temperature: 0.01, seed: 6), 200)[1], 200)
    }

    func testInvalidOptionsAreRejected() {
        XCTAssertThrowsError(try SamplingOptions(temperature: -1).validate())
        XCTAssertThrowsError(try SamplingOptions(topP: 0).validate())
        XCTAssertThrowsError(try SamplingOptions(topK: -2).validate())
        XCTAssertNoThrow(try SamplingOptions(temperature: 0.7, topK: 40, topP: 0.9, seed: 1).validate())
    }

    /// The vectorized softmax against a Float64 reference: lengths around the 16-lane blocks,
    /// masked (−∞) logits exactly 0, temperatures below and above 1.
    func testSoftmaxMatchesFloat64AndMasksExactly() {
        for count in [1, 15, 16, 17, 100, 49_157] {
            var logits = (0..<count).map { Float(($0 * 7919) % 1000) / 37 - 13 }
            for i in stride(from: 3, to: count, by: 5) { logits[i] = -.infinity }
            for temperature: Float in [0.3, 1, 1.7] {
                let probs = logits.withUnsafeBufferPointer { Sampler.softmax($0, temperature: temperature) }
                let top = Double(logits.max()!)
                let exps = logits.map { $0 == -.infinity ? 0 : Foundation.exp((Double($0) - top) / Double(temperature)) }
                let total = exps.reduce(0, +)
                for i in 0..<count {
                    if logits[i] == -.infinity { XCTAssertEqual(probs[i], 0, "masked \(i)"); continue }
                    XCTAssertEqual(Double(probs[i]), exps[i] / total, accuracy: 1e-6 * exps[i] / total + 1e-12, "count \(count) T \(temperature) id \(i)")
                }
            }
        }
    }
}
