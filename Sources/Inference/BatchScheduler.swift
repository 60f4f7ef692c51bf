import ForgeCore
import Foundation
import Models

/// What a submitted request reports, in order: tokens, then exactly one `finished` or `failed`.
public enum SchedulerEvent: Sendable {
    case token(TokenEvent)
    case finished(GenerationResult)
    case failed(String)
}

public enum SchedulerError: Error, Equatable, CustomStringConvertible {
    /// The bounded queue is full (the server answers 503).
    case queueFull(capacity: Int)
    case shutDown

    public var description: String {
        switch self {
        case .queueFull(let capacity): return "the request queue is full (\(capacity) waiting)"
        case .shutDown: return "the scheduler is shut down"
        }
    }
}

/// A submitted request: cancel it at any time (it ends with finish_reason `cancelled`).
public final class RequestHandle: @unchecked Sendable {
    public let id: Int
    private let lock = NSLock()
    private var cancelled = false
    init(id: Int) { self.id = id }
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }
    var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
}

/// Continuous batching: one worker thread owns the engine and, every step, decodes the new token of
/// every active sequence together (one multi-row pass through each weight matrix; attention per
/// sequence against its own KV cache). Waiting requests join between steps — their prompt rows are
/// prefilled in the same step as the others' decode rows — and finished or cancelled ones leave.
///
/// `submit` never blocks: beyond `maxActive` running and `queueCapacity` waiting it throws
/// `SchedulerError.queueFull`. Events are delivered on the worker thread (keep the callback short).
public final class BatchScheduler: @unchecked Sendable {
    public let engine: DecoderEngine
    public let maxActive: Int
    public let queueCapacity: Int
    public let prefixCache: PrefixCache?
    private let detokenize: Detokenize?
    /// Enforces JSON response formats (see `TextGenerator.constraints`).
    public let constraints: JSONConstraintCompiler?

    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var stopping = false
    private var nextID = 0
    private var thread: Thread?
    /// Steps run and rows they carried (for tests and stats).
    public private(set) var stepCount = 0
    public private(set) var maxRowsInAStep = 0

    struct Pending {
        var request: GenerationRequest
        var handle: RequestHandle
        var onEvent: @Sendable (SchedulerEvent) -> Void
        var constraint: TokenConstraint?
    }

    final class Active {
        let pending: Pending
        let cache: KVCache
        var state: GenerationState
        var sampler: Sampler
        var history: [Int]
        var nextInput: [Int]
        /// The prompt's prefill as embeddings when it carries spliced rows (used by the first step).
        var prefillEmbeddings: SequenceStep?
        let reused: Int
        let start: UInt64
        var firstToken: UInt64 = 0
        init(pending: Pending, cache: KVCache, reused: Int, detokenize: Detokenize?, engine: DecoderEngine) {
            self.pending = pending
            self.cache = cache
            self.reused = reused
            state = GenerationState(request: pending.request, detokenize: detokenize)
            sampler = Sampler(pending.request.sampling, constraint: pending.constraint)
            history = pending.request.sampling.repetitionPenalty != 1 ? pending.request.prompt : []
            nextInput = Array(pending.request.prompt[reused...])
            if pending.request.embeddingSplice != nil { prefillEmbeddings = pending.request.prefillStep(from: reused, engine: engine, cache: cache) }
            start = DispatchTime.now().uptimeNanoseconds
        }
    }

    public init(engine: DecoderEngine, maxActive: Int = 8, queueCapacity: Int = 32, prefixCache: PrefixCache? = nil, detokenize: Detokenize? = nil,
                constraints: JSONConstraintCompiler? = nil) {
        self.constraints = constraints
        precondition(maxActive > 0 && queueCapacity >= 0, "BatchScheduler: bad limits")
        self.engine = engine
        self.maxActive = maxActive
        self.queueCapacity = queueCapacity
        self.prefixCache = prefixCache
        self.detokenize = detokenize
        // The worker holds the scheduler until `shutdown()` (call it when done).
        let thread = Thread { self.run() }
        thread.name = "inference-scheduler"
        self.thread = thread
        thread.start()
    }

