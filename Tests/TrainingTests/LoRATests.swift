import Foundation
import XCTest
import ForgeCore
import Models
import TensorMath
@testable import Training

/// LoRA on the fixture LLaVA: gradients against central differences, the merged export against
/// the adapted model, frozen base weights, and the option parsing the CLI uses.
final class LoRATests: XCTestCase {
    /// Adapters with a non-zero B (PEFT starts B at 0, which would make every lora_A gradient 0).
    func perturbedLoRA(_ model: LlavaModel, rank: Int = 2, alpha: Double = 6, targets: [LlamaProjection] = LlamaProjection.allCases) throws -> LoRATraining {
        let lora = try LoRATraining(model: model, options: LoRAOptions(rank: rank, alpha: alpha, targets: targets, seed: 3))
        var random = SeededRandom(seed: 4)
        for slot in lora.trainable.slots where slot.name.hasSuffix("lora_B.weight") {
            for i in 0..<slot.count { lora.trainable.storage.pointer[slot.offset + i] = (Float(random.next() % 2001) / 1000 - 1) * 0.3 }
        }
        return lora
    }

    func testLoRAGradientsMatchFiniteDifferences() throws {
        let fixture = try TrainingFixture()
        let lora = try perturbedLoRA(fixture.model)
        let engine = LossAndGradients(lora: lora)
        defer { fixture.model.language.adapter = nil }
        let l = LlavaModel.languagePrefix, pr = LlavaModel.projectorPrefix
        let tensors = [pr + "linear_1.weight", pr + "linear_2.bias",
                       l + "layers.0.self_attn.q_proj.lora_A.weight", l + "layers.0.self_attn.q_proj.lora_B.weight",
                       l + "layers.0.self_attn.k_proj.lora_A.weight", l + "layers.1.self_attn.v_proj.lora_B.weight",
                       l + "layers.1.self_attn.o_proj.lora_A.weight", l + "layers.0.mlp.gate_proj.lora_B.weight",
                       l + "layers.1.mlp.up_proj.lora_A.weight", l + "layers.1.mlp.down_proj.lora_A.weight",
                       l + "layers.0.mlp.down_proj.lora_B.weight"]
        try checkCoordinates(engine, batch: fixture.batch, tensors: tensors)
        // No gradient buffer for the frozen decoder: the LoRA buffer is the projector + adapters only.
        XCTAssertLessThan(engine.makeGradients().totalCount, fixture.model.trainable.totalCount / 4)
        XCTAssertFalse(lora.trainable.layout.names.contains(l + "layers.0.self_attn.q_proj.weight"))
    }

    func testMergedExportGivesTheAdaptedLogitsAndBaseStaysFrozen() throws {
        let fixture = try TrainingFixture()
        let model = fixture.model
        defer { model.language.adapter = nil }
        let baseBefore = model.trainable.values(LlavaModel.languagePrefix + "layers.0.mlp.down_proj.weight")
        var options = TrainerOptions(totalSteps: 4)
        options.learningRate = 1e-2
        options.projectorLearningRate = 1e-2
        options.warmupRatio = 0
        options.lora = LoRAOptions(rank: 4, alpha: 8, targets: [.q, .v, .o, .down], seed: 1)
        let trainer = try Trainer(model: model, options: options)
        var losses: [Double] = []
        for _ in 0..<4 { losses.append(try trainer.train(microBatches: [fixture.batch]).loss) }
        XCTAssertLessThan(losses.last!, losses.first!, "LoRA training lowers the loss: \(losses)")
        XCTAssertEqual(model.trainable.values(LlavaModel.languagePrefix + "layers.0.mlp.down_proj.weight"), baseBefore, "base weights frozen")
        let lora = try XCTUnwrap(trainer.lora)
        XCTAssertEqual(trainer.gradients.totalCount, lora.trainable.totalCount)

        let adapted = try trainer.engine.loss(fixture.batch)
        let merged = try lora.mergedModel()
        XCTAssertNil(merged.language.adapter)
        let mergedLoss = try LossAndGradients(model: merged).loss(fixture.batch)
        XCTAssertEqual(mergedLoss, adapted, accuracy: 1e-5 * abs(adapted))

        // Logits position by position: adapted (base + adapters, LoRA projector) vs merged export.
        for s in fixture.batch {
            let features = s.features.map { lora.projector!.project($0) }
            let a = LlamaActivations(config: model.language.config, tokens: s.tokens.count, keepForBackward: false)
            try model.embed(tokens: s.tokens, imageFeatures: features, into: a.embeddings.pointer)
            model.language.forward(activations: a)
            let m = LlamaActivations(config: model.language.config, tokens: s.tokens.count, keepForBackward: false)
            try merged.embed(tokens: s.tokens, imageFeatures: s.features.map { merged.projector.project($0) }, into: m.embeddings.pointer)
            merged.language.forward(activations: m)
            let mergedLogits = m.logits.toArray(), ours = a.logits.toArray()
            var worst: Float = 0, scale: Float = 0
            for i in 0..<ours.count { worst = max(worst, abs(ours[i] - mergedLogits[i])); scale = max(scale, abs(ours[i])) }
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "merged logits differ by \(worst)")
        }

        // The checkpoint is a plain LLaVA folder with the merged weights; it reloads to the same loss.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try trainer.saveCheckpoint(to: folder, sourceFolder: TrainingFixture.root.appendingPathComponent("model").path)
        guard case .llava(let reloaded) = try ModelLoader.load(path: folder) else { return XCTFail("not a LLaVA") }
        XCTAssertEqual(try LossAndGradients(model: reloaded).loss(fixture.batch), mergedLoss, accuracy: 1e-9)
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + Trainer.loraFile))
    }

    func testTargetParsingAndValidation() throws {
        XCTAssertEqual(try LoRAOptions.parseTargets("q_proj, v_proj,q_proj"), [.q, .v])
        XCTAssertEqual(try LoRAOptions.parseTargets("all"), LlamaProjection.allCases)
        XCTAssertThrowsError(try LoRAOptions.parseTargets("q_proj,qkv")) { error in
            XCTAssertTrue("\(error)".contains("qkv"), "\(error)")
        }
        XCTAssertThrowsError(try LoRAOptions.parseTargets(" , "))
        XCTAssertThrowsError(try LoRAOptions(rank: 0).validate())
        let fixture = try TrainingFixture()
        var options = TrainerOptions(totalSteps: 2)
        options.stage = .projectorOnly
        options.lora = LoRAOptions()
        XCTAssertThrowsError(try Trainer(model: fixture.model, options: options), "LoRA needs Stage 2")
    }
}
