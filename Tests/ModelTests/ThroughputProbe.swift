import XCTest
import Foundation
import TensorMath
@testable import Models

/// A light, opt-in throughput probe (not a benchmark suite): `LLAVA_FORGE_MODEL_PROBE=1 swift test
/// --filter ThroughputProbe`. Skipped otherwise, so CI time is unaffected.
final class ThroughputProbe: XCTestCase {
    override func setUpWithError() throws {
        guard ProcessInfo.processInfo.environment["LLAVA_FORGE_MODEL_PROBE"] == "1" else {
            throw XCTSkip("set LLAVA_FORGE_MODEL_PROBE=1 to measure forward throughput")
        }
    }

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func testSmolLM2ForwardTokensPerSecond() throws {
        let path = SmolLM2GGUFTests.ggufPath
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("no SmolLM2 GGUF at \(path)") }
        print(BLASRuntime.describe(measure: true))
        var model: LlamaModel!
        let load = try seconds { model = try ModelLoader.loadLanguageModel(path: path) }
        let prompt = (0..<128).map { ($0 * 7919 + 13) % model.config.vocabSize }
        _ = try model.logits(tokens: Array(prompt.prefix(16)))  // warm-up
        let repeats = 3
        let full = try seconds { for _ in 0..<repeats { _ = try model.logits(tokens: prompt) } } / Double(repeats)
        let cache = KVCache(config: model.config, capacity: 256)
        let prefill = try seconds { _ = try model.decode(tokens: prompt, cache: cache) }
        let steps = 32
        let decode = try seconds { for i in 0..<steps { _ = try model.decode(tokens: [prompt[i]], cache: cache) } }
        // 2·params FLOPs per token for the matmuls (tied head counted once), ignoring attention.
        let c = model.config
        let perLayer = c.hiddenSize * (c.qWidth + 2 * c.kvWidth) + c.qWidth * c.hiddenSize + 3 * c.hiddenSize * c.intermediateSize
        let flopsPerToken = 2.0 * Double(perLayer * c.numHiddenLayers + c.vocabSize * c.hiddenSize)
        print(String(format: "SmolLM2-135M: load %.2f s; full forward of 128 tokens %.3f s = %.0f tokens/s (%.1f GFLOP/s); cached prefill %.0f tokens/s; decode %.1f tokens/s",
                     load, full, 128 / full, flopsPerToken * 128 / full / 1e9, 128 / prefill, Double(steps) / decode))
    }

    func testViTB16TowerImagesPerSecond() throws {
        let config = CLIPVisionConfig(hiddenSize: 768, intermediateSize: 3072, numHiddenLayers: 12, numAttentionHeads: 12,
                                      imageSize: 224, patchSize: 16)
        let buffer = CLIPVisionTower.makeParameters(config)
        for i in 0..<buffer.totalCount {
            let hashed: Int = (i &* 2_654_435_761) % 1000
            buffer.storage.pointer[i] = Float(hashed) / 50_000 - 0.01
        }
        let tower = try CLIPVisionTower(config: config, parameters: buffer)
        let pixels: [Float] = (0..<(3 * 224 * 224)).map { (index: Int) -> Float in Float(index % 255) / 128 - 1 }
        _ = try pixels.withUnsafeBufferPointer { try tower.features(pixels: $0.baseAddress!, layers: [-2], strategy: .default) }
        let repeats = 3
        let time = try seconds {
            for _ in 0..<repeats { _ = try pixels.withUnsafeBufferPointer { try tower.features(pixels: $0.baseAddress!, layers: [-2], strategy: .default) } }
        } / Double(repeats)
        let h = config.hiddenSize, n = config.positionCount
        let perLayer: Int = 4 * h * h + 2 * h * config.intermediateSize
        let macs: Int = n * (11 * perLayer + config.patchVectorLength * h)
        let flops = 2.0 * Double(macs)
        print(String(format: "ViT-B/16 tower (11 of 12 layers for feature layer -2): %.3f s per image = %.1f GFLOP/s", time, flops / time / 1e9))
    }
}

final class GemmShapeProbe: XCTestCase {
    func testSingleRowGemmVersusGemv() throws {
        guard ProcessInfo.processInfo.environment["LLAVA_FORGE_MODEL_PROBE"] == "1" else { throw XCTSkip("probe") }
        let n = 49152, k = 576
        let w = FloatBuffer(count: n * k), x = FloatBuffer(count: 4 * k), y = FloatBuffer(count: 4 * n)
        for i in 0..<(n * k) { w.pointer[i] = Float(i % 13) * 0.01 }
        func time(_ label: String, _ body: () -> Void) {
            body()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<10 { body() }
            print(label, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e7, "ms")
        }
        time("gemm m=1") { BLAS.gemm(.none, .transpose, m: 1, n: n, k: k, a: x.pointer, lda: k, b: w.pointer, ldb: k, c: y.pointer, ldc: n) }
        time("gemv") { BLAS.gemv(.none, m: n, n: k, a: w.pointer, lda: k, x: x.pointer, y: y.pointer) }
        time("gemm m=4") { BLAS.gemm(.none, .transpose, m: 4, n: n, k: k, a: x.pointer, lda: k, b: w.pointer, ldb: k, c: y.pointer, ldc: n) }
        let n2 = 1536
        time("gemm m=1 1536x576") { BLAS.gemm(.none, .transpose, m: 1, n: n2, k: k, a: x.pointer, lda: k, b: w.pointer, ldb: k, c: y.pointer, ldc: n2) }
        time("gemv 1536x576") { BLAS.gemv(.none, m: n2, n: k, a: w.pointer, lda: k, x: x.pointer, y: y.pointer) }
    }
}
