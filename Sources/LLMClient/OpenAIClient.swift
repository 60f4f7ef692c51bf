import CCurl
import ForgeCore
import Foundation

/// An OpenAI-compatible chat-completions client over libcurl.
///
/// Thread-safe: `complete` may be called concurrently from many threads. Each call checks out
/// one CURL easy handle from a pool (creating one when none is idle) and puts it back afterwards,
/// so keep-alive connections are reused from call to call. Retryable failures are retried up to
/// `config.maxRetries` times with capped exponential back-off plus jitter, or after the delay the
/// server asked for (`retry-after-ms` / `Retry-After`).
public final class OpenAIClient: @unchecked Sendable {
    public let config: ClientConfig
    let chatURL: String
    let modelsURL: String
    /// The key as sent; `nil` when none (empty counts as none).
    private let apiKey: String?

    private let poolLock = NSLock()
    private var idleHandles: [EasyHandle] = []
    /// Idle handles kept beyond this are freed (with their connections).
    private let maxIdleHandles = 64

    public init(config: ClientConfig) throws {
        guard let base = OpenAIClient.validatedBaseURL(config.baseURL) else {
            throw ForgeError(.config, "base URL must be an absolute http:// or https:// URL without query or fragment, got '\(config.baseURL)'")
        }
        guard config.connectTimeout > 0, config.connectTimeout.isFinite,
              config.requestTimeout > 0, config.requestTimeout.isFinite else {
            throw ForgeError(.config, "timeouts must be positive numbers of seconds")
        }
        guard config.maxRetries >= 0 else { throw ForgeError(.config, "maxRetries must be 0 or more") }
        guard config.backoffBase >= 0, config.backoffBase.isFinite, config.backoffCap >= 0, config.backoffCap.isFinite else {
            throw ForgeError(.config, "back-off times must be non-negative numbers of seconds")
        }
        if let key = config.apiKey, !key.isEmpty, !APIKey.isValid(key) {
            throw ForgeError(.config, "the API key contains spaces or control characters")
        }
        guard CurlRuntime.initialized else { throw ForgeError(.network, "curl_global_init failed") }
        self.config = config
        self.apiKey = (config.apiKey?.isEmpty ?? true) ? nil : config.apiKey
        self.chatURL = base + "/chat/completions"
        self.modelsURL = base + "/models"
    }

    /// One chat completion, retried as described on the type. Never throws; never blocks longer
    /// than about `(maxRetries + 1) * requestTimeout` plus the back-off waits.
    public func complete(_ request: ChatRequest) -> Result<ChatResult, LLMError> {
        let body = request.bodyJSON()
        return withRetries {
            self.transfer(url: self.chatURL, body: body).flatMap { exchange in
                ResponseParser.chatResult(exchange, redact: self.redact)
            }
        }
    }

    /// `GET /models`: the ids the server offers, in the server's order.
    public func listModels() -> Result<[String], LLMError> {
        withRetries {
            self.transfer(url: self.modelsURL, body: nil).flatMap { exchange in
                ResponseParser.modelIDs(exchange, redact: self.redact)
            }
        }
    }

    deinit {
        poolLock.lock()
        idleHandles.removeAll()
        poolLock.unlock()
    }

    // MARK: - Retries

    private func withRetries<T>(_ attempt: () -> Result<T, LLMError>) -> Result<T, LLMError> {
        var retry = 0
        while true {
            let result = attempt()
            guard case .failure(let error) = result, error.isRetryable, retry < config.maxRetries else { return result }
            let wait = backoffDelay(retry: retry, error: error)
            if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            retry += 1
        }
    }

    /// The wait before retry `retry` (0-based): the server's requested delay (up to
    /// `max(backoffCap, 60)` s, plus up to 10 % jitter) or `min(backoffCap, backoffBase · 2^retry)`
    /// jittered to 50–100 %.
    func backoffDelay(retry: Int, error: LLMError) -> Double {
        if let asked = error.retryAfterSeconds {
            let honored = min(asked, max(config.backoffCap, 60))
            return honored + honored * Double.random(in: 0...0.1)
        }
        let exponential = config.backoffBase * pow(2, Double(min(retry, 30)))
        return min(config.backoffCap, exponential) * Double.random(in: 0.5...1.0)
    }

    // MARK: - Transfers

