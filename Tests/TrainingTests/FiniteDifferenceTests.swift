import Foundation
import XCTest
import ForgeCore
import Models
import TensorMath
@testable import Training

/// Central differences of the batch loss at the two largest-gradient coordinates of each tensor
/// against the engine's backward (tolerances: see FiniteDifferenceTests).
func checkCoordinates(_ engine: LossAndGradients, batch: [TrainingSequence], tensors: [String], step h: Float = 1e-2,
                      file: StaticString = #filePath, line: UInt = #line) throws {
    let counted = batch.reduce(0) { $0 + CausalLMLoss.countedTargets(labels: $1.labels) }
    let gradients = engine.makeGradients()
    for s in batch { try engine.accumulate(s, lossScale: Float(1 / Double(counted)), into: gradients) }
    let p = engine.parameters.storage.pointer
    var checked = 0, worst = 0.0
    for name in tensors {
        let slot = engine.parameters.slot(name)
        let g = gradients.storage.pointer + slot.offset
        // The two largest-gradient coordinates of the tensor.
        let order = (0..<slot.count).sorted { abs(g[$0]) > abs(g[$1]) }.prefix(2)
        for index in order {
            let i = slot.offset + index, original = p[i]
            p[i] = original + h
            let plus = try engine.loss(batch)
            p[i] = original - h
            let minus = try engine.loss(batch)
            p[i] = original
            let numeric = (plus - minus) / (2 * Double(h)), analytic = Double(g[index])
            let error = abs(numeric - analytic)
            worst = max(worst, error / max(abs(analytic), 1e-12))
            XCTAssertLessThanOrEqual(error, 0.01 * abs(analytic) + 2e-4,
                                     "\(name)[\(index)]: finite difference \(numeric) vs backward \(analytic)", file: file, line: line)
            checked += 1
        }
    }
    XCTAssertEqual(checked, tensors.count * 2)
    print("finite differences: \(checked) coordinates, worst relative error \(worst)")
}

