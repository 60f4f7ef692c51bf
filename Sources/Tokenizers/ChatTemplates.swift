import ForgeCore

public enum ChatRole: String, Sendable, Equatable {
    case system, user, assistant
}

public struct ChatMessage: Sendable, Equatable {
    public var role: ChatRole
    public var content: String
    public init(role: ChatRole, content: String) {
        self.role = role
        self.content = content
    }
    public static func system(_ s: String) -> ChatMessage { ChatMessage(role: .system, content: s) }
    public static func user(_ s: String) -> ChatMessage { ChatMessage(role: .user, content: s) }
    public static func assistant(_ s: String) -> ChatMessage { ChatMessage(role: .assistant, content: s) }
}

/// One contiguous piece of a rendered conversation. `trainable` pieces are what the model learns
/// to produce (answers and their end-of-turn token); everything else is context.
public struct ChatSegment: Sendable, Equatable {
    public var text: String
    public var role: ChatRole
    public var trainable: Bool
    public init(_ text: String, role: ChatRole, trainable: Bool) {
        self.text = text
        self.role = role
        self.trainable = trainable
    }
}

public struct RenderedChat: Sendable, Equatable {
    public var segments: [ChatSegment]
    public var text: String { segments.map(\.text).joined() }
}

/// Token ids of a rendered conversation with a per-token training mask.
public struct TokenizedChat: Sendable, Equatable {
    public var ids: [Int]
    /// true where the token is a training target (its segment is trainable); BOS/EOS added by the
    /// tokenizer's post-processor are never trainable.
    public var trainable: [Bool]
}

/// The named conversation formats (no Jinja is executed; each is written out here).
public enum ChatTemplateName: String, CaseIterable, Sendable {
    /// LLaVA `conv_vicuna_v1` (`--version v1`): system "…curious user…", " USER: … ASSISTANT: …</s>".
    case vicunaV1 = "vicuna_v1"
    /// LLaVA `conv_llava_v1`: same format with the "…curious human…" system prompt.
    case llavaV1 = "llava_v1"
    /// llava-hf's template: `USER: <image>\n… ASSISTANT:` (answers followed by a space, no EOS).
    case llavaHF = "llava-hf"
    /// ChatML (`<|im_start|>role\n…<|im_end|>\n`) with no default system prompt.
    case chatML = "chatml"
    /// ChatML with SmolLM2's default system prompt when the conversation has none.
    case chatMLSmolLM = "chatml-smollm"
    /// LLaVA Stage-1 pretraining: `<image>` + caption + "\n".
    case plain = "plain"
}

public struct ChatTemplate: Sendable {
    public let name: ChatTemplateName
    /// The system prompt used when the conversation has no system message (nil: none).
    public var defaultSystemPrompt: String?

    public static let vicunaSystemPrompt = "A chat between a curious user and an artificial intelligence assistant. "
        + "The assistant gives helpful, detailed, and polite answers to the user's questions."
    public static let llavaSystemPrompt = "A chat between a curious human and an artificial intelligence assistant. "
        + "The assistant gives helpful, detailed, and polite answers to the human's questions."
    public static let smolLMSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    public init(_ name: ChatTemplateName) {
        self.name = name
        switch name {
        case .vicunaV1: defaultSystemPrompt = Self.vicunaSystemPrompt
        case .llavaV1: defaultSystemPrompt = Self.llavaSystemPrompt
        case .chatMLSmolLM: defaultSystemPrompt = Self.smolLMSystemPrompt
        case .llavaHF, .chatML, .plain: defaultSystemPrompt = nil
        }
    }

