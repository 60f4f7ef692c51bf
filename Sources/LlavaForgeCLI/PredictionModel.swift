import Checkpoints
import ForgeCore
import Foundation
import Imaging
import Inference
import Models
import TensorMath

/// The model `predict` runs, resolved from `--model`: a Hugging Face folder (Llama/Qwen2/Mistral or
/// llava-hf) or a GGUF file. For GGUF, generation runs on the quantized decode engine and the
/// prompt logits (`--dump-logits`) on the dequantized Float32 `LlamaModel` — the reference numbers.
final class PredictionModel {
    let path: String
    let isGGUF: Bool
    /// Float32 decoder (folders always; GGUF only when reference logits are wanted).
    private(set) var float: LlamaModel?
    /// GGUF's fast decode engine (nil for folders).
    private(set) var quantized: QuantizedLlama?
    private(set) var llava: LlavaModel?

    var languageConfig: LlamaConfig {
        if let llava { return llava.language.config }
        if let quantized { return quantized.config }
        return float!.config
    }

    var maximumPositions: Int {
        if let llava { return llava.language.rotary.positions }
        if let quantized { return quantized.rotary.positions }
        return float!.rotary.positions
    }

    /// `needsFloat`: load the Float32 model for a GGUF too; `needsDecoder`: load GGUF's quantized engine.
    init(path: String, needsFloat: Bool, needsDecoder: Bool) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForgeError(.io, "model not found (expected a model folder or a .gguf file)", file: path)
        }
        self.path = path
        isGGUF = !isDirectory.boolValue && path.lowercased().hasSuffix(".gguf")
        if isGGUF {
            if needsDecoder { quantized = try QuantizedLlama.load(path: path) }
            if needsFloat || !needsDecoder { float = try ModelLoader.loadLanguageModel(path: path) }
            return
        }
        switch try ModelLoader.load(path: path) {
        case .language(let model): float = model
        case .llava(let model): llava = model
        case .vision:
            throw ForgeError(.usage, "a vision tower alone cannot generate text; give a language model or a llava model", file: path)
        }
    }

    /// The folder holding tokenizer and preprocessor files.
    var folder: String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        return (path as NSString).deletingLastPathComponent
    }

    /// CLIP pixel values `[1, 3, S, S]` of an image file for this llava model: the folder's
    /// preprocessor_config.json when present, else OpenAI CLIP's recipe at the tower's resolution.
    func pixelValues(imagePath: String, padToSquare: Bool) throws -> [Float] {
        guard let llava else { throw ForgeError(.usage, "--image needs a llava model; \(path) is a text-only language model", file: path) }
        let preprocessorFile = (folder as NSString).appendingPathComponent("preprocessor_config.json")
        let config = FileManager.default.fileExists(atPath: preprocessorFile)
            ? try CLIPPreprocessorConfig.load(path: preprocessorFile)
            : CLIPPreprocessorConfig.openAI(resolution: llava.config.visionConfig.imageSize)
        let image = try ImageDecoder.decode(path: imagePath)
        let pixels = CLIPPreprocessor(config: config).pixelValues(image, padToSquare: padToSquare)
        try checkPixelCount(pixels.count, source: imagePath)
        return pixels
    }

    /// Pixel values read from a file: a float32 `.npy`, or raw little-endian float32 `[1, 3, S, S]`.
    func pixelValues(file: String) throws -> [Float] {
        guard llava != nil else { throw ForgeError(.usage, "--pixel-values needs a llava model; \(path) is a text-only language model", file: path) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw ForgeError(.io, "cannot read pixel values: \(error.localizedDescription)", file: file)
        }
        let pixels: [Float]
        if data.starts(with: NumpyArrayFile.magic) {
            pixels = try NumpyArrayFile.read(path: file).values
        } else {
            guard data.count % 4 == 0 else { throw ForgeError(.badInput, "raw float32 file size \(data.count) is not a multiple of 4", file: file) }
            pixels = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        try checkPixelCount(pixels.count, source: file)
        return pixels
    }

    private func checkPixelCount(_ count: Int, source: String) throws {
        let v = llava!.config.visionConfig
        let needed = v.numChannels * v.imageSize * v.imageSize
        guard count == needed else {
            throw ForgeError(.badInput, "the image gives \(count) pixel values, the vision tower needs [\(v.numChannels), \(v.imageSize), \(v.imageSize)] = \(needed)", file: source)
        }
    }

    /// Float32 logits `[T, V]` at every prompt position (images spliced in for llava).
    func promptLogits(tokens: [Int], pixelValues: [Float]?) throws -> [Float] {
        if let llava { return try llava.logits(tokens: tokens, pixelValues: pixelValues) }
        guard let float else { throw ForgeError(.usage, "internal: the Float32 model was not loaded", file: path) }
        return try float.logits(tokens: tokens)
    }

    /// A fresh decoding session over `capacity` positions: `prefill` the prompt, then `step` one
    /// id at a time; both return the last position's logits `[V]`.
    func makeSession(capacity: Int) -> DecodeSession {
        if let llava {
            let cache = KVCache(config: llava.language.config, capacity: capacity)
            return DecodeSession(
                prefill: { tokens, pixels in try llava.prefill(tokens: tokens, pixelValues: pixels, cache: cache) },
                step: { id in try llava.language.decode(tokens: [id], cache: cache) })
        }
        if let quantized {
            let cache = quantized.makeCache(capacity: capacity)
            return DecodeSession(prefill: { tokens, _ in try quantized.decode(tokens: tokens, cache: cache) },
                                 step: { id in try quantized.decode(tokens: [id], cache: cache) })
        }
        let model = float!
        let cache = KVCache(config: model.config, capacity: capacity)
        return DecodeSession(prefill: { tokens, _ in try model.decode(tokens: tokens, cache: cache) },
                             step: { id in try model.decode(tokens: [id], cache: cache) })
    }
}

