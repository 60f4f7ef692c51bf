import CCurl
import ForgeCore
import Foundation

/// One chat request for the engine: the exact body bytes (already canonical) and an id the
/// caller uses to match the outcome.
public struct ChatJob: Sendable {
    public var id: Int64
    public var body: Data
    /// The request's `max_tokens`, used to guess its completion tokens before the first answer.
    public var maxTokens: Int?

    public init(id: Int64, body: Data, maxTokens: Int? = nil) {
        self.id = id
        self.body = body
        self.maxTokens = maxTokens
    }
}

/// The final outcome of one job (after its retries).
public struct ChatOutcome: Sendable {
    public var jobID: Int64
    public var result: Result<ChatResult, LLMError>
    /// Attempts made (1 = no retry).
    public var attempts: Int
    /// The server's `x-request-id` of the last attempt, when it sent one.
    public var serverRequestID: String?
    public var failureClass: FailureClass? {
        if case .failure(let e) = result { return FailureClass.of(e) }
        return nil
    }
}

public struct EngineOptions: Sendable {
    /// Transfers in flight at once.
    public var concurrency: Int = 8
    public var limits: RateLimits = .none
    /// Retries for the whole run (429 pacing excluded).
    public var retryBudget: Int = 1000
    /// Stop the run after this many final failures in a row with no success in between (a
    /// wrong key, an unknown model, a server that is down); 0 disables.
    public var circuitBreaker: Int = 8

    public init(concurrency: Int = 8, limits: RateLimits = .none, retryBudget: Int = 1000, circuitBreaker: Int = 8) {
        self.concurrency = concurrency
        self.limits = limits
        self.retryBudget = retryBudget
        self.circuitBreaker = circuitBreaker
    }
}

/// What the engine saw in one `run`.
public struct EngineReport: Sendable {
    public var stoppedReason: String?
    /// Retries scheduled, by the class of the failure that caused them.
    public var retriesByClass: [String: Int] = [:]
    /// Final failures by class.
    public var failuresByClass: [String: Int] = [:]
    public var attempts = 0
    public var completed = 0
    /// Responses with status 429 (rate limit or quota), retried or not.
    public var http429 = 0
    /// HTTP version of the last response (11 = 1.1, 20 = 2).
    public var httpVersion = 0
}

/// Many chat requests at once on libcurl's multi interface: one event-loop thread (the one
/// calling `run`) drives up to `concurrency` transfers over reused keep-alive connections
/// (HTTP/2 multiplexed when the server offers it over TLS), paced by a `RateLimiter`, retried
/// by a `RetryPolicy`. Results go to `deliver` on the loop thread: it must hand them off and
/// return quickly (the Generator queues them for its store writer).
public final class ChatEngine {
    public let config: ClientConfig
    public let options: EngineOptions
    public let limiter: RateLimiter
    public let retry: RetryPolicy
    private let chatURL: String
    private let chatURLIsHTTPS: Bool
    private let apiKey: String?
    private let multi: UnsafeMutableRawPointer
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var idle: [EasyHandle] = []
    private var active: [Int: Transfer] = [:]
    /// Jobs waiting for their retry, sorted by due time.
    private var retryQueue: [Pending] = []
    private let stopLock = NSLock()
    private var stopReason: String?
    private var report = EngineReport()
    /// Learned from `usage`: real prompt tokens per estimated one, and the mean completion.
    private var promptScale = 1.0
    private var completionMean: Double?
    private var observed = 0
    private var consecutiveFailures = 0
    private var lastFailure: String?

    struct Pending {
        var job: ChatJob
        var retries: Int
        var due: Double
    }

    final class Transfer {
        let handle: EasyHandle
        let job: ChatJob
        let retries: Int
        let cost: Int
        /// What the limiter had sent when this went out (orders the answer's headers).
        let mark: SendMark
        let sink = TransferSink()
        let started = RateLimiter.now()
        init(handle: EasyHandle, job: ChatJob, retries: Int, cost: Int, mark: SendMark) {
            self.handle = handle
            self.job = job
            self.retries = retries
            self.cost = cost
            self.mark = mark
        }
    }

