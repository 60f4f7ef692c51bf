import ForgeCore
import Foundation
import Imaging
import Inference
import Models
import Tokenizers

/// One part of a chat message's content (OpenAI's content parts): text, or an image already
/// decoded from its `data:` URL.
public enum ContentPart: Sendable, Equatable {
    case text(String)
    case image(RGBImage)
}

/// One chat message: a role and its content parts (a plain string is one text part).
public struct ChatTurn: Sendable, Equatable {
    public var role: ChatRole
    public var parts: [ContentPart]

    public init(role: ChatRole, parts: [ContentPart]) {
        self.role = role
        self.parts = parts
    }

    public init(role: ChatRole, text: String) {
        self.init(role: role, parts: [.text(text)])
    }

    public var images: [RGBImage] { parts.compactMap { if case .image(let i) = $0 { return i } else { return nil } } }
}

/// A conversation turned into what the generator takes: prompt ids (each image as its feature
/// rows of the image token id) and the image features to splice at those rows.
public struct PreparedPrompt: Sendable {
    public var ids: [Int]
    public var splice: EmbeddingSplice?
    public var imageCount: Int
    /// The rendered template text (`<image>` where each image goes).
    public var text: String
}

/// Why a conversation cannot become a prompt, with the message/part it is about (the server's
/// `param`, e.g. `messages[1].content[0]`).
public struct PromptError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable { case invalid, tooManyImages, contextLength }
    public var kind: Kind
    public var message: String
    public var param: String?
    public var description: String { message }
}

/// A loaded model ready for chat: tokenizer, chat template, stop ids, image handling. `predict`,
/// `chat` and `serve` all build their prompts through `prepare`.
public final class ChatModel: @unchecked Sendable {
    public let model: ResolvedModel
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    /// EOS ids of the tokenizer and config, plus `<|im_end|>` for ChatML templates.
    public let stopTokenIDs: Set<Int>
    /// Images one conversation may carry (0 for text-only models; LLaVA-1.5 models were trained on one).
    public var maxImages: Int

    /// `template`: `auto` (the model's own chat template when it matches a named one; llava-hf for
    /// llava models; else ChatML) or a `ChatTemplateName`.
    public init(model: ResolvedModel, tokenizer: Tokenizer, template: String = "auto") throws {
        self.model = model
        self.tokenizer = tokenizer
        self.template = try Self.resolveTemplate(template, tokenizer: tokenizer, isLlava: model.llava != nil)
        stopTokenIDs = Self.stopIDs(tokenizer: tokenizer, template: self.template, config: model.languageConfig)
        maxImages = model.llava == nil ? 0 : 1
    }

    /// Loads the model at `path` and its tokenizer (folder: tokenizer.json; GGUF: its metadata).
    public convenience init(path: String, template: String = "auto") throws {
        let model = try ResolvedModel(path: path)
        try self.init(model: model, tokenizer: TokenizerLoader.load(model: path), template: template)
    }

    public var engine: DecoderEngine { model.engine }
    public var maximumPositions: Int { model.maximumPositions }

    public static func resolveTemplate(_ name: String, tokenizer: Tokenizer, isLlava: Bool) throws -> ChatTemplate {
        if name == "auto" {
            if let jinja = tokenizer.chatTemplate, let inferred = ChatTemplate.inferred(fromJinja: jinja) { return inferred }
            return ChatTemplate(isLlava ? .llavaHF : .chatML)
        }
        return try ChatTemplate.named(name)
    }

    public static func stopIDs(tokenizer: Tokenizer?, template: ChatTemplate?, config: LlamaConfig) -> Set<Int> {
        var stops = Set(tokenizer?.eosTokenIds ?? [])
        if let eos = tokenizer?.eosTokenId { stops.insert(eos) }
        if let eos = config.eosTokenID { stops.insert(eos) }
        if let template, template.name == .chatML || template.name == .chatMLSmolLM, let end = tokenizer?.tokenToId("<|im_end|>") {
            stops.insert(end)
        }
        return stops
    }