struct DecodeSession {
    let prefill: (_ tokens: [Int], _ pixelValues: [Float]?) throws -> [Float]
    let step: (_ id: Int) throws -> [Float]
}

/// What one `predict` generation did, for the stderr summary.
struct PredictionStats {
    var promptTokens = 0
    var generated: [Int] = []
    var prefillSeconds = 0.0
    var decodeSeconds = 0.0
    var finishReason = "length"

    /// Generated tokens per second over prefill-to-last-token (the first token comes from the prefill).
    var tokensPerSecond: Double {
        let seconds = prefillSeconds + decodeSeconds
        return seconds > 0 ? Double(generated.count) / seconds : 0
    }

    var summary: String {
        let decodeRate = generated.count > 1 && decodeSeconds > 0 ? Double(generated.count - 1) / decodeSeconds : 0
        let prefillRate = prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0
        return String(format: "prompt tokens: %d (prefill %.3f s, %.1f tok/s), generated tokens: %d, %.2f tok/s (decode %.2f tok/s), finish: %@",
                      promptTokens, prefillSeconds, prefillRate, generated.count, tokensPerSecond, decodeRate, finishReason)
    }
}

/// The generation loop: prefill, then sample/argmax one id at a time until a stop id (not
/// emitted), `maxTokens`, or the model's last position.
func runGeneration(session: DecodeSession, prompt: [Int], pixelValues: [Float]?, maxTokens: Int, sampling: SamplingOptions,
                   stopIDs: Set<Int>, onToken: (Int) -> Void) throws -> PredictionStats {
    var stats = PredictionStats(promptTokens: prompt.count)
    guard maxTokens > 0 else { return stats }
    var sampler = Sampler(sampling)
    let start = Date()
    var logits = try session.prefill(prompt, pixelValues)
    stats.prefillSeconds = Date().timeIntervalSince(start)
    let decodeStart = Date()
    var history = prompt
    while true {
        let id = sampler.next(logits: logits, history: history)
        if stopIDs.contains(id) { stats.finishReason = "stop"; break }
        stats.generated.append(id)
        history.append(id)
        onToken(id)
        if stats.generated.count >= maxTokens { break }
        logits = try session.step(id)
    }
    stats.decodeSeconds = Date().timeIntervalSince(decodeStart)
    return stats
}