    public init(config: ClientConfig, options: EngineOptions = EngineOptions()) throws {
        let client = try OpenAIClient(config: config)  // validates the URL, key and timeouts
        guard options.concurrency >= 1 else { throw ForgeError(.config, "concurrency must be ≥ 1") }
        guard let multi = curl_multi_init() else { throw ForgeError(.network, "curl_multi_init failed") }
        self.config = config
        self.options = options
        self.multi = multi
        self.chatURL = client.chatURL
        self.chatURLIsHTTPS = client.chatURL.lowercased().hasPrefix("https:")
        self.apiKey = (config.apiKey?.isEmpty ?? true) ? nil : config.apiKey
        self.limiter = RateLimiter(limits: options.limits)
        self.retry = RetryPolicy(config: config, budget: options.retryBudget)
        // Multiplex HTTP/2 streams (CURLPIPE_MULTIPLEX = 2); cap connections per host at the
        // concurrency so HTTP/1.1 gets one keep-alive connection per slot.
        _ = forge_curl_multi_setopt_long(multi, CURLMOPT_PIPELINING, 2)
        _ = forge_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.concurrency)
        _ = forge_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, options.concurrency + 4)
        for line in ["Accept: application/json", "Content-Type: application/json", "Expect:"] {
            headerList = curl_slist_append(headerList, line) ?? headerList
        }
        if let apiKey { headerList = curl_slist_append(headerList, "Authorization: Bearer \(apiKey)") ?? headerList }
    }

    deinit {
        for (_, t) in active { curl_multi_remove_handle(multi, t.handle.curl) }
        active.removeAll()
        idle.removeAll()
        curl_multi_cleanup(multi)
        curl_slist_free_all(headerList)
    }

    /// Asks the loop to stop taking new work (thread-safe); transfers in flight finish and are
    /// delivered, waiting retries are dropped (their jobs stay unanswered).
    public func stop(reason: String) {
        stopLock.lock()
        if stopReason == nil { stopReason = reason }
        stopLock.unlock()
        curl_multi_wakeup(multi)
    }

    private var stopping: Bool {
        stopLock.lock(); defer { stopLock.unlock() }
        return stopReason != nil
    }

    /// Runs until `next` returns nil and every job is delivered, or until stopped.
    /// `started(job, retries)` is called as each attempt goes out; `deliver` once per job
    /// with its final outcome. Both run on the calling thread.
    public func run(next: () -> ChatJob?, started: (ChatJob, Int) -> Void = { _, _ in }, deliver: (ChatOutcome) -> Void) -> EngineReport {
        var held: Pending?
        var sourceDone = false
        while true {
            let now = RateLimiter.now()
            var wake = now + 0.25
            let isStopping = stopping
            if !isStopping {
                while active.count < options.concurrency {
                    if held == nil {
                        if let first = retryQueue.first, first.due <= now {
                            held = retryQueue.removeFirst()
                        } else if !sourceDone {
                            if let job = next() { held = Pending(job: job, retries: 0, due: now) } else { sourceDone = true }
                        }
                    }
                    guard let h = held else { break }
                    let cost = tokenCost(h.job)
                    let wait = limiter.delay(tokenCost: cost, now: now)
                    if wait > 0 {
                        wake = min(wake, now + wait)
                        break
                    }
                    let mark = limiter.consume(tokenCost: cost, now: now)
                    begin(h.job, retries: h.retries, cost: cost, mark: mark)
                    started(h.job, h.retries)
                    held = nil
                }
                if let first = retryQueue.first { wake = min(wake, first.due) }
            }
            if active.isEmpty && (isStopping || (sourceDone && held == nil && retryQueue.isEmpty)) { break }
            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            if drainFinished(deliver) > 0 { continue }
            let timeoutMs = Int32(max(0, min(250, (wake - RateLimiter.now()) * 1000)).rounded(.up))
            var fds: Int32 = 0
            _ = curl_multi_poll(multi, nil, 0, timeoutMs, &fds)
        }
        stopLock.lock()
        report.stoppedReason = stopReason
        stopLock.unlock()
        retryQueue.removeAll()
        return report
    }

    /// Tokens this request is expected to spend against a TPM limit: the prompt estimate
    /// (scaled by what `usage` taught us) plus the mean completion seen so far (before any
    /// answer: `max_tokens`, at most 1024).
    func tokenCost(_ job: ChatJob) -> Int {
        let prompt = RateLimiter.estimatePromptTokens(bodyBytes: job.body.count, scale: promptScale)
        let completion = completionMean ?? Double(min(job.maxTokens ?? 256, 1024))
        return prompt + Int(completion.rounded())
    }

    private func begin(_ job: ChatJob, retries: Int, cost: Int, mark: SendMark) {
        guard let handle = idle.popLast() ?? EasyHandle() else {
            failNow(job, retries: retries, error: .transport(code: 2, message: "curl_easy_init failed"))
            return
        }
        let transfer = Transfer(handle: handle, job: job, retries: retries, cost: cost, mark: mark)
        let curl = handle.curl
        handle.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        _ = chatURL.withCString { forge_curl_setopt_ptr(curl, CURLOPT_URL, $0) }
        _ = forge_curl_setopt_ptr(curl, CURLOPT_ERRORBUFFER, handle.errorBuffer)
        CurlOptions.applyCommon(curl, config: config, url: chatURL, isHTTPS: chatURLIsHTTPS)
        if chatURLIsHTTPS {
            _ = forge_curl_setopt_long(curl, CURLOPT_PIPEWAIT, 1)  // prefer a multiplexed stream to a new connection
        }
        _ = forge_curl_setopt_ptr(curl, CURLOPT_HTTPHEADER, headerList.map { UnsafeRawPointer($0) })
        let context = Unmanaged.passUnretained(transfer.sink).toOpaque()
        _ = forge_curl_setopt_writefn(curl, CURLOPT_WRITEFUNCTION, curlBodyCallback)
        _ = forge_curl_setopt_ptr(curl, CURLOPT_WRITEDATA, context)
        _ = forge_curl_setopt_writefn(curl, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        _ = forge_curl_setopt_ptr(curl, CURLOPT_HEADERDATA, context)
        _ = forge_curl_setopt_long(curl, CURLOPT_POST, 1)
        _ = forge_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(job.body.count))
        job.body.withUnsafeBytes { raw in
            var zero: UInt8 = 0
            withUnsafePointer(to: &zero) { fallback in
                // curl copies the bytes: the transfer owns nothing it must keep alive.
                _ = forge_curl_setopt_ptr(curl, CURLOPT_COPYPOSTFIELDS, raw.baseAddress ?? UnsafeRawPointer(fallback))
            }
        }
        active[Int(bitPattern: curl)] = transfer
        report.attempts += 1
        if curl_multi_add_handle(multi, curl) != CURLM_OK {
            active[Int(bitPattern: curl)] = nil
            recycle(handle)
            failNow(job, retries: retries, error: .transport(code: 2, message: "curl_multi_add_handle failed"))
        }
    }

    /// Out of handles or memory: try this job again shortly (the loop stays alive).
    private func failNow(_ job: ChatJob, retries: Int, error: LLMError) {
        report.retriesByClass[FailureClass.of(error).rawValue, default: 0] += 1
        retryQueue.append(Pending(job: job, retries: retries, due: RateLimiter.now() + 0.1))
        retryQueue.sort { $0.due < $1.due }
    }

    private func recycle(_ handle: EasyHandle) {
        curl_easy_reset(handle.curl)
        if idle.count < options.concurrency + 4 { idle.append(handle) }
    }

    /// Handles every finished transfer; returns how many.
    private func drainFinished(_ deliver: (ChatOutcome) -> Void) -> Int {
        var count = 0
        var queued: Int32 = 0
        while let msg = curl_multi_info_read(multi, &queued) {
            guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
            let code = msg.pointee.data.result
            guard let transfer = active.removeValue(forKey: Int(bitPattern: easy)) else { continue }
            curl_multi_remove_handle(multi, easy)
            count += 1
            finish(transfer, code: code, deliver)
        }
        return count
    }

    private func finish(_ t: Transfer, code: CURLcode, _ deliver: (ChatOutcome) -> Void) {
        let curl = t.handle.curl
        let now = RateLimiter.now()
        let result: Result<ChatResult, LLMError>
        if code == CURLE_OK {
            var status = 0
            _ = forge_curl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
            var version = 0
            _ = forge_curl_getinfo_long(curl, CURLINFO_HTTP_VERSION, &version)
            report.httpVersion = version == Int(CURL_HTTP_VERSION_2_0) ? 20 : (version == Int(CURL_HTTP_VERSION_3) ? 30 : 11)
            let exchange = Exchange(status: status, body: t.sink.body, headers: t.sink.headers, latencyMs: (now - t.started) * 1000)
            limiter.observe(headers: exchange.headers, mark: t.mark, now: now)
            if status == 429 { report.http429 += 1 }
            result = ResponseParser.chatResult(exchange, redact: redact)
        } else {
            let detail = String(cString: t.handle.errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            result = .failure(.transport(code: Int(code.rawValue), message: redact(message)))
        }
        let requestID = t.sink.headers["x-request-id"]
        recycle(t.handle)

        switch result {
        case .success(let chat):
            learn(t, chat, now: now)
            consecutiveFailures = 0
            lastFailure = nil
            report.completed += 1
            deliver(ChatOutcome(jobID: t.job.id, result: result, attempts: t.retries + 1, serverRequestID: requestID))
        case .failure(let error):
            let cls = FailureClass.of(error)
            switch retry.decide(error, retriesSoFar: t.retries) {
            case .retry(let after):
                if cls == .rateLimited { limiter.pause(until: now + after) }  // a 429 pauses every sender
                report.retriesByClass[cls.rawValue, default: 0] += 1
                let pending = Pending(job: t.job, retries: t.retries + 1, due: now + after)
                let index = retryQueue.firstIndex { $0.due > pending.due } ?? retryQueue.endIndex
                retryQueue.insert(pending, at: index)
            case .fail:
                report.failuresByClass[cls.rawValue, default: 0] += 1
                report.completed += 1
                deliver(ChatOutcome(jobID: t.job.id, result: result, attempts: t.retries + 1, serverRequestID: requestID))
                noteFinalFailure(error, jobID: t.job.id, requestID: requestID)
            case .stopRun:
                report.failuresByClass[cls.rawValue, default: 0] += 1
                report.completed += 1
                deliver(ChatOutcome(jobID: t.job.id, result: result, attempts: t.retries + 1, serverRequestID: requestID))
                var message = "the API reports the quota is exhausted"
                if case .quotaExhausted(let m) = error { message += " (\(m))" }
                stop(reason: message + "; everything answered so far is stored — rerun the same command after topping up")
            }
        }
    }

    /// Corrects the token bucket and the estimates from the answer's `usage`.
    private func learn(_ t: Transfer, _ chat: ChatResult, now: Double) {
        guard let prompt = chat.promptTokens else { return }
        let completion = chat.completionTokens ?? 0
        limiter.correct(estimated: t.cost, actual: prompt + completion, now: now)
        let raw = Double(RateLimiter.estimatePromptTokens(bodyBytes: t.job.body.count))
        observed += 1
        let weight = 1 / Double(min(observed, 50))
        promptScale += (Double(prompt) / raw - promptScale) * weight
        completionMean = (completionMean ?? Double(completion)) + (Double(completion) - (completionMean ?? Double(completion))) * weight
    }

    private func noteFinalFailure(_ error: LLMError, jobID: Int64, requestID: String?) {
        let key = FailureClass.of(error).rawValue
        consecutiveFailures = lastFailure == key ? consecutiveFailures + 1 : 1
        lastFailure = key
        guard options.circuitBreaker > 0, consecutiveFailures >= options.circuitBreaker else { return }
        let id = requestID.map { ", x-request-id \($0)" } ?? ""
        stop(reason: "the last \(consecutiveFailures) requests all failed the same way — last: request \(jobID)\(id): \(error)")
    }

    func redact(_ text: String) -> String {
        guard let apiKey, apiKey.count >= 6 else { return text }
        return text.replacingOccurrences(of: apiKey, with: "<redacted>")
    }
}
