import XCTest
import CInferenceKernels
@testable import Inference

/// The decode attention products (C: AVX-512 for head dims that are multiples of 16, AVX2 per head
/// otherwise) against Float64 loops: head dims that are and are not multiples of the 8-, 16- and
/// 32-column paths, key counts around the 8-key blocks, strided rows, GQA groups of 1–5 query heads
/// sharing the rows (more than one 4-head pass), score rows apart in a larger scratch.
final class DecodeAttentionKernelTests: XCTestCase {
    func testScoresAndWeightedValuesMatchFloat64() {
        for heads in [1, 3, 5] {
            for d in [8, 12, 16, 32, 40, 48, 64, 72, 96] {
                for valid in [1, 7, 8, 9, 33] {
                    check(heads: heads, d: d, valid: valid)
                }
            }
        }
    }

    private func check(heads: Int, d: Int, valid: Int) {
        let stride = 3 * d + 8  // rows of a [kvHeads·D] cache, this head somewhere inside
        let scoreStride = valid + 5
        let q = Support.randomFloats(heads * d, seed: UInt64(d + heads), scale: 2)
        let keys = Support.randomFloats(valid * stride, seed: UInt64(d * 100 + valid), scale: 1.5)
        let values = Support.randomFloats(valid * stride, seed: UInt64(d * 100 + valid + 7))
        let scale = 1 / Float(d).squareRoot()
        let label = "heads \(heads) d \(d) valid \(valid)"
        var scores = [Float](repeating: .nan, count: heads * scoreStride)
        lf_attention_scores(q, heads, d, keys, stride, valid, scale, &scores, scoreStride)
        for h in 0..<heads {
            for j in 0..<valid {
                let (exact, magnitude) = dot(d) { Double(q[h * d + $0]) * Double(keys[j * stride + $0]) }
                XCTAssertEqual(Double(scores[h * scoreStride + j]), exact * Double(scale), accuracy: 1e-6 * magnitude + 1e-7,
                               "scores \(label) head \(h) key \(j)")
            }
            for j in valid..<scoreStride { XCTAssertTrue(scores[h * scoreStride + j].isNaN, "scores \(label): wrote past the row") }
        }
        let probs = Support.randomFloats(heads * scoreStride, seed: 99).map { abs($0) }
        var out = [Float](repeating: .nan, count: heads * d)
        lf_attention_values(probs, scoreStride, heads, valid, values, stride, d, &out)
        for h in 0..<heads {
            for e in 0..<d {
                let (exact, magnitude) = dot(valid) { Double(probs[h * scoreStride + $0]) * Double(values[$0 * stride + e]) }
                XCTAssertEqual(Double(out[h * d + e]), exact, accuracy: 1e-6 * magnitude + 1e-7, "values \(label) head \(h) column \(e)")
            }
        }
    }

    /// Σ term(i) and Σ |term(i)| over i < count, in Float64.
    private func dot(_ count: Int, _ term: (Int) -> Double) -> (sum: Double, magnitude: Double) {
        var sum = 0.0, magnitude = 0.0
        for i in 0..<count {
            let p = term(i)
            sum += p
            magnitude += abs(p)
        }
        return (sum, magnitude)
    }
}