    /// Validates and queues `request`; `onEvent` receives its tokens and its end.
    @discardableResult
    public func submit(_ request: GenerationRequest, onEvent: @escaping @Sendable (SchedulerEvent) -> Void) throws -> RequestHandle {
        try request.sampling.validate()
        guard !request.prompt.isEmpty else { throw ForgeError(.usage, "empty prompt") }
        guard request.maxTokens >= 0 else { throw ForgeError(.usage, "max_tokens must be ≥ 0") }
        guard request.stopStrings.isEmpty || detokenize != nil else { throw ForgeError(.usage, "stop strings need a detokenizer") }
        guard request.prompt.count < engine.maximumPositions else {
            throw ForgeError(.usage, "prompt of \(request.prompt.count) tokens does not fit the model's \(engine.maximumPositions) positions")
        }
        try request.validateSplice(hidden: engine.config.hiddenSize)
        if let bad = request.embeddedTokenIDs.first(where: { $0 < 0 || $0 >= engine.config.vocabSize }) {
            throw ForgeError(.badInput, "token id \(bad) is outside the vocabulary 0..<\(engine.config.vocabSize)")
        }
        let constraint = try makeConstraint(request, constraints)
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw SchedulerError.shutDown }
        guard queue.count < queueCapacity + maxActive - activeCount else { throw SchedulerError.queueFull(capacity: queueCapacity) }
        nextID += 1
        let handle = RequestHandle(id: nextID)
        queue.append(Pending(request: request, handle: handle, onEvent: onEvent, constraint: constraint))
        condition.signal()
        return handle
    }

    /// The tokens of `request` as an async stream that ends with the result (or throws).
    public func stream(_ request: GenerationRequest) throws -> (handle: RequestHandle, events: AsyncStream<SchedulerEvent>) {
        var continuation: AsyncStream<SchedulerEvent>.Continuation!
        let events = AsyncStream<SchedulerEvent> { continuation = $0 }
        let sink = continuation!
        let handle = try submit(request) { event in
            sink.yield(event)
            switch event {
            case .finished, .failed: sink.finish()
            case .token: break
            }
        }
        return (handle, events)
    }

    /// Runs `request` to completion, blocking the caller (tests, CLI).
    public func generate(_ request: GenerationRequest) throws -> GenerationResult {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        try submit(request) { event in
            switch event {
            case .finished(let result): box.set(.success(result)); done.signal()
            case .failed(let message): box.set(.failure(ForgeError(.usage, message))); done.signal()
            case .token: break
            }
        }
        done.wait()
        return try box.get().get()
    }

    /// Stops the worker after the current step; requests still queued or running fail.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private var activeCount = 0  // guarded by `condition`

    // MARK: - Worker

    private func run() {
        var active: [Active] = []
        while true {
            condition.lock()
            while queue.isEmpty && active.isEmpty && !stopping { condition.wait() }
            if stopping {
                let left = queue
                queue = []
                condition.unlock()
                for p in left { p.onEvent(.failed(SchedulerError.shutDown.description)) }
                for a in active { a.pending.onEvent(.failed(SchedulerError.shutDown.description)) }
                return
            }
            var joining: [Pending] = []
            while active.count + joining.count < maxActive, !queue.isEmpty { joining.append(queue.removeFirst()) }
            activeCount = active.count + joining.count
            condition.unlock()

            for p in joining {
                let capacity = min(engine.maximumPositions, p.request.prompt.count + max(1, p.request.maxTokens))
                let cache = engine.makeCache(capacity: capacity)
                let reused = prefixCache?.restore(prompt: p.request.cacheablePrompt, into: cache) ?? 0
                active.append(Active(pending: p, cache: cache, reused: reused, detokenize: detokenize, engine: engine))
            }
            // Cancelled or already-finished (max_tokens 0) sequences leave before the step.
            active.removeAll { a in
                if a.pending.handle.isCancelled { a.state.finish = .cancelled }
                if a.state.finish != nil { finish(a); return true }
                return false
            }
            if active.isEmpty { continue }

            let logits: [[Float]]
            do {
                logits = try engine.step(active.map { $0.prefillEmbeddings ?? SequenceStep(tokens: $0.nextInput, cache: $0.cache) })
            } catch {
                for a in active { a.pending.onEvent(.failed("\(error)")) }
                active = []
                continue
            }
            stepCount += 1
            maxRowsInAStep = max(maxRowsInAStep, active.reduce(0) { $0 + $1.nextInput.count })
            let now = DispatchTime.now().uptimeNanoseconds
            for a in active {
                if a.firstToken == 0 {
                    a.firstToken = now
                    prefixCache?.store(prompt: a.pending.request.cacheablePrompt, from: a.cache)
                }
                a.pending.constraint?.remainingTokens = a.state.remainingTokens(cacheLength: a.cache.length, cacheCapacity: a.cache.capacity)
            }
            let picks = sample(active, logits)
            for (a, next) in zip(active, picks) {
                if a.pending.request.sampling.repetitionPenalty != 1 { a.history.append(next) }
                if let event = a.state.accept(next) { a.pending.onEvent(.token(event)) }
                if a.state.finish == nil && a.cache.length >= a.cache.capacity { a.state.finish = .length }
                a.nextInput = [next]
                a.prefillEmbeddings = nil
            }
            active.removeAll { a in
                guard a.state.finish != nil else { return false }
                finish(a)
                return true
            }
            condition.lock()
            activeCount = active.count
            condition.unlock()
        }
    }

    /// Each sequence's next token. Sampled (temperature > 0) sequences draw on the pool's
    /// threads, one sequence per chunk: softmax and top-p over the vocabulary are ~0.1 ms per
    /// sequence, which 8 sequences one after another added to every batched step while the
    /// pool's other thread waited. Each sampler is its own state; structured output keeps to this
    /// thread (its automata share the compiled vocabulary tables).
    private func sample(_ active: [Active], _ logits: [[Float]]) -> [Int] {
        var picks = [Int](repeating: 0, count: active.count)
        let parallel = active.count > 1 && active.contains { $0.pending.request.sampling.temperature > 0 }
            && active.allSatisfy { $0.pending.constraint == nil }
        picks.withUnsafeMutableBufferPointer { buffer in
            let out = buffer  // each chunk writes its own element
            let draw = { (i: Int) in out[i] = active[i].sampler.next(logits: logits[i], history: active[i].history) }
            if parallel { WorkerPool.run(active.count, draw) } else { for i in active.indices { draw(i) } }
        }
        return picks
    }

    private func finish(_ a: Active) {
        let end = DispatchTime.now().uptimeNanoseconds
        let first = a.firstToken == 0 ? end : a.firstToken
        a.pending.onEvent(.finished(a.state.result(promptTokens: a.pending.request.prompt.count, cached: a.reused,
                                                   ttft: Double(first - a.start) / 1e9, decode: Double(end - first) / 1e9,
                                                   closedAtTokenBudget: a.pending.constraint?.closedAtTokenBudget ?? false)))
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<GenerationResult, Error> = .failure(SchedulerError.shutDown)
    func set(_ v: Result<GenerationResult, Error>) { lock.lock(); value = v; lock.unlock() }
    func get() -> Result<GenerationResult, Error> { lock.lock(); defer { lock.unlock() }; return value }
}
