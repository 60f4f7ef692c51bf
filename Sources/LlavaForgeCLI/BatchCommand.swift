import ArgumentParser
import ForgeCore
import Foundation
import Generation
import Prompts
import Store

struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "OpenAI Batch API mode: export request files, import result files.",
        discussion: """
        export writes the type's unanswered requests as Batch API JSONL (custom_id, method, url,
        body; ≤ 50,000 lines and ≤ 200 MB per file), journalled so nothing is exported twice;
        import reads the output (and error) files you download, matched on custom_id in any order,
        into the same store as live runs. Live `generate` skips exported requests.
        """,
        subcommands: [BatchExport.self, BatchImport.self])
}

struct BatchExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write Batch API request files for one sample type.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Sample type (a folder under prompts/).") var type: String
    @Option(help: "How many samples of this type the database should hold when done.") var limit: Int
    @Option(help: "Folder for the .jsonl files.") var out: String
    @Option(help: "Model name written into each body.") var model: String?
    @Option(help: "Seed for image order, instruction choice and <image> placement.") var seed: UInt64 = 0
    @Option(help: "Override the type's temperature.") var temperature: Double?
    @Option(name: .customLong("max-tokens"), help: "Override the type's max_tokens.") var maxTokens: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling top_p.") var topP: Double?
    @Option(name: .customLong("max-lines"), help: "Lines per file (the API allows 50,000).") var maxLines: Int = 50_000
    @Option(name: .customLong("max-mb"), help: "MB per file (the API allows 200).") var maxMB: Int = 200
    @Option(help: "prompts/ folder (default: found from the working directory).") var prompts: String?
    @Option(help: "seeds/ folder (default: beside prompts/).") var seeds: String?

    func run() throws {
        try runReportingErrors {
            guard let model = model ?? ProcessInfo.processInfo.environment["LLAVA_FORGE_MODEL"] else {
                throw ForgeError(.usage, "no model: pass --model NAME (or set LLAVA_FORGE_MODEL)")
            }
            let spec = try PromptLibrary.locate(prompts: prompts, seeds: seeds).load(type: type)
            let db = try ForgeDatabase(path: database.db)
            var options = GenerateOptions(limit: limit, model: model, baseURL: "batch")
            options.seed = seed
            options.temperature = temperature
            options.maxTokens = maxTokens
            options.topP = topP
            let exporter = BatchExporter(database: db, spec: spec, options: options)
            exporter.maxLines = maxLines
            exporter.maxBytes = maxMB * 1024 * 1024
            let s = try exporter.export(outDir: out)
            print("\(type): \(s.requests) requests in \(s.files.count) file(s); \(s.alreadyAnswered) already answered, \(s.alreadyExported) already exported\(s.rewritten > 0 ? ", \(s.rewritten) missing file(s) rewritten" : "")")
            for f in s.files { print("  \(f)") }
        }
    }
}

struct BatchImport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Read Batch API output/error files into the store.")

    @OptionGroup var database: DatabaseOption
    @Argument(help: "Batch output or error files (.jsonl).") var files: [String]
    @Option(help: "prompts/ folder (default: found from the working directory).") var prompts: String?
    @Option(help: "seeds/ folder (default: beside prompts/).") var seeds: String?
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            guard !files.isEmpty else { throw ForgeError(.usage, "give one or more batch output files") }
            guard FileManager.default.fileExists(atPath: database.db) else { throw ForgeError(.io, "database does not exist", file: database.db) }
            let db = try ForgeDatabase(path: database.db)
            let s = try BatchImporter(database: db, library: try PromptLibrary.locate(prompts: prompts, seeds: seeds)).importFiles(files)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(s), as: UTF8.self))
            } else {
                print("\(s.lines) lines: samples ok \(s.samplesOK), parse failed \(s.parseFailed), truncated \(s.truncated), failed \(s.failed), unknown custom_id \(s.unknown), already answered \(s.alreadyDone)")
                print("  tokens: \(s.promptTokens) prompt, \(s.completionTokens) completion")
                for e in s.firstErrors { print("  error: \(e)") }
            }
        }
    }
}
