// Forward-throughput benchmark driven by bench/forward_bench.sh: one LLaVA forward (CLIP tower →
// projector → splice → LLaMA over every prompt position, logits included) of a 512-token prompt
// holding one image, for (a) a tiny random LLaVA and (b) SmolLM2-135M (GGUF, dequantized Float32
// path) + a random ViT-B/16-sized CLIP tower. Reports tokens/s and achieved GFLOP/s against the
// measured sgemm peak. Prints one JSON object per line.
//
// FLOPs counted: 2 × multiply-adds of every matrix product (linear layers, patch embedding, the LM
// head over all positions, the projector), plus attention's QKᵀ and AV products (causal for the
// LM: T(T+1)/2 scored pairs; full for the tower); element-wise work (norms, softmax, RoPE, GELU) is
// not counted.
import Dispatch
import Foundation
import Models
import TensorMath

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(stdout)
}

/// Small deterministic weights (uniform ±scale from a hash): throughput does not depend on values,
/// but NaN/denormal-free inputs keep the kernels on their normal path.
func fillRandom(_ buffer: ParameterBuffer, scale: Float, seed: Int) {
    let p = buffer.storage.pointer
    for i in 0..<buffer.totalCount {
        let hashed = (i &* 2_654_435_761 &+ seed &* 40_503) & 0xFFFF
        p[i] = (Float(hashed) / 32_768 - 1) * scale
    }
    // Norm weights at 1 so activations keep their scale through the layers.
    for slot in buffer.slots where slot.name.hasSuffix("norm.weight") || slot.name.hasSuffix("layernorm.weight")
        || slot.name.hasSuffix("layer_norm1.weight") || slot.name.hasSuffix("layer_norm2.weight")
        || slot.name.hasSuffix("pre_layrnorm.weight") || slot.name.hasSuffix("post_layernorm.weight") {
        (p + slot.offset).update(repeating: 1, count: slot.count)
    }
}

/// FLOPs of the LLaMA decoder over `t` prompt positions (logits at every position).
func languageFLOPs(_ c: LlamaConfig, tokens t: Int) -> (matmul: Double, attention: Double) {
    let perLayer = c.hiddenSize * (c.qWidth + 2 * c.kvWidth) + c.qWidth * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
    let matmul = 2.0 * Double(t) * Double(perLayer * c.numHiddenLayers + c.vocabSize * c.hiddenSize)
    // QKᵀ and AV: 2 products × 2 FLOPs × headDim per scored (query, key) pair per head.
    let pairs = Double(t) * Double(t + 1) / 2
    let attention = 4.0 * pairs * Double(c.qWidth) * Double(c.numHiddenLayers)
    return (matmul, attention)
}

/// FLOPs of the CLIP tower for one image up to the feature layer (layers after it are skipped).
func visionFLOPs(_ v: CLIPVisionConfig, layersRun: Int) -> (matmul: Double, attention: Double) {
    let n = Double(v.positionCount), h = Double(v.hiddenSize)
    let perLayer = 4 * h * h + 2 * h * Double(v.intermediateSize)
    let matmul = 2.0 * (n * perLayer * Double(layersRun) + Double(v.patchCount) * Double(v.patchVectorLength) * h)
    let attention = 4.0 * n * n * h * Double(layersRun)
    return (matmul, attention)
}

