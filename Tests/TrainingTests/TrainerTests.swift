import Foundation
import XCTest
import Checkpoints
import Models
import TensorMath
@testable import Training

final class TrainerTests: XCTestCase {
    func temporaryFolder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("training-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func options() -> TrainerOptions {
        var o = TrainerOptions(totalSteps: 6)
        o.learningRate = 3e-3
        o.projectorLearningRate = 1e-2
        o.weightDecay = 0.1
        o.beta2 = 0.95
        o.warmupRatio = 0.2
        o.maxGradNorm = 1.0
        return o
    }

    var modelFolder: String { TrainingFixture.root.appendingPathComponent("model").path }
    
    /// The trainer's step equals the PyTorch run: two micro-batches (one sequence each) accumulate
    /// to the padded batch's gradient, so the losses are the fixture's.
    func testMicroBatchAccumulationGivesTheFullBatchStep() throws {
        let fixture = try TrainingFixture()
        var o = TrainerOptions(totalSteps: 5)
        o.learningRate = fixture.number("optimizer", "lr_llm")
        o.projectorLearningRate = fixture.number("optimizer", "lr_projector")
        o.weightDecay = fixture.number("optimizer", "weight_decay")
        o.beta2 = 0.95
        o.warmupRatio = fixture.number("optimizer", "warmup_ratio")
        o.maxGradNorm = fixture.number("optimizer", "max_grad_norm")
        let trainer = try Trainer(model: fixture.model, options: o)
        let expected = TrainingFixture.doubles(fixture.json["step_losses"])
        for step in 0..<5 {
            let report = try trainer.train(microBatches: fixture.batch.map { [$0] })
            XCTAssertEqual(report.loss, expected[step], accuracy: 1e-4, "step \(step)")
            XCTAssertEqual(report.step, step + 1)
        }
    }

