import Contexts
import ForgeCore
import Foundation

/// A chat message as the prompt assembler produces it (the client module has its own wire type).
public struct PromptMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// Loads sample types from disk at run time, so users edit prompts without rebuilding and add a
/// type by adding `prompts/<type>/` and `seeds/<type>/`.
///
///     prompts/<type>/system.txt        the system message
///     prompts/<type>/type.yaml         context, format, instructions, max_tokens, temperature
///     prompts/<type>/instructions.txt  (description types) one instruction per line
///     seeds/<type>/<name>.context.txt  few-shot example input
///     seeds/<type>/<name>.response.txt few-shot example output
public struct PromptLibrary: Sendable {
    public let promptsDir: String
    public let seedsDir: String

    public init(promptsDir: String, seedsDir: String) {
        self.promptsDir = promptsDir
        self.seedsDir = seedsDir
    }

    /// Finds prompts/ and seeds/: explicit paths, else $LLAVA_FORGE_HOME, else the current
    /// directory or any parent of it that has both (so the CLI works from inside the repo).
    public static func locate(prompts: String?, seeds: String?) throws -> PromptLibrary {
        if let prompts, let seeds { return PromptLibrary(promptsDir: prompts, seedsDir: seeds) }
        var candidates: [String] = []
        if let home = ProcessInfo.processInfo.environment["LLAVA_FORGE_HOME"] { candidates.append(home) }
        var dir = FileManager.default.currentDirectoryPath
        while true {
            candidates.append(dir)
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { break }
            dir = parent
        }
        for c in candidates where FileManager.default.fileExists(atPath: c + "/prompts") && FileManager.default.fileExists(atPath: c + "/seeds") {
            return PromptLibrary(promptsDir: prompts ?? c + "/prompts", seedsDir: seeds ?? c + "/seeds")
        }
        throw ForgeError(.config, "cannot find prompts/ and seeds/ (run inside the llava-forge checkout, set LLAVA_FORGE_HOME, or pass --prompts and --seeds)")
    }

    /// Types that have a prompts/<type>/system.txt.
    public func availableTypes() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: promptsDir)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: "\(promptsDir)/\($0)/system.txt") }.sorted()
    }

    public func load(type: String) throws -> SampleTypeSpec {
        let dir = "\(promptsDir)/\(type)"
        let systemPath = "\(dir)/system.txt"
        guard FileManager.default.fileExists(atPath: systemPath) else {
            let known = availableTypes()
            throw ForgeError(.config, "unknown sample type '\(type)'\(known.isEmpty ? "" : " (known: \(known.joined(separator: ", ")))")", file: systemPath)
        }
        var hasher = SHA256()
        func read(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path) else { throw ForgeError(.io, "cannot read", file: path) }
            guard let s = String(data: data, encoding: .utf8) else { throw ForgeError(.badInput, "not valid UTF-8", file: path) }
            hasher.update(Array(path.split(separator: "/").suffix(2).joined(separator: "/").utf8))
            hasher.update(Array(data))
            return s
        }
        let system = try read(systemPath).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !system.isEmpty else { throw ForgeError(.config, "system message is empty", file: systemPath) }
        let yamlPath = "\(dir)/type.yaml"
        if FileManager.default.fileExists(atPath: yamlPath) { _ = try read(yamlPath) }
        let cfg = try TypeConfig.load(path: yamlPath, defaultsFor: type)
        var instructions: [String] = []
        if let file = cfg.instructions {
            instructions = try read("\(dir)/\(file)").split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !instructions.isEmpty else { throw ForgeError(.config, "instruction list is empty", file: "\(dir)/\(file)") }
        }
        if cfg.format == "description" && instructions.isEmpty {
            throw ForgeError(.config, "a description type needs an instruction list (key 'instructions')", file: yamlPath)
        }
        let fewShot = try loadSeeds(type: type, read: read)
        // Optional structured-output files (used only when a run asks for JSON responses).
        let schemaPath = "\(dir)/schema.json", notePath = "\(dir)/structured.txt"
        let schema = FileManager.default.fileExists(atPath: schemaPath) ? try read(schemaPath) : nil
        let note = FileManager.default.fileExists(atPath: notePath) ? try read(notePath).trimmingCharacters(in: .whitespacesAndNewlines) : nil
        return SampleTypeSpec(
            name: type, systemMessage: system, context: cfg.context, format: cfg.format, instructions: instructions,
            maxTokens: cfg.maxTokens, temperature: cfg.temperature, fewShot: fewShot,
            fingerprint: hasher.finalize().map { String(format: "%02x", $0) }.joined(),
            responseSchema: schema, structuredNote: note)
    }

    private func loadSeeds(type: String, read: (String) throws -> String) throws -> [FewShotExample] {
        let dir = "\(seedsDir)/\(type)"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var examples: [FewShotExample] = []
        for name in names.sorted() where name.hasSuffix(".context.txt") {
            let stem = String(name.dropLast(".context.txt".count))
            let responsePath = "\(dir)/\(stem).response.txt"
            guard FileManager.default.fileExists(atPath: responsePath) else {
                throw ForgeError(.config, "seed example has a context but no \(stem).response.txt", file: "\(dir)/\(name)")
            }
            examples.append(FewShotExample(
                name: stem,
                context: try read("\(dir)/\(name)").trimmingCharacters(in: .whitespacesAndNewlines),
                response: try read(responsePath).trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        for name in names where name.hasSuffix(".response.txt") {
            let stem = String(name.dropLast(".response.txt".count))
            if !names.contains("\(stem).context.txt") {
                throw ForgeError(.config, "seed example has a response but no \(stem).context.txt", file: "\(dir)/\(name)")
            }
        }
        return examples
    }
}

extension SampleTypeSpec {
    /// LLaVA's prompt: the system message, then each few-shot example as a user/assistant pair,
    /// then the query context as the last user message.
    public func messages(forContext context: String) -> [PromptMessage] {
        var m = [PromptMessage(role: "system", content: systemMessage)]
        for ex in fewShot {
            m.append(PromptMessage(role: "user", content: ex.context))
            m.append(PromptMessage(role: "assistant", content: ex.response))
        }
        m.append(PromptMessage(role: "user", content: context))
        return m
    }
}