func benchmark(name: String, model: LlavaModel, promptTokens: Int, peak: Double, repeats: Int) throws {
    let c = model.language.config, v = model.config.visionConfig
    let rows = model.rowsPerImage
    // "<bos> text… <image rows> text…": the image after a short preamble, as in llava-hf prompts.
    var tokens = [1] + (0..<8).map { 100 + $0 }
    tokens += [Int](repeating: model.config.imageTokenIndex, count: rows)
    var k = 0
    while tokens.count < promptTokens { tokens.append((k &* 7919 &+ 13) % min(c.vocabSize, model.config.imageTokenIndex)); k += 1 }
    let pixels: [Float] = (0..<(v.numChannels * v.imageSize * v.imageSize)).map { Float($0 % 255) / 128 - 1 }

    _ = try model.logits(tokens: Array(tokens.prefix(rows + 16)), pixelValues: pixels)  // warm-up
    var best = Double.infinity, bestVision = Double.infinity
    for _ in 0..<repeats {
        let visionStart = now()
        _ = try model.imageFeatures(pixelValues: pixels, images: 1)
        bestVision = min(bestVision, now() - visionStart)
        let start = now()
        _ = try model.logits(tokens: tokens, pixelValues: pixels)
        best = min(best, now() - start)
    }
    let layersRun = try model.vision.hiddenStateIndex(model.config.visionFeatureLayers.max()!)
    let lm = languageFLOPs(c, tokens: tokens.count)
    let tower = visionFLOPs(v, layersRun: layersRun)
    let p = model.projector.config
    let projector = 2.0 * Double(rows) * Double(p.inputSize * p.outputSize + (p.kind == .mlp2x ? p.outputSize * p.outputSize : 0))
    let total = lm.matmul + lm.attention + tower.matmul + tower.attention + projector
    let visionFLOPs = tower.matmul + tower.attention + projector
    let languageSeconds = best - bestVision
    emit([
        "what": name, "prompt_tokens": tokens.count, "image_rows": rows,
        "lm_params": model.language.parameters.parameterCount, "tower_params": model.vision.parameters.parameterCount,
        "seconds": best, "tokens_per_second": Double(tokens.count) / best,
        "gflop": total / 1e9, "gflops": total / best / 1e9, "percent_of_sgemm_peak": 100 * total / best / 1e9 / peak,
        "attention_gflop": (lm.attention + tower.attention) / 1e9,
        "vision_seconds": bestVision, "vision_gflops": visionFLOPs / bestVision / 1e9,
        "language_seconds": languageSeconds, "language_gflops": (lm.matmul + lm.attention) / languageSeconds / 1e9,
    ])
}

func llava(text: LlamaConfig, vision: CLIPVisionConfig, languageWeights: LlamaModel?, seed: Int) throws -> LlavaModel {
    let config = LlavaConfig(textConfig: text, visionConfig: vision, imageTokenIndex: text.vocabSize - 1)
    let trainable = ParameterBuffer(layout: LlavaModel.trainableLayout(text: text, projector: config.projector))
    fillRandom(trainable, scale: 0.02, seed: seed)
    if let languageWeights {
        // The real LM's Float32 weights into the LLaVA's trainable buffer (same names under language_model.).
        for slot in languageWeights.parameters.slots {
            let target = trainable.slot(LlavaModel.languagePrefix + slot.name)
            precondition(target.count == slot.count, "shape mismatch for \(slot.name)")
            (trainable.storage.pointer + target.offset).update(from: languageWeights.parameters.storage.pointer + slot.offset, count: slot.count)
        }
    }
    let towerWeights = CLIPVisionTower.makeParameters(vision)
    fillRandom(towerWeights, scale: 0.02, seed: seed + 1)
    return try LlavaModel(config: config, vision: try CLIPVisionTower(config: vision, parameters: towerWeights), trainable: trainable)
}

let arguments = CommandLine.arguments
let smolPath = arguments.count > 1 ? arguments[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf"
let promptTokens = 512
_ = BLASRuntime.ensureBestCore()
let peak = BLASRuntime.measureSGEMM(size: 1024, repetitions: 8)
emit(["what": "sgemm_peak", "gflops": peak, "size": 1024, "blas": BLASRuntime.describe(measure: false), "parallel_threads": Parallel.threadCount])

// (a) Tiny LLaVA: the fixture's shape (GQA, tied head) scaled to hidden 512 / 8 layers, with a
// ViT-S/16-like tower (hidden 384, 6 layers, 224 px → 196 patches).
let tinyText = LlamaConfig(hiddenSize: 512, intermediateSize: 1376, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 4,
                           rmsNormEps: 1e-5, maxPositionEmbeddings: 2048, vocabSize: 32000, tieWordEmbeddings: true)
let tinyVision = CLIPVisionConfig(hiddenSize: 384, intermediateSize: 1536, numHiddenLayers: 6, numAttentionHeads: 6, imageSize: 224, patchSize: 16)
try benchmark(name: "tiny-llava (LM 512×8, ViT 384×6/16)", model: try llava(text: tinyText, vision: tinyVision, languageWeights: nil, seed: 1),
              promptTokens: promptTokens, peak: peak, repeats: 3)

// (b) SmolLM2-135M (dequantized) + ViT-B/16-sized tower.
if FileManager.default.fileExists(atPath: smolPath) {
    let smol = try ModelLoader.loadLanguageModel(path: smolPath)
    let vitB16 = CLIPVisionConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12, imageSize: 224, patchSize: 16)
    let model = try llava(text: smol.config, vision: vitB16, languageWeights: smol, seed: 3)
    try benchmark(name: "SmolLM2-135M + ViT-B/16", model: model, promptTokens: promptTokens, peak: peak, repeats: 2)
} else {
    emit(["what": "SmolLM2-135M + ViT-B/16", "skipped": "no GGUF at \(smolPath)"])
}
