import XCTest
import CInferenceKernels
import TensorMath
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

    /// Prefill attention on the AVX-512 block kernels (head dims that are multiples of 16) equals
    /// the sgemm path and a Float64 loop: fresh prompts and continuations after a cached prefix,
    /// lengths around the 64-query blocks, GQA groups of 1 and 3.
    func testPrefillBlockKernelsMatchTheSGEMMPathAndFloat64() {
        defer { Attention.blockKernelsEnabled = true }
        for (heads, kvHeads, d, t, offset) in [(6, 2, 64, 70, 0), (6, 2, 64, 9, 37), (3, 3, 32, 130, 5), (2, 1, 16, 64, 0)] {
            let context = offset + t, qWidth = heads * d, kvWidth = kvHeads * d
            let q = Support.randomFloats(t * qWidth, seed: UInt64(t * 7 + d), scale: 2)
            let keys = Support.randomFloats(context * kvWidth, seed: UInt64(context + d))
            let values = Support.randomFloats(context * kvWidth, seed: UInt64(context * 3 + d))
            var results: [[Float]] = []
            for blockKernels in [true, false] {
                Attention.blockKernelsEnabled = blockKernels
                var out = [Float](repeating: .nan, count: t * qWidth)
                var scores = [Float](repeating: .nan, count: SequenceAttention.scratchCount(tokens: t, context: context, heads: heads,
                                                                                             kvHeads: kvHeads, headDim: d))
                SequenceAttention.forward(out: &out, scores: &scores, q: q, keys: keys, values: values,
                                          tokens: t, offset: offset, heads: heads, kvHeads: kvHeads, headDim: d)
                results.append(out)
            }
            let label = "heads \(heads)/\(kvHeads) d \(d) t \(t) offset \(offset)"
            Attention.blockKernelsEnabled = true
            if CPUFeatures.current().hasAVX512 { XCTAssertTrue(Attention.usesBlockKernels(headDim: d), "block path taken, \(label)") }
            XCTAssertLessThanOrEqual(Support.maxAbsDifference(results[0], results[1]), 1e-5, "block kernels vs sgemm, \(label)")
            let scale = 1 / Double(d).squareRoot(), group = heads / kvHeads
            var worst = 0.0
            for i in 0..<t {
                for h in 0..<heads {
                    let g = h / group, visible = offset + i + 1
                    var s = (0..<visible).map { j in
                        (0..<d).reduce(0.0) { $0 + Double(q[i * qWidth + h * d + $1]) * Double(keys[j * kvWidth + g * d + $1]) } * scale
                    }
                    let top = s.max()!
                    s = s.map { exp($0 - top) }
                    let total = s.reduce(0, +)
                    for e in 0..<d {
                        let exact = (0..<visible).reduce(0.0) { $0 + s[$1] / total * Double(values[$1 * kvWidth + g * d + e]) }
                        worst = max(worst, abs(exact - Double(results[0][i * qWidth + h * d + e])))
                    }
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-5, "block kernels vs Float64, \(label)")
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
