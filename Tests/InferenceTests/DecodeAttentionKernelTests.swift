import XCTest
import CInferenceKernels
@testable import Inference

/// The decode attention products (C, AVX2) against Float64 loops: head dims that are and are not
/// multiples of the 8-lane and 32-column paths, key counts around the 8-key blocks, strided rows.
final class DecodeAttentionKernelTests: XCTestCase {
    func testScoresAndWeightedValuesMatchFloat64() {
        for d in [8, 12, 16, 32, 40, 64, 72, 96] {
            for valid in [1, 7, 8, 9, 33] {
                let stride = 3 * d + 8  // rows of a [kvHeads·D] cache, this head somewhere inside
                let q = Support.randomFloats(d, seed: UInt64(d), scale: 2)
                let keys = Support.randomFloats(valid * stride, seed: UInt64(d * 100 + valid), scale: 1.5)
                let values = Support.randomFloats(valid * stride, seed: UInt64(d * 100 + valid + 7))
                let scale = 1 / Float(d).squareRoot()
                var scores = [Float](repeating: .nan, count: valid)
                lf_attention_scores(q, d, keys, stride, valid, scale, &scores)
                for j in 0..<valid {
                    var exact = 0.0, magnitude = 0.0
                    for e in 0..<d {
                        exact += Double(q[e]) * Double(keys[j * stride + e])
                        magnitude += abs(Double(q[e]) * Double(keys[j * stride + e]))
                    }
                    exact *= Double(scale)
                    XCTAssertEqual(Double(scores[j]), exact, accuracy: 1e-6 * magnitude + 1e-7, "scores d \(d) valid \(valid) key \(j)")
                }
                let probs = Support.randomFloats(valid, seed: 99).map { abs($0) }
                var out = [Float](repeating: .nan, count: d)
                lf_attention_values(probs, valid, values, stride, d, &out)
                for e in 0..<d {
                    var exact = 0.0, magnitude = 0.0
                    for j in 0..<valid {
                        exact += Double(probs[j]) * Double(values[j * stride + e])
                        magnitude += abs(Double(probs[j]) * Double(values[j * stride + e]))
                    }
                    XCTAssertEqual(Double(out[e]), exact, accuracy: 1e-6 * magnitude + 1e-7, "values d \(d) valid \(valid) column \(e)")
                }
            }
        }
    }
}
