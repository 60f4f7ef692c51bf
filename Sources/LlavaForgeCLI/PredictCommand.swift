import ArgumentParser
import Checkpoints
import ForgeCore
import Foundation
import Inference
import Models
import Serving
import Tokenizers

/// `llava-forge predict`: the engine's debug surface — one prompt (and image) through a model,
/// greedy or sampled continuation streamed to stdout, and optionally the prompt logits as .npy.
struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a prompt (and an image) through a model: stream the continuation, optionally dump the prompt logits.",
        discussion: """
        --model is a Hugging Face folder (Llama, Qwen2, Mistral, or llava-hf LlavaForConditionalGeneration) \
        or a GGUF file. For GGUF the continuation is decoded by the quantized engine and --dump-logits \
        uses the dequantized Float32 model (the reference logits); both give the same greedy ids.

        Template: by default (auto) the named template matching the tokenizer's own chat template \
        (ChatML → chatml, or chatml-smollm when it carries SmolLM2's system prompt, as the SmolLM2 \
        GGUF does; USER:/ASSISTANT: → llava-hf); llava-hf for a llava folder without one; otherwise \
        none. `none` feeds the prompt as written, with the tokenizer's own BOS rule.

        Images (llava models): each `<image>` in the prompt becomes the image's feature rows; with \
        --image and no `<image>`, "<image>\\n" is put before the prompt. `<image>` without --image, \
        or --image with a text-only model, is an error.

        The summary line on stderr gives prompt tokens, generated tokens and tokens/s. Exit code 1 \
        on bad input, 64 on bad usage.
        """)

    @Option(name: .long, help: "A model folder (config.json + safetensors + tokenizer) or a .gguf file.")
    var model: String

    @Option(name: .long, help: "An image (JPEG/PNG) for a llava model.")
    var image: String?

    @Option(name: .long, help: "The prompt (the user turn when a template is used).")
    var prompt: String?

    @Option(name: .long, help: "Instead of --prompt: the prompt's token ids as a JSON array, used as given (image rows already expanded to the image token id).")
    var promptIds: String?

    @Option(name: .long, help: "Instead of --image: pixel values [1, 3, S, S] as a float32 .npy or raw little-endian float32 file.")
    var pixelValues: String?

    @Option(name: .long, help: "auto, none, or one of: \(ChatTemplateName.allCases.map(\.rawValue).joined(separator: ", ")).")
    var template: String = "auto"

    @Option(name: .long, help: "System prompt for the template (default: the template's own).")
    var system: String?

    @Option(name: .long, help: "Most tokens to generate (0: only the prompt forward, for --dump-logits).")
    var maxTokens: Int = 128

    @Option(name: .long, help: "0 = greedy (argmax); otherwise sample at this temperature.")
    var temperature: Float = 0

    @Option(name: .long, help: "Top-k for sampling (0 = off).")
    var topK: Int = 0

    @Option(name: .long, help: "Top-p for sampling (1 = off).")
    var topP: Float = 1

    @Option(name: .long, help: "Sampling seed.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Do not stop at EOS / end-of-turn tokens.")
    var ignoreEos = false

    @Flag(name: .long, help: "Pad the image to a square with the CLIP mean colour first (original LLaVA's pad).")
    var padToSquare = false

    @Flag(name: .long, help: "Print the generated token ids as a JSON array instead of the text.")
    var printIds = false

    @Option(name: .long, help: "Write the Float32 logits at every prompt position, [prompt tokens, vocab], to this NumPy .npy file.")
    var dumpLogits: String?

    func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
        if image != nil, pixelValues != nil { throw ValidationError("give at most one of --image and --pixel-values") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0") }
    }

    func run() throws {
        try runReportingErrors {
            let sampling = SamplingOptions(temperature: temperature, topK: topK, topP: topP, seed: seed)
            try sampling.validate()
            if let prompt, prompt.contains(ChatTemplate.imageToken), image == nil, pixelValues == nil {
                throw ForgeError(.usage, "the prompt has \(ChatTemplate.imageToken) but no --image was given")
            }
            let loaded = try ResolvedModel(path: model, needsFloat: dumpLogits != nil, needsDecoder: maxTokens > 0)
            let pixels: [Float]?
            if let image {
                pixels = try loaded.pixelValues(imagePath: image, padToSquare: padToSquare)
            } else if let pixelValues {
                pixels = try loaded.pixelValues(file: pixelValues)
            } else {
                pixels = nil
            }

            let tokenizer: Tokenizer?
            if prompt != nil {
                tokenizer = try TokenizerLoader.load(model: model)
            } else {
                tokenizer = try? TokenizerLoader.load(model: model)
            }
            var chatTemplate: ChatTemplate?
            let ids: [Int]
            if let promptIds {
                ids = try Self.parseIDs(promptIds)
            } else {
                chatTemplate = try resolveTemplate(tokenizer: tokenizer!, isLlava: loaded.llava != nil)
                ids = try encodePrompt(prompt!, tokenizer: tokenizer!, template: chatTemplate, model: loaded, hasImage: pixels != nil)
            }
            guard !ids.isEmpty else { throw ForgeError(.usage, "the prompt encodes to no tokens") }
            guard ids.count < loaded.maximumPositions || (maxTokens == 0 && ids.count == loaded.maximumPositions) else {
                throw ForgeError(.usage, "the prompt has \(ids.count) tokens; the model attends over at most \(loaded.maximumPositions) positions", file: model)
            }

            if let dumpLogits {
                let logits = try loaded.promptLogits(tokens: ids, pixelValues: pixels)
                try NumpyArrayFile.write(logits, shape: [ids.count, loaded.languageConfig.vocabSize], to: dumpLogits)
            }
            guard maxTokens > 0 else {
                printErr("prompt tokens: \(ids.count), generated tokens: 0")
                return
            }

            let budget = min(maxTokens, loaded.maximumPositions - ids.count)
            let stops = ignoreEos ? [] : stopIDs(tokenizer: tokenizer, template: chatTemplate, config: loaded.languageConfig)
            let streamText = !printIds && tokenizer != nil
            let decoder = tokenizer?.makeStreamingDecoder(skipSpecialTokens: true)
            let out = FileHandle.standardOutput
            let stats = try runGeneration(session: loaded.makeSession(capacity: ids.count + budget), prompt: ids, pixelValues: pixels,
                                          maxTokens: budget, sampling: sampling, stopIDs: stops) { id in
                if streamText, let piece = decoder?.push(id), !piece.isEmpty { out.write(Data(piece.utf8)) }
            }
            if streamText {
                out.write(Data(((decoder?.finish() ?? "") + "\n").utf8))
            } else {
                print("[" + stats.generated.map(String.init).joined(separator: ",") + "]")
            }
            printErr(stats.summary)
        }
    }

    /// `auto` → the tokenizer's own chat template when it matches a named one, llava-hf for llava
    /// models, else none; nil means none.
    func resolveTemplate(tokenizer: Tokenizer, isLlava: Bool) throws -> ChatTemplate? {
        switch template {
        case "none": return nil
        case "auto":
            if let jinja = tokenizer.chatTemplate, let inferred = ChatTemplate.inferred(fromJinja: jinja) { return inferred }
            return isLlava ? ChatTemplate(.llavaHF) : nil
        default: return try ChatTemplate.named(template)
        }
    }

    /// The prompt's ids: wrapped in the template, encoded with the tokenizer's own BOS rule, and
    /// (llava) each `<image>` expanded to the image's feature rows of the image token id.
    func encodePrompt(_ text: String, tokenizer: Tokenizer, template: ChatTemplate?, model: ResolvedModel, hasImage: Bool) throws -> [Int] {
        let placeholder = ChatTemplate.imageToken
        let placeholders = text.components(separatedBy: placeholder).count - 1
        var user = text
        if hasImage {
            guard placeholders <= 1 else {
                throw ForgeError(.usage, "the prompt has \(placeholders) \(placeholder) placeholders but one image was given")
            }
            if placeholders == 0 { user = placeholder + "\n" + text }
        }
        var messages: [ChatMessage] = []
        if let system { messages.append(.system(system)) }
        messages.append(.user(user))
        let rendered = try template.map { try $0.generationPrompt(messages).text } ?? user
        guard let llava = model.llava else { return tokenizer.encode(rendered) }
        let marker = -200
        let encoded = tokenizer.encodeLLaVA(rendered, imageTokenId: marker).ids
        var ids: [Int] = []
        for id in encoded {
            if id == marker {
                ids += [Int](repeating: llava.config.imageTokenIndex, count: llava.rowsPerImage)
            } else {
                ids.append(id)
            }
        }
        return ids
    }

    /// EOS ids of the tokenizer and config, plus the end-of-turn token of a ChatML template.
    func stopIDs(tokenizer: Tokenizer?, template: ChatTemplate?, config: LlamaConfig) -> Set<Int> {
        ChatModel.stopIDs(tokenizer: tokenizer, template: template, config: config)
    }

    static func parseIDs(_ json: String) throws -> [Int] {
        guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8)), let array = value as? [Any],
              let ids = array as? [Int], ids.count == array.count else {
            throw ForgeError(.usage, "--prompt-ids must be a JSON array of integers, got \(json.prefix(80))")
        }
        return ids
    }
}
