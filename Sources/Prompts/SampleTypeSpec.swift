import Contexts
import ForgeCore
import Foundation
import Yams

/// One few-shot seed example: a symbolic context and the response we want for it.
public struct FewShotExample: Sendable, Equatable {
    public var name: String
    public var context: String
    public var response: String
}

/// Everything that defines a sample type, loaded from `prompts/<type>/` and `seeds/<type>/`.
public struct SampleTypeSpec: Sendable {
    public var name: String
    public var systemMessage: String
    public var context: ContextKind
    /// How the response is parsed: conversation | description | single_qa.
    public var format: String
    /// Human instructions, one sampled per sample (description types).
    public var instructions: [String]
    public var maxTokens: Int
    public var temperature: Double
    public var fewShot: [FewShotExample]
    /// sha256 over every file that shapes the request (system, instructions, type.yaml, seeds).
    public var fingerprint: String
    /// Structured output: `schema.json` (the JSON schema of a response, sent as
    /// `response_format`) and `structured.txt` (appended to the system message in that mode).
    public var responseSchema: String? = nil
    public var structuredNote: String? = nil

    public static let formats = ["conversation", "description", "single_qa"]

    /// LLaVA's file name for a type's export (reasoning → complex_reasoning).
    public var exportStem: String { name == "reasoning" ? "complex_reasoning" : name }
}

/// `type.yaml`, strictly: unknown keys and wrong types are errors that name the line.
struct TypeConfig {
    var context: ContextKind
    var format: String
    var instructions: String?
    var maxTokens: Int
    var temperature: Double

    static let keys: Set<String> = ["context", "format", "instructions", "max_tokens", "temperature"]

    static func load(path: String, defaultsFor type: String) throws -> TypeConfig {
        var cfg = TypeConfig(
            context: ContextKind.builtin(forType: type) ?? .captions,
            format: type == "detail" ? "description" : (type == "reasoning" ? "single_qa" : "conversation"),
            instructions: nil, maxTokens: 1024, temperature: 0.7)
        guard FileManager.default.fileExists(atPath: path) else {
            if ContextKind.builtin(forType: type) == nil {
                throw ForgeError(.config, "missing type.yaml for a custom type (keys: \(keys.sorted().joined(separator: ", ")))", file: path)
            }
            return cfg
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let e as YamlError {
            throw ForgeError(.config, "malformed YAML: \(e)", file: path)
        }
        guard let node else { return cfg }
        guard let map = node.mapping else {
            throw ForgeError(.config, "expected a mapping of keys", file: path, location: "line \((node.mark?.line ?? 0))")
        }
        for (k, v) in map {
            let key = k.string ?? ""
            let loc = "line \(k.mark?.line ?? 0), key '\(key)'"
            guard keys.contains(key) else {
                throw ForgeError(.config, "unknown key (expected one of: \(keys.sorted().joined(separator: ", ")))", file: path, location: loc)
            }
            switch key {
            case "context":
                guard let s = v.string, let kind = ContextKind(rawValue: s) else {
                    throw ForgeError(.config, "context must be one of: \(ContextKind.allCases.map(\.rawValue).joined(separator: ", "))", file: path, location: loc)
                }
                cfg.context = kind
            case "format":
                guard let s = v.string, SampleTypeSpec.formats.contains(s) else {
                    throw ForgeError(.config, "format must be one of: \(SampleTypeSpec.formats.joined(separator: ", "))", file: path, location: loc)
                }
                cfg.format = s
            case "instructions":
                guard let s = v.string, !s.isEmpty else { throw ForgeError(.config, "instructions must be a file name", file: path, location: loc) }
                cfg.instructions = s
            case "max_tokens":
                guard let n = v.int, n > 0 else { throw ForgeError(.config, "max_tokens must be a positive integer", file: path, location: loc) }
                cfg.maxTokens = n
            case "temperature":
                guard let d = v.float, d >= 0, d <= 2 else { throw ForgeError(.config, "temperature must be a number in [0, 2]", file: path, location: loc) }
                cfg.temperature = d
            default: break
            }
        }
        return cfg
    }
}
