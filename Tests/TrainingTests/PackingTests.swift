import Foundation
import XCTest
import Models
import TensorMath
@testable import Training

/// Sequences packed into one pass (one sgemm per matrix over all rows, each sequence its own
/// causal segment with positions from 0, logits only where a label counts) give the gradients
/// of running them one by one.
final class PackingTests: XCTestCase {
    func testPackedBatchGivesTheSequentialGradients() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        // The fixture's image + text sequences, plus a shifted copy so a pack holds two images.
        var batch = fixture.batch
        batch.append(TrainingSequence(tokens: fixture.batch[0].tokens, labels: fixture.batch[0].labels.map { $0 == -100 ? -100 : ($0 + 1) % 290 },
                                      features: fixture.batch[0].features.map { $0.map { $0 * 0.5 } }))
        let scale = Float(1 / Double(batch.reduce(0) { $0 + CausalLMLoss.countedTargets(labels: $1.labels) }))
        engine.packTokens = 1
        XCTAssertEqual(engine.packs(batch).count, batch.count)
        let sequential = engine.makeGradients()
        let one = try engine.accumulate(batch: batch, lossScale: scale, into: sequential)
        engine.packTokens = 4096
        XCTAssertEqual(engine.packs(batch).count, 1)
        let packed = engine.makeGradients()
        let all = try engine.accumulate(batch: batch, lossScale: scale, into: packed)
        XCTAssertEqual(all.counted, one.counted)
        XCTAssertEqual(all.lossSum, one.lossSum, accuracy: 1e-5 * abs(one.lossSum))
        var worst = 0.0
        for slot in packed.slots {
            let reference = sequential.values(slot.name)
            let error = relativeError(packed.storage.pointer + slot.offset, reference)
            worst = max(worst, error)
            XCTAssertLessThan(error, 1e-5, slot.name)
        }
        print("packed vs sequential gradients: worst relative error \(worst)")
        XCTAssertEqual(try engine.loss(batch), one.lossSum / Double(one.counted), accuracy: 1e-6)
    }
}
