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
    @Option(help: "Requests in flight at once (8 suits a local server; hosted APIs take 32–128).") var concurrency: Int = 8
    @Option(help: "Seed for image order, instruction choice and <image> placement.") var seed: UInt64 = 0
    @Option(help: "Override the type's temperature.") var temperature: Double?
    @Option(name: .customLong("max-tokens"), help: "Override the type's max_tokens.") var maxTokens: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling top_p.") var topP: Double?
    @Option(name: .customLong("image-id"), parsing: .upToNextOption, help: "Only these image ids.") var imageIDs: [Int64] = []
    @Option(name: .customLong("api-key-file"), help: "File holding the API key (else OPENAI_API_KEY).") var apiKeyFile: String?
    @Option(name: .customLong("timeout"), help: "Seconds before one request times out.") var timeout: Double = 600
    @Option(name: .customLong("max-retries"), help: "Retries per request for retryable failures (408, 409, 5xx, resets, timeouts).") var maxRetries: Int = 4
    @Option(name: .customLong("connect-timeout"), help: "Seconds to connect (TCP + TLS).") var connectTimeout: Double = 10
    @Option(name: .customLong("stall-timeout"), help: "Seconds without a byte before a transfer counts as stalled.") var stallTimeout: Double = 120
    @Option(help: "Requests per minute allowed (the server's x-ratelimit headers may lower it).") var rpm: Double?
    @Option(help: "Tokens per minute allowed (prompt estimated before sending, corrected from usage).") var tpm: Double?
    @Option(name: .customLong("retry-budget"), help: "Retries allowed for the whole run (default: max(100, 10 % of the requests)).") var retryBudget: Int?
    @Option(help: "Price table (YAML/JSON: model → {input, output} in $ per 1M tokens) for the cost estimate.") var prices: String?
    @Option(name: .customLong("progress-interval"), help: "Seconds between progress lines when stderr is not a terminal.") var progressInterval: Double = 5
    @Flag(name: .customLong("include-exported"), help: "Also send live the requests waiting in Batch API files.") var includeExported = false
    @Flag(help: "Ask for JSON matching prompts/<type>/schema.json (response_format json_schema, strict) instead of the text layout.") var structured = false
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
            cfg.connectTimeout = connectTimeout
            cfg.stallTimeout = stallTimeout
            let client = try OpenAIClient(config: cfg)
            var options = GenerateOptions(limit: limit, model: model, baseURL: baseURL)
            options.concurrency = concurrency
            options.seed = seed
            options.temperature = temperature
            options.maxTokens = maxTokens
            options.structuredOutput = structured
            options.topP = topP
            if !imageIDs.isEmpty { options.imageIDs = imageIDs }
            options.requestsPerMinute = rpm
            options.tokensPerMinute = tpm
            options.retryBudget = retryBudget
            options.progressInterval = progressInterval
            options.includeExported = includeExported
            options.progressStyle = isatty(2) != 0 ? .terminal : .lines
            if let prices { options.prices = try PriceTable.load(path: prices) }
            let summary = try Generator(database: db, spec: spec, client: client, options: options).run(progress: printErr)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(summary), as: UTF8.self))
            } else {
                print("""
                \(summary.type): \(summary.planned) planned, \(summary.cached) from the store, \(summary.sent) sent in \(String(format: "%.1f", summary.seconds)) s
                  samples ok \(summary.samplesOK), parse failed \(summary.parseFailed), truncated \(summary.truncated), request failures \(summary.failed)
                  tokens: \(summary.promptTokens) prompt, \(summary.completionTokens) completion\(summary.costUSD.map { String(format: ", estimated cost $%.4f", $0) } ?? "")
                  attempts \(summary.attempts), HTTP 429 answers \(summary.http429)\(summary.retriesByClass.isEmpty ? "" : ", retries " + summary.retriesByClass.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
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