    /// The written folder has exactly the keys transformers 5 saved for this model, the same values,
    /// and loads back (through the repo's loader) to the same loss.
    func testCheckpointHasTransformersKeysAndReloads() throws {
        let fixture = try TrainingFixture()
        let folder = try temporaryFolder()
        let trainer = try Trainer(model: fixture.model, options: options())
        // Two steps: the first has learning rate 0 (warm-up starts at 0, as in transformers).
        for _ in 0..<2 { try trainer.train(microBatches: [fixture.batch]) }
        try trainer.saveCheckpoint(to: folder, sourceFolder: modelFolder)

        let original = try SafeTensorsFile(path: modelFolder + "/model.safetensors")
        let written = try SafeTensorsFile(path: folder + "/model.safetensors")
        XCTAssertEqual(Set(written.tensorNames), Set(original.tensorNames.filter { !$0.hasSuffix("position_ids") }))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: folder + "/config.json")),
                       try Data(contentsOf: URL(fileURLWithPath: modelFolder + "/config.json")), "source config.json kept verbatim")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + ".partial"))
        for name in written.tensorNames where name.hasPrefix("vision_tower.") {
            XCTAssertEqual(try written.floats(name), try original.floats(name), "frozen tower tensor \(name) unchanged")
        }
        let embed = "language_model.model.embed_tokens.weight"
        XCTAssertNotEqual(try written.floats(embed), try original.floats(embed), "trained weights were written")

        guard case .llava(let reloaded) = try ModelLoader.load(path: folder) else { return XCTFail("not a LLaVA") }
        let before = try trainer.engine.loss(fixture.batch)
        let after = try LossAndGradients(model: reloaded).loss(fixture.batch)
        XCTAssertEqual(before, after, accuracy: 1e-9)

        // Without the source config.json one is encoded from the model's config; it loads the same.
        let bare = try temporaryFolder()
        try trainer.saveCheckpoint(to: bare)
        guard case .llava(let fromEncoded) = try ModelLoader.load(path: bare) else { return XCTFail("not a LLaVA") }
        XCTAssertEqual(fromEncoded.config, reloaded.config)
        XCTAssertEqual(try LossAndGradients(model: fromEncoded).loss(fixture.batch), after, accuracy: 1e-9)

        // By hand: LLAVA_FORGE_KEEP_CHECKPOINT=DIR keeps this checkpoint plus our logits of the
        // batch, for `make_training_fixtures.py --check-checkpoint DIR` (transformers loads it).
        if let keep = ProcessInfo.processInfo.environment["LLAVA_FORGE_KEEP_CHECKPOINT"], !keep.isEmpty {
            try trainer.saveCheckpoint(to: keep, sourceFolder: modelFolder)
            var logits: [Float] = []
            for s in fixture.batch {
                let activations = LlamaActivations(config: reloaded.language.config, tokens: s.tokens.count, keepForBackward: false)
                var projector: ProjectorActivations?
                if let features = s.features {
                    let made = ProjectorActivations(config: reloaded.projector.config, rows: features.count / reloaded.projector.config.inputSize)
                    features.withUnsafeBufferPointer { made.input.copy(from: $0.baseAddress!, count: features.count) }
                    projector = made
                }
                try reloaded.forward(tokens: s.tokens, projectorActivations: projector, activations: activations)
                logits += activations.logits.toArray()
            }
            try logits.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: URL(fileURLWithPath: keep + "/swift_logits.f32"))
            try JSONSerialization.data(withJSONObject: ["loss": after]).write(to: URL(fileURLWithPath: keep + "/swift_loss.json"))
            // The same weights with the config.json encoded from `LlavaConfig` (no source config).
            let encoded = keep + "-encoded-config"
            try trainer.saveCheckpoint(to: encoded)
            for file in ["swift_logits.f32", "swift_loss.json"] {
                try? FileManager.default.removeItem(atPath: encoded + "/" + file)
                try FileManager.default.copyItem(atPath: keep + "/" + file, toPath: encoded + "/" + file)
            }
            print("kept checkpoint in \(keep)")
        }
    }

    /// 6 steps straight = 3 steps, checkpoint, a fresh process-like reload, 3 more steps.
    func testResumeGivesIdenticalLosses() throws {
        let fixture = try TrainingFixture()
        let straight = try Trainer(model: fixture.model, options: options())
        var expected: [Double] = []
        for _ in 0..<6 { expected.append(try straight.train(microBatches: [fixture.batch]).loss) }

        let first = try Trainer(model: try TrainingFixture().model, options: options())
        var losses: [Double] = []
        for _ in 0..<3 { losses.append(try first.train(microBatches: [fixture.batch]).loss) }
        let folder = try temporaryFolder()
        try first.saveCheckpoint(to: folder, sourceFolder: modelFolder)
        try first.saveCheckpoint(to: folder, sourceFolder: modelFolder)  // over an existing checkpoint

        guard case .llava(let reloaded) = try ModelLoader.load(path: folder) else { return XCTFail("not a LLaVA") }
        let second = try Trainer(model: reloaded, options: options())
        try second.resume(from: folder)
        XCTAssertEqual(second.step, 3)
        for _ in 0..<3 { losses.append(try second.train(microBatches: [fixture.batch]).loss) }
        XCTAssertEqual(losses, expected, "resumed run diverged")
        XCTAssertLessThan(expected.last!, expected.first!)

        var other = options()
        other.learningRate = 1
        XCTAssertThrowsError(try Trainer(model: reloaded, options: other).resume(from: folder), "options mismatch is refused")
    }

    func testBadSequencesAreErrors() throws {
        let fixture = try TrainingFixture()
        let trainer = try Trainer(model: fixture.model, options: options())
        let s = fixture.batch[1]
        XCTAssertThrowsError(try trainer.train(microBatches: [[TrainingSequence(tokens: s.tokens, labels: Array(s.labels.dropLast()))]]))
        XCTAssertThrowsError(try trainer.train(microBatches: [[TrainingSequence(tokens: s.tokens, labels: s.labels.map { $0 == -100 ? -100 : 5000 })]]))
        XCTAssertThrowsError(try trainer.train(microBatches: [[TrainingSequence(tokens: s.tokens, labels: s.labels.map { _ in -100 })]]))
        XCTAssertThrowsError(try trainer.train(microBatches: [[TrainingSequence(tokens: fixture.batch[0].tokens, labels: fixture.batch[0].labels)]]),
                             "image tokens without features")
        XCTAssertEqual(trainer.step, 0)
    }

    /// Stage 1 moves only the projector.
    func testStageOneTrainsOnlyTheProjector() throws {
        let fixture = try TrainingFixture()
        var o = options()
        o.stage = .projectorOnly
        let trainer = try Trainer(model: fixture.model, options: o)
        let buffer = fixture.model.trainable
        let before = buffer.storage.toArray()
        for _ in 0..<2 { try trainer.train(microBatches: [fixture.batch]) }
        let after = buffer.storage.toArray()
        for slot in buffer.slots {
            let changed = before[slot.offset..<(slot.offset + slot.count)] != after[slot.offset..<(slot.offset + slot.count)]
            XCTAssertEqual(changed, slot.name.hasPrefix(LlavaModel.projectorPrefix), slot.name)
        }
    }
}
