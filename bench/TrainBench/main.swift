// Training-throughput driver of bench/train_bench.sh: full LLaVA training steps (frozen CLIP tower
// forward, projector + LLaMA forward, fused loss, backward, clipping, AdamW) on random weights,
// fp32, in the shapes bench/train_bench.py gives PyTorch. Prints one JSON object.
//
//   TrainBench --config tiny|smol [--steps 6] [--warmup 1] [--tower step|cached] [--profile]
//   TrainBench --config tiny|smol --kernels [--repeat 15]   # one layer's kernels alone (Kernels.swift)
//   [--threads N] (our workers) [--attention-block R] (causal query block rows) for either mode
//
// tokens/s = batch·sequence / median step time (steps after the warm-up). Model FLOPs per step
// (the same formula as the Python side): 3 × the forward's matrix products of the trainable part
// (forward, d(input), d(weight)), causal attention QKᵀ/AV (T(T+1)/2 scored pairs) × 3, plus the
// frozen tower's forward when it runs every step. Peak memory = ru_maxrss of this process.
import Dispatch
import Foundation
import Models
import TensorMath
import Training

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

struct BenchConfig {
    var name: String
    var text: LlamaConfig
    var vision: CLIPVisionConfig
    var batch: Int
    var sequenceLength: Int
}

func config(named name: String) -> BenchConfig {
    switch name {
    case "tiny":
        // 59M trainable (LM 512 × 8 layers, MHA, untied 32k vocabulary + mlp2x projector), ViT 384 × 6 / 16 px (11M, frozen).
        return BenchConfig(name: "tiny", text: LlamaConfig(hiddenSize: 512, intermediateSize: 1376, numHiddenLayers: 8, numAttentionHeads: 8,
                                                        rmsNormEps: 1e-5, maxPositionEmbeddings: 2048, vocabSize: 32000, tieWordEmbeddings: false),
                           vision: CLIPVisionConfig(hiddenSize: 384, intermediateSize: 1536, numHiddenLayers: 6, numAttentionHeads: 6,
                                                    imageSize: 224, patchSize: 16),
                           batch: 4, sequenceLength: 512)
    case "smol":
        // SmolLM2-135M's shape (tied 49k vocabulary, GQA 9/3) + a ViT-B/16-sized tower (86M, frozen).
        return BenchConfig(name: "smol", text: LlamaConfig(hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
                                                        numKeyValueHeads: 3, rmsNormEps: 1e-5, ropeTheta: 100_000, maxPositionEmbeddings: 2048,
                                                        vocabSize: 49152, tieWordEmbeddings: true),
                           vision: CLIPVisionConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
                                                    imageSize: 224, patchSize: 16),
                           batch: 1, sequenceLength: 512)
    default:
        FileHandle.standardError.write("unknown --config \(name) (tiny | smol)\n".data(using: .utf8)!)
        exit(2)
    }
}

/// Small deterministic weights; norm scales at 1 (as ForwardBench).
func fillRandom(_ buffer: ParameterBuffer, scale: Float, seed: Int) {
    let p = buffer.storage.pointer
    for i in 0..<buffer.totalCount {
        let hashed = (i &* 2_654_435_761 &+ seed &* 40_503) & 0xFFFF
        p[i] = (Float(hashed) / 32_768 - 1) * scale
    }
    for slot in buffer.slots where slot.shape.count == 1 && (slot.name.contains("norm") || slot.name.contains("layrnorm")) {
        (p + slot.offset).update(repeating: 1, count: slot.count)
    }
}

/// The Python side builds the same sequences: BOS, 8 text tokens, the image rows, text to the end;
/// labels −100 up to and including the image, the text after it trained.
func sequence(_ b: Int, length: Int, imageRows: Int, imageToken: Int) -> (tokens: [Int], labels: [Int]) {
    var tokens = [1] + (0..<8).map { 100 + $0 }
    tokens += [Int](repeating: imageToken, count: imageRows)
    let prefix = tokens.count
    var k = 0
    while tokens.count < length { tokens.append(((k + 1000 * b) &* 7919 &+ 13) % imageToken); k += 1 }
    let labels = tokens.enumerated().map { $0.offset < prefix ? -100 : $0.element }
    return (tokens, labels)
}

func modelFLOPs(_ c: BenchConfig, projector p: ProjectorConfig, imageRows: Int, towerEveryStep: Bool) -> Double {
    let t = c.text, tokens = Double(c.sequenceLength)
    let perLayer = Double(t.hiddenSize * (t.qWidth + 2 * t.kvWidth) + t.qWidth * t.hiddenSize + 3 * t.hiddenSize * t.intermediateSize)
    let lmMatmul = 2 * tokens * (perLayer * Double(t.numHiddenLayers) + Double(t.vocabSize * t.hiddenSize))
    let pairs = tokens * (tokens + 1) / 2
    let attention = 4 * pairs * Double(t.qWidth) * Double(t.numHiddenLayers)
    let rows = Double(imageRows)
    let projector = 2 * rows * (3 * Double(p.outputSize * p.outputSize) + 2 * Double(p.inputSize * p.outputSize))
    var perSequence = 3 * (lmMatmul + attention) + projector
    if towerEveryStep {
        let v = c.vision, n = Double(v.positionCount), h = Double(v.hiddenSize)
        let layersRun = Double(v.numHiddenLayers - 1)  // feature layer −2: the last layer is not needed
        perSequence += 2 * (n * (4 * h * h + 2 * h * Double(v.intermediateSize)) * layersRun + Double(v.patchCount * v.patchVectorLength) * h)
        perSequence += 4 * n * n * h * layersRun
    }
    return perSequence * Double(c.batch)
}

var arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ fallback: String) -> String {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return fallback }
    return arguments[i + 1]
}
let bench = config(named: option("--config", "tiny"))
let steps = Int(option("--steps", "6"))!
let warmup = Int(option("--warmup", "1"))!
let towerEveryStep = option("--tower", "step") == "step"
let profile = arguments.contains("--profile")

// Our workers (attention items, element-wise ops); OpenBLAS's own threads follow OPENBLAS_NUM_THREADS.
if let threads = Int(option("--threads", "")) { Parallel.threadCount = threads }
if let rows = Int(option("--attention-block", "")) { Attention.causalBlockRows = rows }
_ = BLASRuntime.ensureBestCore()
if arguments.contains("--kernels") {
    let report = kernelBench(bench, repetitions: Int(option("--repeat", "15"))!, profile: profile)
    print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
    exit(0)
}
let peak = BLASRuntime.measureSGEMM(size: 1024, repetitions: 5)

let llavaConfig = LlavaConfig(textConfig: bench.text, visionConfig: bench.vision, imageTokenIndex: bench.text.vocabSize - 1)
let trainable = ParameterBuffer(layout: LlavaModel.trainableLayout(text: bench.text, projector: llavaConfig.projector))
fillRandom(trainable, scale: 0.02, seed: 1)
let towerWeights = CLIPVisionTower.makeParameters(bench.vision)
fillRandom(towerWeights, scale: 0.02, seed: 2)
let model = try LlavaModel(config: llavaConfig, vision: try CLIPVisionTower(config: bench.vision, parameters: towerWeights), trainable: trainable)
var options = TrainerOptions(totalSteps: 1000)
options.learningRate = 1e-5
options.warmupRatio = 0
options.maxGradNorm = 1.0
let trainer = try Trainer(model: model, options: options)

let v = bench.vision
let pixels: [Float] = (0..<(v.numChannels * v.imageSize * v.imageSize)).map { Float($0 % 255) / 128 - 1 }
let rows = model.rowsPerImage
let texts = (0..<bench.batch).map { sequence($0, length: bench.sequenceLength, imageRows: rows, imageToken: llavaConfig.imageTokenIndex) }
let batchPixels = [[Float]](repeating: pixels, count: bench.batch).flatMap { $0 }
let cachedFeatures = towerEveryStep ? nil : try model.visionFeatures(pixelValues: pixels, images: 1)

var stepSeconds: [Double] = []
var losses: [Double] = []
for step in 0..<(warmup + steps) {
    if profile && step == warmup { OpProfile.reset(); OpProfile.isEnabled = true }
    let start = now()
    // The batch's images through the tower together, as PyTorch's side runs pixel_values [batch, 3, H, W].
    let features = try cachedFeatures.map { [[Float]](repeating: $0, count: texts.count) } ?? OpProfile.measure("tower.forward") {
        let all = try batchPixels.withUnsafeBufferPointer {
            try model.vision.features(pixels: $0.baseAddress!, images: texts.count, layers: llavaConfig.visionFeatureLayers,
                                      strategy: llavaConfig.visionFeatureSelectStrategy)
        }
        let perImage = all.count / texts.count
        return (0..<texts.count).map { Array(all[($0 * perImage)..<(($0 + 1) * perImage)]) }
    }
    let batch = texts.enumerated().map { TrainingSequence(tokens: $0.element.tokens, labels: $0.element.labels, features: features[$0.offset]) }
    let report = try trainer.train(microBatches: [batch])
    let seconds = now() - start
    if step >= warmup { stepSeconds.append(seconds) }
    losses.append(report.loss)
}
OpProfile.isEnabled = false

var usage = rusage()
getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
let sorted = stepSeconds.sorted()
let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
let tokensPerStep = bench.batch * bench.sequenceLength
let flops = modelFLOPs(bench, projector: llavaConfig.projector, imageRows: rows, towerEveryStep: towerEveryStep)
var result: [String: Any] = [
    "impl": "llava-forge", "config": bench.name, "batch": bench.batch, "sequence_length": bench.sequenceLength,
    "tower": towerEveryStep ? "step" : "cached",
    "trainable_params": trainable.parameterCount, "frozen_params": towerWeights.parameterCount,
    "step_seconds": stepSeconds, "median_step_seconds": median, "tokens_per_second": Double(tokensPerStep) / median,
    "losses": losses, "peak_rss_bytes": usage.ru_maxrss * 1024,
    "model_gflop_per_step": flops / 1e9, "gflops": flops / median / 1e9,
    "sgemm_peak_gflops": peak, "percent_of_sgemm_peak": 100 * flops / median / 1e9 / peak,
    "threads": ["parallel": Parallel.threadCount, "blas": BLASRuntime.threadCount], "blas": BLASRuntime.describe(),
    "loadavg": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8).split(separator: " ").prefix(3).joined(separator: " ")) ?? "?",
]
if profile {
    let total = stepSeconds.reduce(0, +)
    result["profile_seconds_per_step"] = OpProfile.snapshot().prefix(40).map { e -> [String: Any] in
        var entry: [String: Any] = ["name": e.name, "calls_per_step": Double(e.calls) / Double(steps),
                                    "seconds_per_step": e.seconds / Double(steps), "percent_of_step": 100 * e.seconds / total]
        if e.flops > 0 { entry["gflops"] = e.flops / e.seconds / 1e9 }
        return entry
    }
}
let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
print(String(decoding: data, as: UTF8.self))
