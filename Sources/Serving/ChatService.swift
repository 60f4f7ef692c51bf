import ForgeCore
import Foundation
import Inference
import Models

/// The server's core without HTTP: request bodies → prepared prompts → the batch scheduler
/// (continuous batching across concurrent requests, bounded queue), plus draining and
/// cancellation for shutdown. The HTTP layer (`OpenAIServer`) only moves bytes.
public final class ChatService: @unchecked Sendable {
    public struct Options: Sendable {
        /// Sequences decoded together (the scheduler's `maxActive`).
        public var maxConcurrency = 8
        /// Requests waiting beyond those; one more is a 503.
        public var queueCapacity = 16
        public var limits = ChatCompletionRequest.Limits(maxTokens: 4096)
        /// The id `/v1/models` lists and responses carry.
        public var modelName: String
        /// Prefix cache budget (0 = off).
        public var prefixCacheBytes = 256 << 20
        public init(modelName: String) { self.modelName = modelName }
    }

    public let model: ChatModel
    public let options: Options
    public let scheduler: BatchScheduler
    /// Parsing, image decoding, vision tower and tokenization run here, off the server's threads.
    private let prepareQueue = DispatchQueue(label: "llava-forge.serving.prepare", qos: .userInitiated)
    private let lock = NSLock()
    private var inFlight: [Int: Completion] = [:]
    private var draining = false
    private var counters = Counters()

    public struct Counters: Sendable, Equatable {
        public var accepted = 0
        public var finished = 0
        public var cancelled = 0
        public var rejected = 0
    }

    /// `engine` replaces the model's own decoder (tests wrap it).
    public init(model: ChatModel, options: Options, engine: DecoderEngine? = nil) {
        self.model = model
        self.options = options
        let engine = engine ?? model.engine
        let cache = options.prefixCacheBytes > 0 ? PrefixCache(config: engine.config, capacityBytes: options.prefixCacheBytes) : nil
        let tokenizer = model.tokenizer
        // response_format json_object / json_schema: constrained sampling over this tokenizer's
        // vocabulary (each token's bytes computed once here).
        let constraints = JSONConstraintCompiler(vocabulary: TokenVocabulary(tokenizer: tokenizer, logitCount: engine.config.vocabSize))
        scheduler = BatchScheduler(engine: engine, maxActive: options.maxConcurrency, queueCapacity: options.queueCapacity,
                                   prefixCache: cache, detokenize: { tokenizer.decode($0, skipSpecialTokens: true) },
                                   constraints: constraints)
    }

    public var counts: Counters { lock.lock(); defer { lock.unlock() }; return counters }
    public var activeCount: Int { lock.lock(); defer { lock.unlock() }; return inFlight.count }
    public var isDraining: Bool { lock.lock(); defer { lock.unlock() }; return draining }

    /// Parses, validates and prepares `body` on the preparation queue, then queues it.
    /// Throws `APIError` for everything the client can fix (4xx) and for a full queue (503).
    public func start(body: [UInt8]) async throws -> Completion {
        try await withCheckedThrowingContinuation { continuation in
            prepareQueue.async {
                continuation.resume(with: Result {
                    let request = try ChatCompletionRequest.parse(body, limits: self.options.limits)
                    return try self.start(request)
                })
            }
        }
    }

