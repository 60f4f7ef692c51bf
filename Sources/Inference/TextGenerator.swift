import ForgeCore
import Foundation
import Models

/// Why generation ended (OpenAI's `finish_reason`).
public enum FinishReason: String, Sendable, Equatable {
    /// A stop token id (EOS) or stop string.
    case stop
    /// `maxTokens` reached, or the context is full.
    case length
    /// The token callback (or the scheduler) asked to stop.
    case cancelled
}

/// One generation request over token ids.
public struct GenerationRequest: Sendable {
    public var prompt: [Int]
    public var maxTokens: Int
    public var sampling: SamplingOptions
    /// Ids that end generation (EOS, `<|im_end|>`); they are not part of the output.
    public var stopTokenIDs: Set<Int>
    /// Strings that end generation; the output text is cut before the first one. Needs a detokenizer.
    public var stopStrings: [String]
    /// Free text or JSON enforced by constrained sampling.
    public var responseFormat: ResponseFormat
    /// Rows that replace the prompt's token embeddings at some positions (LLaVA image features).
    public var embeddingSplice: EmbeddingSplice?

    public init(prompt: [Int], maxTokens: Int, sampling: SamplingOptions = .greedy, stopTokenIDs: Set<Int> = [], stopStrings: [String] = [],
                responseFormat: ResponseFormat = .text, embeddingSplice: EmbeddingSplice? = nil) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopTokenIDs = stopTokenIDs
        self.stopStrings = stopStrings
        self.responseFormat = responseFormat
        self.embeddingSplice = embeddingSplice
    }
}

/// A streamed token: its id and the text that became final with it (empty while a possible stop
/// string or an incomplete UTF-8 sequence is held back; always empty without a detokenizer).
public struct TokenEvent: Sendable, Equatable {
    public var id: Int
    public var text: String
}

public struct GenerationResult: Sendable {
    /// Generated ids (stop token excluded).
    public var tokens: [Int]
    /// The detokenized output cut before a stop string (nil without a detokenizer).
    public var text: String?
    public var finishReason: FinishReason
    /// Structured output closed the JSON value early because the tokens ran out: the text is
    /// complete JSON, but its last field was cut. `finishReason` is then `.length` (the budget
    /// ended it), even though a stop token followed.
    public var closedAtTokenBudget = false
    public var promptTokens: Int
    /// Prompt positions reused from the prefix cache.
    public var cachedPromptTokens: Int
    /// Seconds from the start to the first token's logits (prefill), and for the rest.
    public var timeToFirstToken: Double
    public var decodeSeconds: Double
}

/// Detokenizer callback: ids → text (the tokenizer module plugs in here).
public typealias Detokenize = ([Int]) -> String

/// Stop-string matching over the growing detokenized text, and how much of it is safe to stream.
struct StopStringMatcher {
    let stops: [String]
    /// The text before the first stop string, if one occurs.
    func cut(_ text: String) -> String? {
        var earliest: String.Index?
        for stop in stops where !stop.isEmpty {
            if let range = text.range(of: stop), earliest == nil || range.lowerBound < earliest! { earliest = range.lowerBound }
        }
        return earliest.map { String(text[..<$0]) }
    }
    /// Length (in characters) of `text` that can be emitted: not ending in a prefix of a stop
    /// string, nor in U+FFFD (a multi-byte character split over tokens).
    func safePrefixLength(_ text: String) -> Int {
        var characters = Array(text)
        while characters.last == "\u{FFFD}" { characters.removeLast() }
        var hold = 0
        for stop in stops where !stop.isEmpty {
            let s = Array(stop)
            for k in stride(from: min(s.count - 1, characters.count), through: 1, by: -1) where Array(characters.suffix(k)) == Array(s.prefix(k)) {
                hold = max(hold, k)
                break
            }
        }
        return characters.count - hold
    }
}

/// Single-request generation: prefix-cache restore → prefill → sample/decode loop with stop ids,
/// stop strings, max tokens and a streaming callback.
public final class TextGenerator {
    public let engine: DecoderEngine
    public let prefixCache: PrefixCache?
    public let detokenize: Detokenize?
    /// Enforces `request.responseFormat` (JSON) over the tokenizer's vocabulary; nil = text only.
    public let constraints: JSONConstraintCompiler?

    public init(engine: DecoderEngine, prefixCache: PrefixCache? = nil, detokenize: Detokenize? = nil,
                constraints: JSONConstraintCompiler? = nil) {
        self.engine = engine
        self.prefixCache = prefixCache
        self.detokenize = detokenize
        self.constraints = constraints
    }

