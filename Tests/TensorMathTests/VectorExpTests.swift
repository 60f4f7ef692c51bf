import Foundation
@testable import TensorMath
import XCTest

/// The 16-lane exp behind softmax, SiLU/SwiGLU, quick GELU and cross-entropy.
final class VectorExpTests: XCTestCase {
    func testWithinOneULPOfTheCorrectlyRoundedResult() {
        var worst: Float = 0, worstAt: Float = 0
        let count = 160_000
        var lanes = VectorExp.Vector()
        for block in 0..<(count / 16) {
            for j in 0..<16 { lanes[j] = -87.3 + Float(block * 16 + j) / Float(count) * (88.3 + 87.3) }
            let e = VectorExp.exp(lanes)
            for j in 0..<16 {
                let exact = Float(Foundation.exp(Double(lanes[j])))
                let ulps = abs(e[j] - exact) / exact.ulp
                if ulps > worst { worst = ulps; worstAt = lanes[j] }
            }
        }
        XCTAssertLessThanOrEqual(worst, 1, "worst \(worst) ulp at x = \(worstAt)")
        // Small arguments (softmax of nearly equal logits) and exact points.
        for x: Float in [0, -0.0, 1e-8, -1e-8, 1, -1, 0.5, 10, -10] {
            let exact = Float(Foundation.exp(Double(x)))
            XCTAssertLessThanOrEqual(abs(VectorExp.exp(x) - exact) / exact.ulp, 1, "x = \(x)")
        }
        XCTAssertEqual(VectorExp.exp(0), 1)
    }

    func testSaturationAndSpecialValues() {
        XCTAssertEqual(VectorExp.exp(-88), 0)
        XCTAssertEqual(VectorExp.exp(-Float.infinity), 0)
        XCTAssertEqual(VectorExp.exp(89), .infinity)
        XCTAssertEqual(VectorExp.exp(.infinity), .infinity)
        XCTAssertTrue(VectorExp.exp(.nan).isNaN)
        XCTAssertTrue(VectorExp.exp(88.5).isFinite, "saturates below FLT_MAX in the last band")
    }

    func testBlocksCoverShortTails() {
        var seen: [(Int, Int)] = []
        VectorExp.blocks(3..<40) { seen.append(($0, $1)) }
        XCTAssertEqual(seen.map(\.0), [3, 19, 35])
        XCTAssertEqual(seen.map(\.1), [16, 16, 5])
    }
}