    /// Prepares and queues a parsed request (blocking: image features are computed here).
    public func start(_ request: ChatCompletionRequest) throws -> Completion {
        if isDraining { throw APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down") }
        let prompt: PreparedPrompt
        do { prompt = try model.prepare(request.turns) } catch let e as PromptError {
            switch e.kind {
            case .contextLength: throw APIError.invalid(e.message, param: e.param, code: "context_length_exceeded")
            case .tooManyImages: throw APIError.invalid(e.message, param: e.param, code: "too_many_images")
            case .invalid: throw APIError.invalid(e.message, param: e.param)
            }
        }
        let room = model.maximumPositions - prompt.ids.count
        let maxTokens = min(request.maxTokens ?? options.limits.maxTokens, room)
        let generation = GenerationRequest(prompt: prompt.ids, maxTokens: maxTokens, sampling: request.sampling, stopTokenIDs: model.stopTokenIDs,
                                           stopStrings: request.stop, responseFormat: request.responseFormat, embeddingSplice: prompt.splice)
        let (events, sink) = AsyncStream<SchedulerEvent>.makeStream()
        let completion = Completion(request: request, model: options.modelName, promptTokens: prompt.ids.count, events: events)
        let handle: RequestHandle
        do {
            lock.lock()
            defer { lock.unlock() }
            handle = try scheduler.submit(generation) { [weak self] event in
                // Bookkeeping first: once the client has its answer, the counts already say so.
                switch event {
                case .finished(let result): self?.retire(completion, cancelled: result.finishReason == .cancelled)
                case .failed: self?.retire(completion, cancelled: false)
                case .token: break
                }
                sink.yield(event)
                if case .token = event { return }
                sink.finish()
            }
            completion.handle = handle
            if inFlight[handle.id] == nil && !completion.retired { inFlight[handle.id] = completion }
            counters.accepted += 1
        } catch let e as SchedulerError {
            lock.lock(); counters.rejected += 1; lock.unlock()
            switch e {
            case .queueFull: throw APIError.overloaded("the server is busy (\(options.maxConcurrency) generating, queue of \(options.queueCapacity) full); retry shortly")
            case .shutDown: throw APIError(status: 503, message: "the server is shutting down", type: "server_error", code: "shutting_down")
            }
        } catch let e as ForgeError {
            // The generator's own checks (sampling ranges, response formats it cannot enforce yet).
            throw APIError.invalid(e.message, param: request.responseFormat == .text ? nil : "response_format")
        }
        return completion
    }

    private func retire(_ completion: Completion, cancelled: Bool) {
        lock.lock()
        defer { lock.unlock() }
        completion.retired = true
        if let id = completion.handle?.id { inFlight[id] = nil }
        if cancelled { counters.cancelled += 1 } else { counters.finished += 1 }
    }

    /// New requests are refused (503) from now on; running ones go on.
    public func beginDraining() {
        lock.lock(); draining = true; lock.unlock()
    }

    /// Cancels every running or queued request (they end with finish_reason `cancelled`).
    public func cancelAll() {
        lock.lock()
        let running = Array(inFlight.values)
        lock.unlock()
        for c in running { c.cancel() }
    }

    /// Stops the scheduler's worker (after draining).
    public func shutdown() {
        beginDraining()
        scheduler.shutdown()
    }
}

/// One accepted request: its events (tokens, then the result) and its cancel switch.
public final class Completion: @unchecked Sendable {
    public let id: String
    public let created: Int
    public let model: String
    public let request: ChatCompletionRequest
    public let promptTokens: Int
    public let events: AsyncStream<SchedulerEvent>
    fileprivate(set) var handle: RequestHandle?
    fileprivate var retired = false

    init(request: ChatCompletionRequest, model: String, promptTokens: Int, events: AsyncStream<SchedulerEvent>) {
        id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        created = Int(Date().timeIntervalSince1970)
        self.model = model
        self.request = request
        self.promptTokens = promptTokens
        self.events = events
    }

    public func cancel() { handle?.cancel() }

    /// Waits for the end: the whole text and the result (throws `APIError` 500 if generation failed).
    public func result() async throws -> GenerationResult {
        var text = ""
        for await event in events {
            switch event {
            case .token(let t): text += t.text
            case .finished(var result):
                if result.text == nil { result.text = text }
                return result
            case .failed(let message): throw APIError(status: 500, message: "generation failed: \(message)", type: "server_error")
            }
        }
        throw APIError(status: 500, message: "generation ended without a result", type: "server_error")
    }
}
