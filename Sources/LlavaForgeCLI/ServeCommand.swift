import ArgumentParser
import ForgeCore
import Foundation
import LLMClient
import Serving

/// `llava-forge serve`: the OpenAI-compatible server over a GGUF file or a model folder.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/models, /health).",
        discussion: """
        --model is a GGUF file (quantized decode engine, its tokenizer and chat template) or a Hugging \
        Face folder (LLaMA-family LM, or a llava model: images as data: URLs in image_url content parts).

        Binds 127.0.0.1 unless --host says otherwise. With --api-key (or --api-key-file) every /v1 \
        request needs `Authorization: Bearer KEY` (401 otherwise); /health is open. Concurrent requests \
        are decoded together (continuous batching, --max-concurrency at a time); --queue more may wait, \
        beyond that the answer is 503 with Retry-After. --port 0 picks a free port. The first line on \
        stdout is `listening on http://HOST:PORT` once the server accepts connections.

        SIGINT/SIGTERM: new requests are refused, running ones finish (cancelled after 30 s or at a \
        second signal), exit code 0.
        """)

    @Option(name: .long, help: "A .gguf file or a model folder.")
    var model: String

    @Option(name: .long, help: "Address to bind (default loopback only).")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port (0 = any free port).")
    var port: Int = 8080

    @Option(name: .long, help: "Require this bearer key.")
    var apiKey: String?

    @Option(name: .long, help: "Read the bearer key from this file.")
    var apiKeyFile: String?

    @Option(name: .long, help: "Sequences decoded together in one batched step (bench/decode_bench.sh measures 1 vs 8).")
    var maxConcurrency: Int = 8

    @Option(name: .long, help: "Requests that may wait beyond those (then 503).")
    var queue: Int = 16

    @Option(name: .long, help: "Largest max_tokens a request may ask for (also the default).")
    var maxTokensLimit: Int = 4096

    @Option(name: .long, help: "Largest request body in bytes (images included).")
    var maxRequestBytes: Int = 32 << 20

    @Option(name: .long, help: "The model id in /v1/models and responses (default: the file or folder name).")
    var modelName: String?

    @Option(name: .long, help: "auto (the model's own template, else llava-hf for llava, else chatml) or a template name.")
    var template: String = "auto"

    @Option(name: .long, help: "Seconds running requests may take to finish after SIGINT/SIGTERM.")
    var shutdownGrace: Double = 30

    @Option(name: .long, help: .hidden)
    var exitWithParent: Int32?

    func validate() throws {
        if apiKey != nil && apiKeyFile != nil { throw ValidationError("give at most one of --api-key and --api-key-file") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if maxConcurrency < 1 { throw ValidationError("--max-concurrency must be ≥ 1") }
        if queue < 0 { throw ValidationError("--queue must be ≥ 0") }
        if maxTokensLimit < 1 { throw ValidationError("--max-tokens-limit must be ≥ 1") }
        if maxRequestBytes < 1024 { throw ValidationError("--max-request-bytes must be ≥ 1024") }
    }

    func run() throws {
        try runReportingErrors {
            var key = apiKey
            if let apiKeyFile { key = try APIKey.resolve(keyFile: apiKeyFile) }
            let chatModel = try ChatModel(path: model, template: template)
            var options = ChatService.Options(modelName: modelName ?? chatModel.model.displayName)
            options.maxConcurrency = maxConcurrency
            options.queueCapacity = queue
            options.limits = .init(maxTokens: maxTokensLimit)
            let service = ChatService(model: chatModel, options: options)
            var configuration = OpenAIServer.Configuration()
            configuration.host = host
            configuration.port = port
            configuration.apiKey = key
            configuration.maxRequestBytes = maxRequestBytes
            configuration.shutdownGrace = shutdownGrace
            let server = OpenAIServer(service: service, configuration: configuration)
            let host = self.host
            let name = options.modelName
            printErr("serve: \(name) (\(chatModel.template.name.rawValue) template, \(chatModel.maximumPositions) positions, "
                     + "\(chatModel.maxImages) image(s) per request), \(maxConcurrency) at a time, queue \(queue)")
            let parentWatch = exitWithParent.map(Self.watchParent)
            defer { parentWatch?.cancel() }
            let outcome = blockingRun {
                try await server.run(handleSignals: true, logLevel: .warning) { port in
                    let line = "listening on http://\(host.contains(":") ? "[\(host)]" : host):\(port)\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                }
            }
            if case .failure(let error) = outcome {
                throw ForgeError(.network, "the server stopped: \(error)")
            }
            printErr("serve: stopped (\(service.counts.finished) finished, \(service.counts.cancelled) cancelled, \(service.counts.rejected) refused)")
        }
    }
}

extension Serve {
    /// A server started by the pipeline goes when its parent does (SIGTERM to itself: the usual
    /// graceful shutdown), even if the parent was killed before it could stop it.
    static func watchParent(_ pid: Int32) -> DispatchSourceTimer {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "llava-forge.serve.parent"))
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler {
            if getppid() != pid {
                // Nobody is left to read the answers: stop accepting and cancel what runs (the
                // second signal cancels at once).
                timer.cancel()
                kill(getpid(), SIGTERM)
                usleep(200_000)
                kill(getpid(), SIGTERM)
            }
        }
        timer.resume()
        return timer
    }
}

/// Runs an async body to completion from a synchronous command (the main thread waits; the body
/// runs on Swift's concurrency pool and NIO's event loops).
func blockingRun(_ body: @escaping @Sendable () async throws -> Void) -> Result<Void, Error> {
    let done = DispatchSemaphore(value: 0)
    let box = ResultHolder()
    Task.detached {
        do { try await body(); box.value = .success(()) } catch { box.value = .failure(error) }
        done.signal()
    }
    done.wait()
    return box.value
}

private final class ResultHolder: @unchecked Sendable {
    var value: Result<Void, Error> = .success(())
}