    /// One HTTP exchange: POST `body` as JSON, or GET when `body` is nil. A transport failure is
    /// an error; any HTTP status is an `Exchange`.
    private func transfer(url: String, body: Data?) -> Result<Exchange, LLMError> {
        guard let handle = checkout() else {
            return .failure(.transport(code: 2, message: "curl_easy_init failed"))
        }
        defer { checkin(handle) }
        let curl = handle.curl
        let sink = TransferSink()

        var headers: UnsafeMutablePointer<curl_slist>?
        func addHeader(_ line: String) {
            if let list = curl_slist_append(headers, line) { headers = list }
        }
        addHeader("Accept: application/json")
        if body != nil {
            addHeader("Content-Type: application/json")
            addHeader("Expect:")
        }
        if let apiKey { addHeader("Authorization: Bearer \(apiKey)") }
        defer { curl_slist_free_all(headers) }

        handle.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        _ = url.withCString { forge_curl_setopt_ptr(curl, CURLOPT_URL, $0) }
        _ = forge_curl_setopt_ptr(curl, CURLOPT_ERRORBUFFER, handle.errorBuffer)
        CurlOptions.applyCommon(curl, config: config, url: url)
        _ = forge_curl_setopt_ptr(curl, CURLOPT_HTTPHEADER, headers.map { UnsafeRawPointer($0) })
        let context = Unmanaged.passUnretained(sink).toOpaque()
        _ = forge_curl_setopt_writefn(curl, CURLOPT_WRITEFUNCTION, curlBodyCallback)
        _ = forge_curl_setopt_ptr(curl, CURLOPT_WRITEDATA, context)
        _ = forge_curl_setopt_writefn(curl, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
        _ = forge_curl_setopt_ptr(curl, CURLOPT_HEADERDATA, context)

        let started = DispatchTime.now().uptimeNanoseconds
        let code: CURLcode = withExtendedLifetime(sink) {
            if let body {
                _ = forge_curl_setopt_long(curl, CURLOPT_POST, 1)
                _ = forge_curl_setopt_off(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                return body.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> CURLcode in
                    // An empty buffer may have no address; curl must never get NULL here
                    // (NULL means "use the read callback").
                    var zero: UInt8 = 0
                    return withUnsafePointer(to: &zero) { fallback in
                        _ = forge_curl_setopt_ptr(curl, CURLOPT_POSTFIELDS, raw.baseAddress ?? UnsafeRawPointer(fallback))
                        return curl_easy_perform(curl)
                    }
                }
            } else {
                _ = forge_curl_setopt_long(curl, CURLOPT_HTTPGET, 1)
                return curl_easy_perform(curl)
            }
        }
        let latencyMs = Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000

        guard code == CURLE_OK else {
            let detail = String(cString: handle.errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(.transport(code: Int(code.rawValue), message: redact(message)))
        }
        var status = 0
        _ = forge_curl_getinfo_long(curl, CURLINFO_RESPONSE_CODE, &status)
        return .success(Exchange(status: status, body: sink.body, headers: sink.headers, latencyMs: latencyMs))
    }

    private func checkout() -> EasyHandle? {
        poolLock.lock()
        let handle = idleHandles.popLast()
        poolLock.unlock()
        return handle ?? EasyHandle()
    }

    /// Resets the options (which point at per-call memory) but keeps the handle's live
    /// connections, then makes it available again.
    private func checkin(_ handle: EasyHandle) {
        curl_easy_reset(handle.curl)
        poolLock.lock()
        if idleHandles.count < maxIdleHandles { idleHandles.append(handle) }
        poolLock.unlock()
    }

    // MARK: - Helpers

    /// Removes the key from any text that could end up in an error or a log.
    func redact(_ text: String) -> String {
        guard let apiKey, apiKey.count >= 6 else { return text }
        return text.replacingOccurrences(of: apiKey, with: "<redacted>")
    }

    static func milliseconds(_ seconds: Double) -> Int {
        Int(max(1, min((seconds * 1000).rounded(), Double(Int32.max))))
    }

    /// `http(s)://host[:port][/path]` with the trailing slashes removed, or nil.
    static func validatedBaseURL(_ text: String) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let comps = URLComponents(string: trimmed),
              let scheme = comps.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = comps.host, !host.isEmpty,
              comps.query == nil, comps.fragment == nil,
              comps.user == nil, comps.password == nil
        else { return nil }
        var result = trimmed
        while result.hasSuffix("/") { result.removeLast() }
        return result
    }
}

/// `curl_global_init`, once per process.
enum CurlRuntime {
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
}

/// A CURL easy handle with its error buffer; freed together.
final class EasyHandle {
    let curl: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard CurlRuntime.initialized, let curl = curl_easy_init() else { return nil }
        self.curl = curl
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(curl)
        errorBuffer.deallocate()
    }
}

/// What the curl callbacks collect during one transfer.
final class TransferSink {
    var body = Data()
    var headers: [String: String] = [:]
}

/// One completed HTTP exchange (any status).
struct Exchange {
    var status: Int
    var body: Data
    var headers: [String: String]
    var latencyMs: Double
}

let curlBodyCallback: forge_curl_write_cb = { data, size, count, context in
    let n = size * count
    guard let context else { return 0 }
    if let data, n > 0 {
        let sink = Unmanaged<TransferSink>.fromOpaque(context).takeUnretainedValue()
        data.withMemoryRebound(to: UInt8.self, capacity: n) { sink.body.append($0, count: n) }
    }
    return n
}

/// Called once per header line (status line and the blank line included). A new status line
/// (after `100 Continue`, say) starts a fresh header set.
let curlHeaderCallback: forge_curl_write_cb = { data, size, count, context in
    let n = size * count
    guard let context else { return 0 }
    guard let data, n > 0 else { return n }
    let sink = Unmanaged<TransferSink>.fromOpaque(context).takeUnretainedValue()
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
        String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
    }
    if line.hasPrefix("HTTP/") {
        sink.headers.removeAll()
        return n
    }
    guard let colon = line.firstIndex(of: ":") else { return n }
    let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
    let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
    guard !name.isEmpty else { return n }
    if let existing = sink.headers[name] {
        sink.headers[name] = existing + ", " + value
    } else {
        sink.headers[name] = value
    }
    return n
}
