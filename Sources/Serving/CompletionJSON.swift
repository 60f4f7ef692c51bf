import ForgeCore
import Foundation
import Inference

/// The JSON bodies of OpenAI's chat completion answers, written directly (field order as OpenAI's).
enum CompletionJSON {
    static func finishReason(_ reason: FinishReason) -> String {
        switch reason {
        case .stop: return "stop"
        case .length: return "length"
        // OpenAI has no "cancelled"; a cancelled sequence (client gone, server stopping) just ends.
        case .cancelled: return "stop"
        }
    }

    static func usage(promptTokens: Int, completionTokens: Int, cachedTokens: Int) -> String {
        "{\"prompt_tokens\":\(promptTokens),\"completion_tokens\":\(completionTokens),\"total_tokens\":\(promptTokens + completionTokens),"
            + "\"prompt_tokens_details\":{\"cached_tokens\":\(cachedTokens)}}"
    }

    /// Our extra field of a choice for JSON response formats: whether the value was closed early
    /// because max_tokens (or the context) ran out — complete JSON with its last field cut, while
    /// `finish_reason` says "length". Empty for text requests.
    static func budgetField(_ c: Completion, closed: Bool) -> String {
        c.request.responseFormat == .text ? "" : ",\"closed_at_token_budget\":\(closed)"
    }

    /// `chat.completion` for a finished request.
    static func completion(_ c: Completion, result: GenerationResult) -> String {
        let text = result.text ?? ""
        return "{\"id\":\(JSONText.quoted(c.id)),\"object\":\"chat.completion\",\"created\":\(c.created),\"model\":\(JSONText.quoted(c.model)),"
            + "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\(JSONText.quoted(text)),\"refusal\":null},"
            + "\"logprobs\":null,\"finish_reason\":\"\(finishReason(result.finishReason))\"\(budgetField(c, closed: result.closedAtTokenBudget))}],"
            + "\"usage\":\(usage(promptTokens: result.promptTokens, completionTokens: result.tokens.count, cachedTokens: result.cachedPromptTokens)),"
            + "\"system_fingerprint\":null}"
    }

    /// One `chat.completion.chunk` with a delta (`role` and/or `content`) or a finish reason.
    /// `closedAtTokenBudget` goes with the finish chunk (see `budgetField`).
    static func chunk(_ c: Completion, role: Bool = false, content: String?, finish: FinishReason? = nil, closedAtTokenBudget: Bool = false) -> String {
        var delta: [String] = []
        if role { delta.append("\"role\":\"assistant\"") }
        if let content { delta.append("\"content\":\(JSONText.quoted(content))") }
        let finishText = finish.map { "\"\(finishReason($0))\"" } ?? "null"
        var out = "{\"id\":\(JSONText.quoted(c.id)),\"object\":\"chat.completion.chunk\",\"created\":\(c.created),\"model\":\(JSONText.quoted(c.model)),"
            + "\"system_fingerprint\":null,\"choices\":[{\"index\":0,\"delta\":{\(delta.joined(separator: ","))},\"logprobs\":null,\"finish_reason\":\(finishText)"
            + (finish == nil ? "" : budgetField(c, closed: closedAtTokenBudget)) + "}]"
        if c.request.includeUsage { out += ",\"usage\":null" }
        return out + "}"
    }

    /// The last chunk when `stream_options.include_usage` is set: no choices, the usage.
    static func usageChunk(_ c: Completion, result: GenerationResult) -> String {
        "{\"id\":\(JSONText.quoted(c.id)),\"object\":\"chat.completion.chunk\",\"created\":\(c.created),\"model\":\(JSONText.quoted(c.model)),"
            + "\"system_fingerprint\":null,\"choices\":[],"
            + "\"usage\":\(usage(promptTokens: result.promptTokens, completionTokens: result.tokens.count, cachedTokens: result.cachedPromptTokens))}"
    }

    static func models(name: String, created: Int) -> String {
        "{\"object\":\"list\",\"data\":[{\"id\":\(JSONText.quoted(name)),\"object\":\"model\",\"created\":\(created),\"owned_by\":\"llava-forge\"}]}"
    }

    /// One server-sent event.
    static func event(_ json: String) -> String { "data: " + json + "\n\n" }
    static let done = "data: [DONE]\n\n"
}
