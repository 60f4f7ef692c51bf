import Checkpoints
import ForgeCore
import Foundation
import Imaging
import Inference
import Models
import TensorMath

/// A model resolved from a path, as `predict`, `chat` and `serve` take `--model`: a Hugging Face
/// folder (Llama/Qwen2/Mistral, or llava-hf / our trainer's LlavaForConditionalGeneration) or a
/// GGUF file. For GGUF, generation runs on the quantized decode engine and the prompt logits
/// (`predict --dump-logits`) on the dequantized Float32 `LlamaModel` — the reference numbers.
public final class ResolvedModel: @unchecked Sendable {
    public let path: String
    public let isGGUF: Bool
    /// Float32 decoder (folders always; GGUF only when reference logits are wanted).
    public private(set) var float: LlamaModel?
    /// GGUF's fast decode engine (nil for folders).
    public private(set) var quantized: QuantizedLlama?
    public private(set) var llava: LlavaModel?
    /// Vision tower + projector runs are serialized (they may be called from several request threads).
    private let imageLock = NSLock()

    public var languageConfig: LlamaConfig {
        if let llava { return llava.language.config }
        if let quantized { return quantized.config }
        return float!.config
    }

    public var maximumPositions: Int { engine.maximumPositions }

    /// What generation steps: the quantized engine for GGUF, else the float decoder (llava's LM).
    public var engine: DecoderEngine {
        if let quantized { return quantized }
        if let llava { return llava.language }
        return float!
    }

    /// `needsFloat`: load the Float32 model for a GGUF too; `needsDecoder`: load GGUF's quantized engine.
    public init(path: String, needsFloat: Bool = false, needsDecoder: Bool = true) throws {
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
    public var folder: String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        return (path as NSString).deletingLastPathComponent
    }

    /// A short name for the model (`/v1/models`): the file name without `.gguf`, or the folder name.
    public var displayName: String {
        let last = (path as NSString).lastPathComponent
        return isGGUF ? (last as NSString).deletingPathExtension : last
    }

    // MARK: - Images

    /// The CLIP preprocessing of this llava model: the folder's preprocessor_config.json when
    /// present, else OpenAI CLIP's recipe at the tower's resolution.
    public func preprocessor() throws -> CLIPPreprocessor {
        guard let llava else { throw ForgeError(.usage, "images need a llava model; \(path) is a text-only language model", file: path) }
        let preprocessorFile = (folder as NSString).appendingPathComponent("preprocessor_config.json")
        let config = FileManager.default.fileExists(atPath: preprocessorFile)
            ? try CLIPPreprocessorConfig.load(path: preprocessorFile)
            : CLIPPreprocessorConfig.openAI(resolution: llava.config.visionConfig.imageSize)
        return CLIPPreprocessor(config: config)
    }

    /// CLIP pixel values `[1, 3, S, S]` of a decoded image.
    public func pixelValues(image: RGBImage, padToSquare: Bool = false, source: String) throws -> [Float] {
        let pixels = try preprocessor().pixelValues(image, padToSquare: padToSquare)
        try checkPixelCount(pixels.count, source: source)
        return pixels
    }

    /// CLIP pixel values `[1, 3, S, S]` of an image file for this llava model.
    public func pixelValues(imagePath: String, padToSquare: Bool) throws -> [Float] {
        guard llava != nil else { throw ForgeError(.usage, "--image needs a llava model; \(path) is a text-only language model", file: path) }
        return try pixelValues(image: ImageDecoder.decode(path: imagePath), padToSquare: padToSquare, source: imagePath)
    }

    /// Pixel values read from a file: a float32 `.npy`, or raw little-endian float32 `[1, 3, S, S]`.
    public func pixelValues(file: String) throws -> [Float] {
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

    /// Projected features `[rowsPerImage, hidden]` of one image's pixel values — what is spliced
    /// into the prompt at its placeholder rows.
    public func imageFeatures(pixelValues: [Float]) throws -> [Float] {
        guard let llava else { throw ForgeError(.usage, "images need a llava model; \(path) is a text-only language model", file: path) }
        imageLock.lock()
        defer { imageLock.unlock() }
        return try llava.imageFeatures(pixelValues: pixelValues, images: 1)
    }

    // MARK: - predict's paths

    /// Float32 logits `[T, V]` at every prompt position (images spliced in for llava).
    public func promptLogits(tokens: [Int], pixelValues: [Float]?) throws -> [Float] {
        if let llava { return try llava.logits(tokens: tokens, pixelValues: pixelValues) }
        guard let float else { throw ForgeError(.usage, "internal: the Float32 model was not loaded", file: path) }
        return try float.logits(tokens: tokens)
    }

    /// A fresh decoding session over `capacity` positions: `prefill` the prompt, then `step` one
    /// id at a time; both return the last position's logits `[V]`.
    public func makeSession(capacity: Int) -> DecodeSession {
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

/// One sequence's decoding: `prefill` the prompt (and image pixels), then `step` one id at a time.
public struct DecodeSession {
    public let prefill: (_ tokens: [Int], _ pixelValues: [Float]?) throws -> [Float]
    public let step: (_ id: Int) throws -> [Float]
}