    /// Runs `request`; `onToken` is called for every generated token (not the stop token) and may
    /// return false to cancel.
    public func generate(_ request: GenerationRequest, onToken: ((TokenEvent) -> Bool)? = nil) throws -> GenerationResult {
        try request.sampling.validate()
        guard !request.prompt.isEmpty else { throw ForgeError(.usage, "empty prompt") }
        guard request.maxTokens >= 0 else { throw ForgeError(.usage, "max_tokens must be ≥ 0") }
        guard request.stopStrings.isEmpty || detokenize != nil else { throw ForgeError(.usage, "stop strings need a detokenizer") }
        guard request.prompt.count < engine.maximumPositions else {
            throw ForgeError(.usage, "prompt of \(request.prompt.count) tokens does not fit the model's \(engine.maximumPositions) positions")
        }
        let constraint = try makeConstraint(request, constraints)
        try request.validateSplice(hidden: engine.config.hiddenSize)
        let start = DispatchTime.now().uptimeNanoseconds
        let capacity = min(engine.maximumPositions, request.prompt.count + max(1, request.maxTokens))
        let cache = engine.makeCache(capacity: capacity)
        let reused = prefixCache?.restore(prompt: request.cacheablePrompt, into: cache) ?? 0
        var logits = try engine.step([request.prefillStep(from: reused, engine: engine, cache: cache)])[0]
        prefixCache?.store(prompt: request.cacheablePrompt, from: cache)
        let firstTokenTime = DispatchTime.now().uptimeNanoseconds

        var state = GenerationState(request: request, detokenize: detokenize)
        var sampler = Sampler(request.sampling, constraint: constraint)
        var history = request.sampling.repetitionPenalty != 1 ? request.prompt : []
        while state.finish == nil {
            constraint?.remainingTokens = state.remainingTokens(cacheLength: cache.length, cacheCapacity: cache.capacity)
            let next = sampler.next(logits: logits, history: history)
            if request.sampling.repetitionPenalty != 1 { history.append(next) }
            if let event = state.accept(next), let onToken, !onToken(event) { state.finish = .cancelled }
            if state.finish != nil { break }
            if cache.length >= cache.capacity { state.finish = .length; break }
            logits = try engine.step([SequenceStep(tokens: [next], cache: cache)])[0]
        }
        let end = DispatchTime.now().uptimeNanoseconds
        return state.result(promptTokens: request.prompt.count, cached: reused, ttft: Double(firstTokenTime - start) / 1e9,
                            decode: Double(end - firstTokenTime) / 1e9, closedAtTokenBudget: constraint?.closedAtTokenBudget ?? false)
    }
}

/// The request's JSON constraint (nil for text); a JSON format without a compiler is a usage error.
func makeConstraint(_ request: GenerationRequest, _ constraints: JSONConstraintCompiler?) throws -> TokenConstraint? {
    if request.responseFormat == .text { return nil }
    guard let constraints else {
        throw ForgeError(.usage, "a JSON response_format needs the tokenizer's vocabulary (build the generator with a JSONConstraintCompiler)")
    }
    return try constraints.makeConstraint(for: request.responseFormat, stopTokenIDs: request.stopTokenIDs)
}

/// The per-request bookkeeping shared by `TextGenerator` and the batch scheduler.
struct GenerationState {
    let request: GenerationRequest
    let detokenize: Detokenize?
    let matcher: StopStringMatcher
    var tokens: [Int] = []
    var emitted = 0
    var text: String?
    var finish: FinishReason?

    init(request: GenerationRequest, detokenize: Detokenize?) {
        self.request = request
        self.detokenize = detokenize
        matcher = StopStringMatcher(stops: request.stopStrings)
        if request.maxTokens == 0 { finish = .length }
    }

    /// Takes a sampled id; returns the event to stream (nil for a stop id), and sets `finish`.
    mutating func accept(_ id: Int) -> TokenEvent? {
        if request.stopTokenIDs.contains(id) { finish = .stop; return nil }
        tokens.append(id)
        var delta = ""
        if let detokenize {
            let full = detokenize(tokens)
            if let cut = matcher.cut(full) {
                text = cut
                finish = .stop
                delta = String(cut.dropFirst(emitted))
                emitted = cut.count
            } else {
                text = full
                let safe = matcher.safePrefixLength(full)
                if safe > emitted {
                    delta = String(full.dropFirst(emitted).prefix(safe - emitted))
                    emitted = safe
                }
            }
        }
        if finish == nil && tokens.count >= request.maxTokens { finish = .length }
        if finish != nil, let text, emitted < text.count {
            // The last event carries whatever was held back.
            delta += String(text.dropFirst(emitted))
            emitted = text.count
        }
        return TokenEvent(id: id, text: delta)
    }

    /// Tokens that can still be generated, counting the one about to be sampled: what is left of
    /// max_tokens, and of the KV cache (a token sampled with the cache full is the last one).
    /// The stop token is not counted in max_tokens but must come before it is reached.
    func remainingTokens(cacheLength: Int, cacheCapacity: Int) -> Int {
        min(request.maxTokens - tokens.count, cacheCapacity - cacheLength + 1)
    }

    /// The result; a value closed at the token budget reports `.length` even when its stop token fitted.
    func result(promptTokens: Int, cached: Int, ttft: Double, decode: Double, closedAtTokenBudget: Bool = false) -> GenerationResult {
        var reason = finish ?? .length
        if closedAtTokenBudget && reason == .stop { reason = .length }
        return GenerationResult(tokens: tokens, text: text ?? (detokenize.map { $0(tokens) }), finishReason: reason,
                                closedAtTokenBudget: closedAtTokenBudget, promptTokens: promptTokens, cachedPromptTokens: cached,
                                timeToFirstToken: ttft, decodeSeconds: decode)
    }
}
