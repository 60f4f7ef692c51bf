import Foundation
import XCTest
import Checkpoints
import Models
import TensorMath
@testable import Training

/// The tiny LLaVA batch against PyTorch (tools/reference/make_training_fixtures.py): loss, every
/// trainable gradient after one backward, and the losses of AdamW steps with schedule + clipping.
final class PyTorchParityTests: XCTestCase {
    func testLossAndEveryGradientMatchPyTorch() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        let (loss, gradients) = try fixture.lossAndGradients(engine)
        XCTAssertEqual(loss, fixture.number("loss"), accuracy: 1e-4, "loss")

        let reference = try SafeTensorsFile(path: TrainingFixture.root.appendingPathComponent("gradients.safetensors").path)
        XCTAssertEqual(Set(reference.tensorNames), Set(gradients.layout.names), "trainable tensors = PyTorch's requires_grad tensors")
        var worst = (name: "", error: 0.0)
        for slot in gradients.slots {
            let expected = try reference.floats(slot.name)
            XCTAssertEqual(expected.count, slot.count, slot.name)
            XCTAssertGreaterThan(expected.reduce(0) { $0 + abs($1) }, 0, "\(slot.name): reference gradient is all zero")
            let error = relativeError(gradients.storage.pointer + slot.offset, expected)
            XCTAssertLessThanOrEqual(error, 1e-3, "\(slot.name) relative gradient error")
            if error > worst.error { worst = (slot.name, error) }
        }
        print("gradient parity: worst relative error \(worst.error) in \(worst.name) over \(gradients.slots.count) tensors")
    }

    /// Stage 1 (frozen decoder): only d(embeddings) flows back, and the projector's gradients are
    /// still PyTorch's; no decoder gradient is written.
    func testFrozenDecoderStillGivesTheProjectorGradients() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        engine.decoderGradients = false
        let (loss, gradients) = try fixture.lossAndGradients(engine)
        XCTAssertEqual(loss, fixture.number("loss"), accuracy: 1e-4)
        let reference = try SafeTensorsFile(path: TrainingFixture.root.appendingPathComponent("gradients.safetensors").path)
        for slot in gradients.slots {
            if slot.name.hasPrefix(LlavaModel.projectorPrefix) {
                XCTAssertLessThanOrEqual(relativeError(gradients.storage.pointer + slot.offset, try reference.floats(slot.name)), 1e-3, slot.name)
            } else {
                XCTAssertEqual(gradients.values(slot.name).reduce(0) { $0 + abs($1) }, 0, "\(slot.name) must get no gradient")
            }
        }
    }

    func testAdamWStepsWithScheduleAndClippingMatchPyTorch() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        let steps = Int(fixture.number("optimizer", "steps"))
        let betas = TrainingFixture.doubles((fixture.json["optimizer"] as! [String: Any])["betas"])
        let groups = ParameterGroup.byPrefix(engine.parameters.layout, [
            (LlavaModel.projectorPrefix, fixture.number("optimizer", "lr_projector")),
            (LlavaModel.languagePrefix, fixture.number("optimizer", "lr_llm")),
        ], weightDecay: fixture.number("optimizer", "weight_decay"))
        let optimizer = AdamW(parameters: engine.parameters, groups: groups, beta1: betas[0], beta2: betas[1],
                              epsilon: fixture.number("optimizer", "eps"))
        let schedule = CosineSchedule(warmupRatio: fixture.number("optimizer", "warmup_ratio"), totalSteps: steps)
        XCTAssertEqual(schedule.warmupSteps, Int(fixture.number("optimizer", "warmup_steps")))
        let expectedLosses = TrainingFixture.doubles(fixture.json["step_losses"])
        let expectedNorms = TrainingFixture.doubles(fixture.json["grad_norms"])
        let trainableSlots = groups.flatMap(\.slots)
        XCTAssertEqual(trainableSlots.count, engine.parameters.slots.count, "every trainable tensor is in a group")
        var losses: [Double] = []
        for step in 0..<steps {
            let (loss, gradients) = try fixture.lossAndGradients(engine)
            let norm = GradientClipping.clip(gradients, slots: trainableSlots, maxNorm: fixture.number("optimizer", "max_grad_norm"))
            XCTAssertEqual(norm, expectedNorms[step], accuracy: 1e-3 * expectedNorms[step], "grad norm at step \(step)")
            optimizer.update(gradients: gradients, learningRateFactor: schedule.factor(step: step))
            losses.append(loss)
        }
        losses.append(try engine.loss(fixture.batch))
        print("AdamW losses \(losses) vs PyTorch \(expectedLosses)")
        XCTAssertEqual(losses.count, expectedLosses.count)
        for (ours, theirs) in zip(losses, expectedLosses) { XCTAssertEqual(ours, theirs, accuracy: 1e-4) }
        XCTAssertLessThan(losses.last!, losses.first! - 1, "training moved the loss")
    }

    func testScheduleMatchesTransformers() throws {
        let fixture = try TrainingFixture()
        let steps = Int(fixture.number("optimizer", "steps"))
        let schedule = CosineSchedule(warmupRatio: fixture.number("optimizer", "warmup_ratio"), totalSteps: steps)
        let rates = (fixture.json["learning_rates"] as! [[Any]]).map { TrainingFixture.doubles($0) }
        let base = fixture.number("optimizer", "lr_llm")
        for step in 0..<steps {
            // Group order in the fixture: llm decay, llm no-decay, projector decay, projector no-decay.
            XCTAssertEqual(base * schedule.factor(step: step), rates[step][0], accuracy: 1e-12, "lr at step \(step)")
        }
    }
}
