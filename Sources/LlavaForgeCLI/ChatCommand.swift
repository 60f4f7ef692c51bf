import ArgumentParser
import ForgeCore
import Foundation
import Imaging
import Inference
import Serving
import Tokenizers

/// `llava-forge chat`: a multi-turn REPL like LLaVA's CLI, reading stdin line by line (so it can
/// be driven by piping lines in), streaming each answer.
struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk to a model: a multi-turn REPL on stdin, answers streamed (images for llava models).",
        discussion: """
        Each line is a user turn. With --image the image is attached to the first turn of the \
        conversation (llava models). Commands:
          /image PATH   use another image and start a new conversation
          /reset        start a new conversation (the image stays)
          /exit         quit (end of input quits too)
        Answers are printed after "ASSISTANT: ". The conversation grows turn by turn; when it no \
        longer fits the model's context the turn is refused (use /reset).
        """)

    @Option(name: .long, help: "A .gguf file or a model folder.")
    var model: String

    @Option(name: .long, help: "An image (JPEG/PNG) for the first turn (llava models).")
    var image: String?

    @Option(name: .long, help: "System prompt (default: the template's own, if any).")
    var system: String?

    @Option(name: .long, help: "auto or a template name.")
    var template: String = "auto"

    @Option(name: .long, help: "Most tokens per answer.")
    var maxTokens: Int = 512

    @Option(name: .long, help: "0 = greedy; otherwise sample at this temperature.")
    var temperature: Float = 0.2

    @Option(name: .long, help: "Top-p for sampling (1 = off).")
    var topP: Float = 1

    @Option(name: .long, help: "Sampling seed.")
    var seed: UInt64 = 0

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("--max-tokens must be ≥ 1") }
    }

    func run() throws {
        try runReportingErrors {
            let sampling = SamplingOptions(temperature: temperature, topP: topP, seed: seed)
            try sampling.validate()
            let chatModel = try ChatModel(path: model, template: template)
            var session = ChatSession(model: chatModel, system: system, sampling: sampling, maxTokens: maxTokens)
            if let image { try session.setImage(path: image) }
            let interactive = isatty(STDIN_FILENO) != 0
            let out = FileHandle.standardOutput
            func say(_ text: String) { out.write(Data(text.utf8)) }
            if interactive {
                printErr("chat: \(chatModel.model.displayName) (\(chatModel.template.name.rawValue)); /image PATH, /reset, /exit")
            }
            while true {
                if interactive { say("USER: ") }
                guard let line = readLine(strippingNewline: true) else {
                    if interactive { say("\n") }
                    break
                }
                let input = line.trimmingCharacters(in: .whitespaces)
                if input.isEmpty { continue }
                if input == "/exit" || input == "/quit" { break }
                if input == "/reset" {
                    session.reset()
                    say("(new conversation)\n")
                    continue
                }
                if input.hasPrefix("/image") {
                    let path = input.dropFirst("/image".count).trimmingCharacters(in: .whitespaces)
                    do {
                        guard !path.isEmpty else { throw ForgeError(.usage, "usage: /image PATH") }
                        try session.setImage(path: path)
                        say("(new conversation with \(path))\n")
                    } catch let e as ForgeError {
                        printErr("error: \(e.description)")
                    }
                    continue
                }
                say("ASSISTANT: ")
                do {
                    let result = try session.send(input) { piece in say(piece) }
                    say("\n")
                    if result.finishReason == .length { printErr("(the answer was cut at \(result.tokens.count) tokens)") }
                } catch let e as ForgeError {
                    say("\n")
                    printErr("error: \(e.description)")
                }
            }
        }
    }
}

/// A conversation with one model: turns so far, the image of its first turn, the generator (with a
/// prefix cache, so each turn only prefills what is new).
struct ChatSession {
    let model: ChatModel
    let system: String?
    let sampling: SamplingOptions
    let maxTokens: Int
    let generator: TextGenerator
    private(set) var turns: [ChatTurn] = []
    private(set) var image: RGBImage?

    init(model: ChatModel, system: String?, sampling: SamplingOptions, maxTokens: Int) {
        self.model = model
        self.system = system
        self.sampling = sampling
        self.maxTokens = maxTokens
        let tokenizer = model.tokenizer
        generator = TextGenerator(engine: model.engine, prefixCache: PrefixCache(config: model.engine.config, capacityBytes: 64 << 20),
                                  detokenize: { tokenizer.decode($0, skipSpecialTokens: true) })
    }

    mutating func setImage(path: String) throws {
        guard model.maxImages > 0 else {
            throw ForgeError(.usage, "\(model.model.path) is a text-only model; images need a llava model", file: path)
        }
        image = try ImageDecoder.decode(path: path)
        reset()
    }

    mutating func reset() { turns = [] }

    /// Sends one user turn; streams the answer's text to `onText`; keeps both turns on success.
    mutating func send(_ text: String, onText: @escaping (String) -> Void) throws -> GenerationResult {
        var parts: [ContentPart] = [.text(text)]
        if turns.isEmpty, let image { parts.insert(.image(image), at: 0) }
        var conversation = turns
        conversation.append(ChatTurn(role: .user, parts: parts))
        let messages = (system.map { [ChatTurn(role: .system, text: $0)] } ?? []) + conversation
        let prompt: PreparedPrompt
        do { prompt = try model.prepare(messages) } catch let e as PromptError {
            throw ForgeError(.usage, e.kind == .contextLength ? "\(e.message); /reset starts a new conversation" : e.message)
        }
        let request = GenerationRequest(prompt: prompt.ids, maxTokens: min(maxTokens, model.maximumPositions - prompt.ids.count),
                                        sampling: sampling, stopTokenIDs: model.stopTokenIDs, embeddingSplice: prompt.splice)
        let result = try generator.generate(request) { event in
            if !event.text.isEmpty { onText(event.text) }
            return true
        }
        conversation.append(ChatTurn(role: .assistant, text: result.text ?? model.detokenize(result.tokens)))
        turns = conversation
        return result
    }
}