/// End-to-end central differences of the full model loss against the analytic backward.
///
/// The model runs in Float32, so the difference quotient is computed from Float32 losses
/// (accumulated in Double). Error budget for step h on an O(1)-scaled tiny model: rounding in the
/// loss is ~1e-6 relative (loss ≈ 10 → ~1e-5 abs), giving ~1e-5/(2h) in the quotient; truncation
/// is ~h²·|f‴|/6. With h = 1e-2 both stay below ~2e-4 abs, so the check is on the coordinates with
/// the largest gradients, at 1 % relative + 2e-4 abs (observed worst: 8e-4 relative) — loose enough for Float32,
/// still far tighter than any wrong-formula error (a missing factor, a dropped path, a transposed
/// weight give O(1) relative errors). The PyTorch parity test gives the tight (1e-3) check.
final class FiniteDifferenceTests: XCTestCase {
    /// Float64 central differences (h = 1e-4, computed by the fixture script on a float64 copy of
    /// the model with the cross-entropy in float64 — no autograd involved) at the two largest-
    /// gradient entries of every trainable tensor; our Float32 backward within 1e-4 relative
    /// (observed worst: 9e-7 — Float32 rounding; the float64 quotient itself is good to ~1e-9).
    func testGradientsMatchFloat64FiniteDifferences() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        let (_, gradients) = try fixture.lossAndGradients(engine)
        let entries = fixture.json["finite_differences"] as! [[String: Any]]
        XCTAssertEqual(entries.count, 2 * gradients.slots.count, "two entries per trainable tensor")
        var worst = 0.0
        for entry in entries {
            let name = entry["name"] as! String, index = (entry["index"] as! NSNumber).intValue
            let expected = (entry["value"] as! NSNumber).doubleValue
            let slot = gradients.slot(name)
            XCTAssertLessThan(index, slot.count, name)
            let ours = Double(gradients.storage.pointer[slot.offset + index])
            worst = max(worst, abs(ours - expected) / abs(expected))
            XCTAssertEqual(ours, expected, accuracy: 1e-4 * abs(expected) + 1e-7, "\(name)[\(index)]")
        }
        print("float64 finite differences: \(entries.count) entries, worst relative error \(worst)")
    }

    /// The fixture LLaVA: tied head, GQA, q/k/v/o biases, mlp2x_gelu projector through the splice.
    func testLlavaLossGradientMatchesFiniteDifferences() throws {
        let fixture = try TrainingFixture()
        let engine = LossAndGradients(model: fixture.model)
        let l = LlavaModel.languagePrefix, pr = LlavaModel.projectorPrefix
        try checkCoordinates(engine, batch: fixture.batch, tensors: [
            pr + "linear_1.weight", pr + "linear_1.bias", pr + "linear_2.weight", pr + "linear_2.bias",
            l + "embed_tokens.weight", l + "norm.weight",
            l + "layers.0.input_layernorm.weight", l + "layers.0.self_attn.q_proj.weight", l + "layers.0.self_attn.k_proj.weight",
            l + "layers.0.self_attn.v_proj.weight", l + "layers.0.self_attn.o_proj.weight", l + "layers.0.self_attn.k_proj.bias",
            l + "layers.0.post_attention_layernorm.weight", l + "layers.0.mlp.gate_proj.weight",
            l + "layers.1.mlp.up_proj.weight", l + "layers.1.mlp.down_proj.weight", l + "layers.1.self_attn.q_proj.bias",
        ])
    }

    /// A random text-only decoder with an untied head and MLP biases (the paths the fixture lacks).
    func testUntiedDecoderGradientMatchesFiniteDifferences() throws {
        let config = LlamaConfig(hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 1,
                                 rmsNormEps: 1e-5, maxPositionEmbeddings: 32, vocabSize: 40, tieWordEmbeddings: false,
                                 attentionBias: false, mlpBias: true)
        let parameters = LlamaModel.makeParameters(config)
        var random = SeededRandom(seed: 7)
        for slot in parameters.slots {
            let fanIn = Float(slot.shape.count > 1 ? slot.shape[1] : 1)
            for i in 0..<slot.count {
                let u = Float(random.next() % 1_000_000) / 1_000_000 * 2 - 1
                parameters.storage.pointer[slot.offset + i] = slot.shape.count == 1
                    ? (slot.name.contains("norm") ? 1 + 0.3 * u : 0.3 * u) : u * (3 / fanIn).squareRoot() * (slot.name.contains("embed") ? 1.5 : 1)
            }
        }
        let model = try LlamaModel(config: config, parameters: parameters)
        let engine = LossAndGradients(language: model)
        let tokens = (0..<12).map { _ in Int(random.next() % 40) }
        var labels = tokens
        for i in 0..<4 { labels[i] = -100 }
        let batch = [TrainingSequence(tokens: tokens, labels: labels),
                     TrainingSequence(tokens: Array(tokens.prefix(7).reversed()), labels: Array(tokens.prefix(7).reversed()))]
        try checkCoordinates(engine, batch: batch, tensors: [
            "embed_tokens.weight", "lm_head.weight", "norm.weight", "layers.0.self_attn.q_proj.weight",
            "layers.0.self_attn.k_proj.weight", "layers.1.self_attn.v_proj.weight", "layers.1.self_attn.o_proj.weight",
            "layers.0.mlp.gate_proj.bias", "layers.1.mlp.down_proj.bias", "layers.1.mlp.up_proj.weight",
        ])
    }

    /// The linear projector kind (the fixture uses mlp2x): a weighted sum of its outputs.
    func testLinearProjectorGradientMatchesFiniteDifferences() throws {
        let config = ProjectorConfig(kind: .linear, bias: true, inputSize: 6, outputSize: 5)
        var layout = ParameterLayout()
        ProjectorParameterNames.declare(config, into: &layout)
        let parameters = ParameterBuffer(layout: layout)
        var random = SeededRandom(seed: 9)
        func uniform() -> Float { Float(random.next() % 1_000_000) / 1_000_000 * 2 - 1 }
        for i in 0..<parameters.totalCount { parameters.storage.pointer[i] = uniform() }
        let projector = try Projector(config: config, parameters: parameters)
        let rows = 3
        let activations = ProjectorActivations(config: config, rows: rows)
        for i in 0..<(rows * 6) { activations.input.pointer[i] = uniform() }
        let weights = (0..<(rows * 5)).map { _ in uniform() }
        func loss() -> Double {
            projector.forward(activations: activations)
            return (0..<weights.count).reduce(0.0) { $0 + Double(weights[$1]) * Double(activations.output.pointer[$1]) }
        }
        _ = loss()
        let gradients = ParameterBuffer(layout: layout)
        weights.withUnsafeBufferPointer { projector.backward(activations: activations, dOutput: $0.baseAddress!, gradients: gradients) }
        let h: Float = 1e-2
        for slot in layout.slots {
            for index in 0..<slot.count {
                let i = slot.offset + index, original = parameters.storage.pointer[i]
                parameters.storage.pointer[i] = original + h
                let plus = loss()
                parameters.storage.pointer[i] = original - h
                let minus = loss()
                parameters.storage.pointer[i] = original
                // Linear in the parameters: central differences are exact up to Float32 rounding.
                XCTAssertEqual((plus - minus) / (2 * Double(h)), Double(gradients.storage.pointer[i]), accuracy: 2e-4, "\(slot.name)[\(index)]")
            }
        }
    }
}
