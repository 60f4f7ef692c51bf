import ForgeCore
import Foundation
import Parsing
import Prompts

/// Structured-output requests: the type's JSON schema (`prompts/<type>/schema.json`) sent as
/// OpenAI's `response_format` (`json_schema`, strict), the few-shot responses re-laid out as that
/// JSON, and the type's `structured.txt` note after the system message. Everything here is part
/// of the request body, hence of its cache key.
public struct StructuredRequest: Sendable {
    /// The `response_format` value, compact JSON.
    public let responseFormat: String
    public let messages: [PromptMessage]

    public init(spec: SampleTypeSpec) throws {
        let file = "prompts/\(spec.name)/schema.json"
        guard let schemaText = spec.responseSchema else {
            throw ForgeError(.config, "structured output is on but type '\(spec.name)' has no schema.json", file: file)
        }
        let schema = try Self.compactSchema(schemaText, file: file)
        let format = Parsing.ResponseFormat(rawValue: spec.format) ?? .conversation
        var name = String(("llava_forge_" + spec.name).map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
        if name.count > 64 { name = String(name.prefix(64)) }
        responseFormat = "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"\(name)\",\"strict\":true,\"schema\":\(schema)}}"
        var system = spec.systemMessage
        if let note = spec.structuredNote, !note.isEmpty { system += "\n\n" + note }
        var m = [PromptMessage(role: "system", content: system)]
        for ex in spec.fewShot {
            switch StructuredResponse.render(format: format, freeText: ex.response) {
            case .success(let json):
                m.append(PromptMessage(role: "user", content: ex.context))
                m.append(PromptMessage(role: "assistant", content: json))
            case .failure(let f):
                throw ForgeError(.config, "seed example '\(ex.name)' cannot be laid out as JSON: \(f)", file: "seeds/\(spec.name)/\(ex.name).response.txt")
            }
        }
        messages = m
    }

    /// The messages for one context.
    public func messages(forContext context: String) -> [PromptMessage] {
        messages + [PromptMessage(role: "user", content: context)]
    }

    /// `text` checked to be a JSON object and written without whitespace outside strings (key
    /// order kept: properties are generated in schema order), so reformatting the file does not
    /// change the request's cache key.
    public static func compactSchema(_ text: String, file: String) throws -> String {
        let data = Data(text.utf8)
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data) } catch {
            throw ForgeError(.config, "not valid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error)", file: file)
        }
        guard parsed is [String: Any] else { throw ForgeError(.config, "a JSON schema must be an object", file: file) }
        var out: [UInt8] = []
        var inString = false, escaped = false
        for b in text.utf8 {
            if inString {
                out.append(b)
                if escaped { escaped = false } else if b == 0x5C { escaped = true } else if b == 0x22 { inString = false }
            } else if b == 0x22 {
                inString = true
                out.append(b)
            } else if b != 0x20 && b != 0x0A && b != 0x0D && b != 0x09 {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