    public static func named(_ name: String) throws -> ChatTemplate {
        guard let n = ChatTemplateName(rawValue: name) else {
            throw ForgeError(.usage, "unknown chat template \"\(name)\" (known: \(ChatTemplateName.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return ChatTemplate(n)
    }

    /// The named template closest to a model's own Jinja template, recognised by its markers.
    public static func inferred(fromJinja jinja: String) -> ChatTemplate? {
        if jinja.contains("<|im_start|>") {
            return ChatTemplate(jinja.contains(smolLMSystemPrompt) ? .chatMLSmolLM : .chatML)
        }
        if jinja.contains("ASSISTANT:") || jinja.contains("'ASSISTANT'") || jinja.contains("upper()") { return ChatTemplate(.llavaHF) }
        return nil
    }

    /// A whole conversation for training: every assistant turn is trainable.
    public func render(_ messages: [ChatMessage]) throws -> RenderedChat {
        try render(messages, generationPrompt: false)
    }

    /// The conversation followed by the assistant marker, ready for generation.
    public func generationPrompt(_ messages: [ChatMessage]) throws -> RenderedChat {
        try render(messages, generationPrompt: true)
    }

    private func render(_ messages: [ChatMessage], generationPrompt: Bool) throws -> RenderedChat {
        var system: String? = defaultSystemPrompt
        var turns = messages
        if let first = turns.first, first.role == .system {
            system = first.content
            turns.removeFirst()
        }
        for (i, m) in turns.enumerated() where m.role == .system {
            throw ForgeError(.badInput, "a system message may only come first", location: "messages[\(i + (messages.count - turns.count))]")
        }
        switch name {
        case .vicunaV1, .llavaV1: return try renderSeparatorStyleTwo(system: system, turns, generationPrompt: generationPrompt)
        case .llavaHF: return renderLlavaHF(system: system, turns, generationPrompt: generationPrompt)
        case .chatML, .chatMLSmolLM: return renderChatML(system: system, turns, generationPrompt: generationPrompt)
        case .plain: return try renderPlain(turns, generationPrompt: generationPrompt)
        }
    }

    /// ChatML: `<|im_start|>role\ncontent<|im_end|>\n`. The assistant header is context; the
    /// answer and its `<|im_end|>` are trainable; the newline after it is context.
    private func renderChatML(system: String?, _ turns: [ChatMessage], generationPrompt: Bool) -> RenderedChat {
        var segments: [ChatSegment] = []
        if let system {
            segments.append(ChatSegment("<|im_start|>system\n" + system + "<|im_end|>\n", role: .system, trainable: false))
        }
        for m in turns {
            if m.role == .assistant {
                segments.append(ChatSegment("<|im_start|>assistant\n", role: .assistant, trainable: false))
                segments.append(ChatSegment(m.content + "<|im_end|>", role: .assistant, trainable: true))
                segments.append(ChatSegment("\n", role: .assistant, trainable: false))
            } else {
                segments.append(ChatSegment("<|im_start|>\(m.role.rawValue)\n" + m.content + "<|im_end|>\n", role: m.role, trainable: false))
            }
        }
        if generationPrompt { segments.append(ChatSegment("<|im_start|>assistant\n", role: .assistant, trainable: false)) }
        return RenderedChat(segments: segments)
    }

    /// llava-hf: `[system ]USER: content ASSISTANT: answer USER: … ASSISTANT:`.
    private func renderLlavaHF(system: String?, _ turns: [ChatMessage], generationPrompt: Bool) -> RenderedChat {
        var segments: [ChatSegment] = []
        if let system { segments.append(ChatSegment(system + " ", role: .system, trainable: false)) }
        for m in turns {
            if m.role == .assistant {
                segments.append(ChatSegment("ASSISTANT:", role: .assistant, trainable: false))
                segments.append(ChatSegment(" " + m.content, role: .assistant, trainable: true))
                segments.append(ChatSegment(" ", role: .assistant, trainable: false))
            } else {
                segments.append(ChatSegment("USER: " + m.content + " ", role: .user, trainable: false))
            }
        }
        if generationPrompt { segments.append(ChatSegment("ASSISTANT:", role: .assistant, trainable: false)) }
        return RenderedChat(segments: segments)
    }
}

extension Tokenizer {
    /// Encodes the joined text once (so BPE sees exactly what the model will) and marks each token
    /// trainable when the character it starts at lies in a trainable segment.
    public func encode(chat: RenderedChat, addSpecialTokens: Bool = true) -> TokenizedChat {
        let encoded = encodeWithSources(chat.text, addSpecialTokens: addSpecialTokens)
        return TokenizedChat(ids: encoded.ids, trainable: Self.trainableMask(chat, encoded))
    }

    /// Per token: does the character it starts at lie in a trainable segment?
    static func trainableMask(_ chat: RenderedChat, _ encoded: TokenizedText) -> [Bool] {
        var boundaries: [(end: Int, trainable: Bool)] = []
        var position = 0
        for segment in chat.segments {
            position += segment.text.unicodeScalars.count
            boundaries.append((position, segment.trainable))
        }
        var mask: [Bool] = []
        mask.reserveCapacity(encoded.ids.count)
        for source in encoded.sourceScalarIndex {
            guard source >= 0 else { mask.append(false); continue }
            // First segment whose end lies past the token's first character.
            var lo = 0, hi = boundaries.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if boundaries[mid].end > source { hi = mid } else { lo = mid + 1 }
            }
            mask.append(lo < boundaries.count && boundaries[lo].trainable)
        }
        return mask
    }
}
