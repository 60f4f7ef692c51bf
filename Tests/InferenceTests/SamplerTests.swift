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

    /// The candidate order equals sorting by (probability descending, id ascending), ties included.
    func testDescendingOrderMatchesAComparatorSort() {
        let probs: [Float] = (0..<5000).map { Float(($0 * 7919) % 997) / 997 * 0.01 } + [0, 0.5, 0.5, 1e-30]
        for threshold: Float in [0, 1e-30, 0.003, 0.5] {
            let expected = probs.indices.filter { probs[$0] >= threshold && probs[$0] > 0 }
                .sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            XCTAssertEqual(Sampler.descending(probs, atLeast: threshold), expected, "threshold \(threshold)")
        }
    }

    /// The bucketed top-p set equals "sort descending (ties by id), keep through the element that
    /// reaches the mass" on peaked, flat and tied distributions.
    func testNucleusEqualsTheSortedPrefix() {
        func reference(_ probs: [Float], _ target: Float) -> Set<Int> {
            let order = probs.indices.filter { probs[$0] > 0 }.sorted { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
            var kept: Set<Int> = [], total = 0.0
            for id in order { kept.insert(id); total += Double(probs[id]); if total >= Double(target) { break } }
            return kept
        }
        func normalized(_ v: [Float]) -> [Float] { let s = v.reduce(0, +); return v.map { $0 / s } }
        let peaked = normalized((0..<49_152).map { Float(Foundation.exp(-Double($0 % 977) / 20)) })
        let flat = normalized((0..<49_152).map { 1 + Float(($0 * 7919) % 1000) / 1e4 })
        let tied = normalized([4, 4, 4, 2, 2, 1, 0, 1, 1, 4])
        for probs in [peaked, flat, tied] {
            for target: Float in [0.1, 0.5, 0.9, 0.95, 0.999] {
                XCTAssertEqual(Set(Sampler.nucleus(probs, mass: target)), reference(probs, target), "\(probs.count) ids, top-p \(target)")
            }
        }
    }
}