    /// Text of generated ids (special tokens dropped), as the server returns it.
    public func detokenize(_ ids: [Int]) -> String { tokenizer.decode(ids, skipSpecialTokens: true) }

    /// The conversation in the model's template with the generation prompt (assistant turn) at
    /// the end, encoded; each image becomes its feature rows. Images go first in their message,
    /// each followed by a newline (llava-hf's and LLaVA's own placement), text parts after them
    /// joined by newlines.
    public func prepare(_ turns: [ChatTurn]) throws -> PreparedPrompt {
        guard !turns.isEmpty else { throw PromptError(kind: .invalid, message: "messages must not be empty", param: "messages") }
        let placeholder = ChatTemplate.imageToken
        var messages: [ChatMessage] = []
        var images: [RGBImage] = []
        var imageParam: String?
        for (i, turn) in turns.enumerated() {
            var texts: [String] = []
            var prefix = ""
            for (j, part) in turn.parts.enumerated() {
                switch part {
                case .text(let text):
                    if model.llava != nil, text.contains(placeholder) {
                        throw PromptError(kind: .invalid, message: "text may not contain \(placeholder); send images as image_url content parts",
                                          param: "messages[\(i)].content")
                    }
                    texts.append(text)
                case .image(let image):
                    guard turn.role == .user else {
                        throw PromptError(kind: .invalid, message: "images are only accepted in user messages", param: "messages[\(i)].content[\(j)]")
                    }
                    images.append(image)
                    imageParam = imageParam ?? "messages[\(i)].content[\(j)]"
                    prefix += placeholder + "\n"
                }
            }
            messages.append(ChatMessage(role: turn.role, content: prefix + texts.joined(separator: "\n")))
        }
        if images.count > maxImages {
            let what = maxImages == 0 ? "this model is text-only and takes no images" : "this model takes at most \(maxImages) image(s) per conversation"
            throw PromptError(kind: .tooManyImages, message: "\(images.count) image(s) given; \(what)", param: imageParam)
        }
        let rendered: String
        do {
            rendered = try template.generationPrompt(messages).text
        } catch let e as ForgeError {
            throw PromptError(kind: .invalid, message: "the \(template.name.rawValue) chat template cannot render these messages: \(e.message)", param: "messages")
        }

        guard let llava = model.llava else {
            let ids = tokenizer.encode(rendered)
            try checkLength(ids.count)
            return PreparedPrompt(ids: ids, splice: nil, imageCount: 0, text: rendered)
        }
        let marker = -200
        var ids: [Int] = []
        var positions: [Int] = []
        for id in tokenizer.encodeLLaVA(rendered, imageTokenId: marker).ids {
            if id == marker {
                positions += ids.count..<(ids.count + llava.rowsPerImage)
                ids += [Int](repeating: llava.config.imageTokenIndex, count: llava.rowsPerImage)
            } else {
                ids.append(id)
            }
        }
        try checkLength(ids.count)
        guard !images.isEmpty else { return PreparedPrompt(ids: ids, splice: nil, imageCount: 0, text: rendered) }
        var rows: [Float] = []
        rows.reserveCapacity(positions.count * llava.language.config.hiddenSize)
        for (k, image) in images.enumerated() {
            do {
                let pixels = try model.pixelValues(image: image, source: "image \(k + 1)")
                rows += try model.imageFeatures(pixelValues: pixels)
            } catch let e as ForgeError {
                throw PromptError(kind: .invalid, message: "cannot use image \(k + 1): \(e.message)", param: imageParam)
            }
        }
        return PreparedPrompt(ids: ids, splice: EmbeddingSplice(positions: positions, rows: rows), imageCount: images.count, text: rendered)
    }

    private func checkLength(_ count: Int) throws {
        guard count < maximumPositions else {
            throw PromptError(kind: .contextLength,
                              message: "this model's maximum context length is \(maximumPositions) tokens; the messages take \(count) tokens (leave at least one position for the answer)",
                              param: "messages")
        }
    }
}
