import Foundation
import XCTest
import ForgeCore
import Models
import TensorMath
@testable import Training

/// Opt-in throughput probe (LLAVA_FORGE_TRAIN_PROBE=1): full training steps (forward, fused loss,
/// backward, clipping, AdamW) of random-init decoders at 512 tokens, fp32. Reports tokens/s and
/// achieved GFLOP/s ≈ 6 · parameters · tokens / time (the attention's T² work not counted).
final class TrainingThroughputProbe: XCTestCase {
    func probe(_ name: String, _ config: LlamaConfig, tokens: Int = 512, steps: Int = 2) throws {
        let parameters = LlamaModel.makeParameters(config)
        var random = SeededRandom(seed: 1)
        let p = parameters.storage.pointer
        for i in 0..<parameters.totalCount { p[i] = Float(Int(random.next() % 2001) - 1000) * 2e-5 }
        for slot in parameters.slots where slot.name.contains("norm") { (p + slot.offset).update(repeating: 1, count: slot.count) }
        let model = try LlamaModel(config: config, parameters: parameters)
        var options = TrainerOptions(totalSteps: 100)
        options.learningRate = 1e-4
        let trainer = try Trainer(language: model, options: options)
        let ids = (0..<tokens).map { _ in Int(random.next() % UInt64(config.vocabSize)) }
        let batch = [TrainingSequence(tokens: ids, labels: ids)]
        try trainer.train(microBatches: [batch])  // warm-up: allocations, page faults
        var seconds = 0.0
        for _ in 0..<steps { seconds += try trainer.train(microBatches: [batch]).seconds }
        let perStep = seconds / Double(steps)
        func time(_ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        let forward = try time { _ = try trainer.engine.loss(batch) }
        let update = time { trainer.optimizer.update(gradients: trainer.gradients, learningRateFactor: 0) }
        let clip = time { _ = GradientClipping.globalNorm(trainer.gradients, slots: trainer.trainableSlots) }
        let zeroing = time { trainer.gradients.storage.fill(0) }
        print(String(format: "  breakdown: forward+loss %.3f s, AdamW %.3f s, norm %.3f s, zero grads %.3f s, backward ≈ %.3f s",
                     forward, update, clip, zeroing, perStep - forward - update - clip - zeroing))
        let count = Double(parameters.parameterCount)
        let gflops = 6 * count * Double(tokens) / perStep / 1e9
        print(String(format: "train probe %@: %.1fM params, %d tokens, %.3f s/step, %.0f tokens/s, %.0f GFLOP/s (6·N·T), Parallel %d threads, BLAS %d threads",
                     name, count / 1e6, tokens, perStep, Double(tokens) / perStep, gflops, Parallel.threadCount, BLASRuntime.threadCount))
    }

    func testProbeTrainingThroughput() throws {
        guard ProcessInfo.processInfo.environment["LLAVA_FORGE_TRAIN_PROBE"] == "1" else {
            throw XCTSkip("set LLAVA_FORGE_TRAIN_PROBE=1 to run the training throughput probe")
        }
        print(BLASRuntime.describe(measure: true))
        try probe("tiny (hidden 512, 8 layers, vocab 32000, untied)",
                  LlamaConfig(hiddenSize: 512, intermediateSize: 1376, numHiddenLayers: 8, numAttentionHeads: 8,
                              maxPositionEmbeddings: 2048, vocabSize: 32000, tieWordEmbeddings: false))
        if ProcessInfo.processInfo.environment["LLAVA_FORGE_TRAIN_PROBE_TINY_ONLY"] == "1" { return }
        try probe("SmolLM2-135M-sized",
                  LlamaConfig(hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9, numKeyValueHeads: 3,
                              rmsNormEps: 1e-5, ropeTheta: 100_000, maxPositionEmbeddings: 2048, vocabSize: 49152, tieWordEmbeddings: true))
    }
}
