import ArgumentParser
import ForgeCore
import Foundation
import Generation
import LLMClient
import Prompts
import Store

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask an OpenAI-compatible LLM to write samples of one type from the stored images.",
        discussion: """
        Messages: the type's system message, each seed example as a user/assistant pair, then the
        image's symbolic context. Works with any /v1/chat/completions server (OpenAI, vLLM, Ollama,
        llama.cpp). The key comes from OPENAI_API_KEY or --api-key-file and is never stored or logged.
        Every request is journalled; a rerun sends only what is not answered yet.
        Environment defaults: LLAVA_FORGE_BASE_URL (or OPENAI_BASE_URL), LLAVA_FORGE_MODEL.
        """)

    @OptionGroup var database: DatabaseOption
    @Option(help: "Sample type (a folder under prompts/): conversation, detail, reasoning, …") var type: String
    @Option(help: "How many samples of this type the database should hold when done.") var limit: Int
    @Option(name: .customLong("base-url"), help: "API base URL including /v1, e.g. http://127.0.0.1:8080/v1.") var baseURL: String?
    @Option(help: "Model name sent to the server.") var model: String?
    @Option(help: "Requests in flight at once.") var concurrency: Int = 8
    @Option(help: "Seed for image order, instruction choice and <image> placement.") var seed: UInt64 = 0
    @Option(help: "Override the type's temperature.") var temperature: Double?
    @Option(name: .customLong("max-tokens"), help: "Override the type's max_tokens.") var maxTokens: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling top_p.") var topP: Double?
    @Option(name: .customLong("image-id"), parsing: .upToNextOption, help: "Only these image ids.") var imageIDs: [Int64] = []
    @Option(name: .customLong("api-key-file"), help: "File holding the API key (else OPENAI_API_KEY).") var apiKeyFile: String?
    @Option(name: .customLong("timeout"), help: "Seconds before one request times out.") var timeout: Double = 600
    @Option(name: .customLong("max-retries"), help: "Retries for retryable failures (429, 5xx, resets, timeouts).") var maxRetries: Int = 4
    @Option(help: "prompts/ folder (default: found from the working directory).") var prompts: String?
    @Option(help: "seeds/ folder (default: beside prompts/).") var seeds: String?
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            let env = ProcessInfo.processInfo.environment
            guard let baseURL = baseURL ?? env["LLAVA_FORGE_BASE_URL"] ?? env["OPENAI_BASE_URL"] else {
                throw ForgeError(.usage, "no API: pass --base-url URL (or set LLAVA_FORGE_BASE_URL / OPENAI_BASE_URL)")
            }
            guard let model = model ?? env["LLAVA_FORGE_MODEL"] else {
                throw ForgeError(.usage, "no model: pass --model NAME (or set LLAVA_FORGE_MODEL)")
            }
            guard concurrency >= 1 else { throw ForgeError(.usage, "--concurrency must be ≥ 1") }
            let library = try PromptLibrary.locate(prompts: prompts, seeds: seeds)
            let spec = try library.load(type: type)
            let db = try ForgeDatabase(path: database.db)
            var cfg = ClientConfig(baseURL: baseURL, apiKey: try APIKey.resolve(keyFile: apiKeyFile))
            cfg.requestTimeout = timeout
            cfg.maxRetries = maxRetries
            let client = try OpenAIClient(config: cfg)
            var options = GenerateOptions(limit: limit, model: model, baseURL: baseURL)
            options.concurrency = concurrency
            options.seed = seed
            options.temperature = temperature
            options.maxTokens = maxTokens
            options.topP = topP
            if !imageIDs.isEmpty { options.imageIDs = imageIDs }
            let summary = try Generator(database: db, spec: spec, client: client, options: options).run(progress: printErr)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(summary), as: UTF8.self))
            } else {
                print("""
                \(summary.type): \(summary.planned) planned, \(summary.cached) from the store, \(summary.sent) sent in \(String(format: "%.1f", summary.seconds)) s
                  samples ok \(summary.samplesOK), parse failed \(summary.parseFailed), truncated \(summary.truncated), request failures \(summary.failed)
                  tokens: \(summary.promptTokens) prompt, \(summary.completionTokens) completion
                """)
                for e in summary.firstErrors { print("  error: \(e)") }
            }
            if let reason = summary.stoppedReason {
                throw ForgeError(.network, "run stopped: \(reason)")
            }
            if summary.failed > 0 && summary.succeeded == 0 && summary.sent > 0 {
                throw ForgeError(.network, "every request failed (\(summary.errorsByClass.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))); see the errors above")
            }
        }
    }
}
