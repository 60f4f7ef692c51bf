import Dispatch
import ForgeCore
import Foundation
import Hummingbird
import Inference
import Logging

/// The OpenAI-compatible HTTP server on Hummingbird 2: `POST /v1/chat/completions` (JSON or SSE
/// stream), `GET /v1/models`, `GET /health`. Binds loopback unless told otherwise; a bearer key
/// when one is set; request-size limit; 503 with `Retry-After` when the scheduler's queue is
/// full. SIGINT/SIGTERM: stop accepting, let running requests finish (cancelled after
/// `shutdownGrace` seconds or at a second signal), then return.
public final class OpenAIServer: Sendable {
    public struct Configuration: Sendable {
        public var host = "127.0.0.1"
        /// 0 = an ephemeral port (reported to `onListening`).
        public var port = 8080
        public var apiKey: String?
        public var maxRequestBytes = 32 << 20
        public var shutdownGrace: Double = 30
        public init() {}
    }

    public let service: ChatService
    public let configuration: Configuration
    private let startedAt = Int(Date().timeIntervalSince1970)

    public init(service: ChatService, configuration: Configuration) {
        self.service = service
        self.configuration = configuration
    }

    /// Serves until shut down. With `handleSignals`, SIGINT/SIGTERM shut it down gracefully;
    /// without, cancelling the calling task stops it (tests). `onListening` gets the bound port.
    public func run(handleSignals: Bool = true, logLevel: Logger.Level = .info, onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        var logger = Logger(label: "llava-forge.serve")
        logger.logLevel = logLevel
        let fallbackPort = configuration.port
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "llava-forge"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? fallbackPort) },
            logger: logger)
        let watcher = handleSignals ? ShutdownWatcher(service: service, grace: configuration.shutdownGrace) : nil
        defer {
            watcher?.stop()
            service.shutdown()
        }
        if handleSignals {
            try await app.runService()
        } else {
            try await app.run()
        }
    }

    // MARK: - Routes

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/health") { _, _ -> Response in
            let draining = self.service.isDraining
            let body = "{\"status\":\"\(draining ? "shutting_down" : "ok")\",\"model\":\(JSONText.quoted(self.service.options.modelName)),"
                + "\"active\":\(self.service.activeCount)}"
            return Self.json(draining ? 503 : 200, body)
        }
        router.get("/v1/models") { request, _ -> Response in
            if let denied = self.authorize(request) { return denied }
            return Self.json(200, CompletionJSON.models(name: self.service.options.modelName, created: self.startedAt))
        }
        router.post("/v1/chat/completions") { request, _ -> Response in
            if let denied = self.authorize(request) { return denied }
            do {
                var request = request
                let body = try await self.collectBody(request)
                // The body, read, goes back into the request as a buffer (which keeps the
                // connection's stream): the inbound-close handlers below need exactly that form
                // (they replay the buffer, then watch what follows it on the connection).
                request.body = RequestBody(buffer: ByteBuffer(bytes: body))
                let completion = try await self.service.start(body: body)
                if completion.request.stream { return self.streamingResponse(completion, request: request) }
                // A client that goes away before its answer ends its connection's inbound side:
                // Hummingbird's inbound-close handler cancels the sequence, which frees its batch
                // slot at the next step.
                let result = try await request.body.consumeWithInboundCloseHandler { _ in
                    try await completion.result()
                } onInboundClosed: {
                    completion.cancel()
                }
                // That handler consumed the connection's inbound stream: Hummingbird closes the
                // connection after this response, so tell the client not to reuse it.
                var response = Self.json(200, CompletionJSON.completion(completion, result: result))
                response.headers[.connection] = "close"
                return response
            } catch let e as APIError {
                return Self.error(e)
            }
        }
        return router
    }

    /// nil when the request may pass; else the 401 answer.
    func authorize(_ request: Request) -> Response? {
        guard let key = configuration.apiKey else { return nil }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), Self.constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), Array(key.utf8)) else {
            var response = Self.error(.unauthorized)
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }

    /// The whole body, refused past `maxRequestBytes` (413) — by its Content-Length before
    /// reading when it declares one.
    func collectBody(_ request: Request) async throws -> [UInt8] {
        let limit = configuration.maxRequestBytes
        let tooLarge = APIError(status: 413, message: "the request body is larger than this server's limit of \(limit) bytes", param: nil,
                                code: "request_too_large")
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit { throw tooLarge }
        var bytes: [UInt8] = []
        for try await buffer in request.body {
            guard bytes.count + buffer.readableBytes <= limit else { throw tooLarge }
            bytes += buffer.readableBytesView
        }
        return bytes
    }

    /// SSE: a role chunk, one chunk per piece of text, the finish chunk, the usage chunk when
    /// asked for, `[DONE]`. A client that goes away cancels its sequence.
    func streamingResponse(_ completion: Completion, request: Request) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        // The inbound-close handler below consumes the connection's inbound stream: Hummingbird
        // closes the connection after the response.
        headers[.connection] = "close"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // A client that has gone away is noticed two ways, both cancelling its sequence: its
            // connection's inbound side ends (Hummingbird's inbound-close handler — also while
            // nothing is written, e.g. during a long prefill), or the next write fails.
            do {
                try await writer.write(ByteBuffer(string: CompletionJSON.event(CompletionJSON.chunk(completion, role: true, content: ""))))
                try await request.body.consumeWithInboundCloseHandler { _ in
                    try await Self.writeEvents(completion, to: &writer)
                } onInboundClosed: {
                    completion.cancel()
                }
                try await writer.finish(nil)
            } catch {
                completion.cancel()
                throw error
            }
        })
    }

    /// The SSE chunks of `completion` until its end (the finish chunk, usage, `[DONE]`).
    static func writeEvents(_ completion: Completion, to writer: inout any ResponseBodyWriter) async throws {
        for await event in completion.events {
            switch event {
            case .token(let token):
                guard !token.text.isEmpty else { continue }
                try await writer.write(ByteBuffer(string: CompletionJSON.event(CompletionJSON.chunk(completion, content: token.text))))
            case .finished(let result):
                var tail = CompletionJSON.event(CompletionJSON.chunk(completion, content: nil, finish: result.finishReason,
                                                                        closedAtTokenBudget: result.closedAtTokenBudget))
                if completion.request.includeUsage { tail += CompletionJSON.event(CompletionJSON.usageChunk(completion, result: result)) }
                try await writer.write(ByteBuffer(string: tail + CompletionJSON.done))
            case .failed(let message):
                let error = APIError(status: 500, message: "generation failed: \(message)", type: "server_error")
                try await writer.write(ByteBuffer(string: CompletionJSON.event(error.body) + CompletionJSON.done))
            }
        }
    }

    static func json(_ status: Int, _ body: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func error(_ e: APIError) -> Response {
        var response = json(e.status, e.body)
        if let seconds = e.retryAfter { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}

/// SIGINT/SIGTERM beside Hummingbird's own graceful shutdown: refuse new requests at once, cancel
/// the running ones after the grace period or at a second signal.
final class ShutdownWatcher: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "llava-forge.serving.signals")
    private var signals = 0

    init(service: ChatService, grace: Double) {
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.signals += 1
                service.beginDraining()
                if self.signals == 1 {
                    FileHandle.standardError.write(Data("serve: shutting down (running requests may finish for \(Int(grace)) s; signal again to cancel them)\n".utf8))
                    self.queue.asyncAfter(deadline: .now() + grace) { service.cancelAll() }
                } else {
                    service.cancelAll()
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    func stop() { for s in sources { s.cancel() } }
}
