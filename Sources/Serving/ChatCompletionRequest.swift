import ForgeCore
import Foundation
import Imaging
import Inference
import Tokenizers

/// A `POST /v1/chat/completions` body, validated. Unknown fields are ignored (OpenAI adds new ones
/// often); known fields of the wrong type or out of range are a 400 naming the field.
public struct ChatCompletionRequest: Sendable {
    public var model: String?
    public var turns: [ChatTurn]
    /// OpenAI's defaults: temperature 1, top_p 1 (0 = greedy).
    public var temperature: Double = 1
    public var topP: Double = 1
    /// Extensions (llama.cpp / vLLM names): top_k, min_p, repetition_penalty.
    public var topK: Int = 0
    public var minP: Double = 0
    public var repetitionPenalty: Double = 1
    /// `max_completion_tokens` or `max_tokens`; nil = up to the server's limit and the context end.
    public var maxTokens: Int?
    public var stop: [String] = []
    /// nil: a fresh random seed per request.
    public var seed: UInt64?
    public var stream = false
    public var includeUsage = false
    public var responseFormat: ResponseFormat = .text

    public init(turns: [ChatTurn]) { self.turns = turns }

    /// What the server accepts at most.
    public struct Limits: Sendable {
        /// Largest `max_tokens` a request may ask for.
        public var maxTokens: Int
        public var maxStopStrings = 16
        public var imageLimits = ImageLimits(maxSide: 8192, maxPixels: 40_000_000)
        public init(maxTokens: Int) { self.maxTokens = maxTokens }
    }

    /// Parses and validates a request body; every failure is an `APIError` (400).
    public static func parse(_ body: [UInt8], limits: Limits) throws -> ChatCompletionRequest {
        let root: JSONValue
        do { root = try JSONParser.parse(body, options: .requestBody) } catch let e as JSONSyntaxError {
            throw APIError.invalid("the request body is not valid JSON: \(e.description)", param: nil, code: "invalid_json")
        }
        guard case .object = root else { throw APIError.invalid("the request body must be a JSON object, got \(root.typeName)", param: nil) }
        var fields = FieldReader(root)

        let model = try fields.string("model")
        guard let messagesNode = root["messages"] else { throw APIError.invalid("'messages' is required", param: "messages") }
        guard case .array(let messages) = messagesNode else {
            throw APIError.invalid("'messages' must be an array, got \(messagesNode.typeName)", param: "messages")
        }
        guard !messages.isEmpty else { throw APIError.invalid("'messages' must not be empty", param: "messages") }
        var request = ChatCompletionRequest(turns: try messages.enumerated().map { try parseMessage($1, index: $0, limits: limits) })
        request.model = model

        if let t = try fields.number("temperature") {
            guard (0...2).contains(t) else { throw APIError.invalid("'temperature' must be between 0 and 2, got \(t)", param: "temperature") }
            request.temperature = t
        }
        if let p = try fields.number("top_p") {
            guard p > 0, p <= 1 else { throw APIError.invalid("'top_p' must be in (0, 1], got \(p)", param: "top_p") }
            request.topP = p
        }
        if let k = try fields.integer("top_k") {
            guard k >= 0 else { throw APIError.invalid("'top_k' must be ≥ 0, got \(k)", param: "top_k") }
            request.topK = Int(k)
        }
        if let m = try fields.number("min_p") {
            guard m >= 0, m < 1 else { throw APIError.invalid("'min_p' must be in [0, 1), got \(m)", param: "min_p") }
            request.minP = m
        }
        if let r = try fields.number("repetition_penalty") {
            guard r > 0 else { throw APIError.invalid("'repetition_penalty' must be > 0, got \(r)", param: "repetition_penalty") }
            request.repetitionPenalty = r
        }
        for key in ["frequency_penalty", "presence_penalty"] {
            if let v = try fields.number(key), !(-2...2).contains(v) {
                throw APIError.invalid("'\(key)' must be between -2 and 2, got \(v)", param: key)
            }
        }
        for key in ["max_tokens", "max_completion_tokens"] {
            guard let m = try fields.integer(key) else { continue }
            guard m >= 1 else { throw APIError.invalid("'\(key)' must be ≥ 1, got \(m)", param: key) }
            guard m <= limits.maxTokens else {
                throw APIError.invalid("'\(key)' is \(m); this server generates at most \(limits.maxTokens) tokens per request", param: key)
            }
            request.maxTokens = min(request.maxTokens ?? Int.max, Int(m))
        }
        if let n = try fields.integer("n"), n != 1 {
            throw APIError.invalid("only n = 1 is supported, got \(n)", param: "n")
        }
        if let seed = try fields.integer("seed") { request.seed = UInt64(bitPattern: seed) }
        request.stream = try fields.bool("stream") ?? false
        if let options = root["stream_options"], options != .null {
            guard case .object = options else { throw APIError.invalid("'stream_options' must be an object, got \(options.typeName)", param: "stream_options") }
            var inner = FieldReader(options, prefix: "stream_options.")
            request.includeUsage = try inner.bool("include_usage") ?? false
        }
        request.stop = try parseStop(root["stop"], limits: limits)
        request.responseFormat = try parseResponseFormat(root["response_format"])
        if try fields.bool("logprobs") == true {
            throw APIError.invalid("logprobs are not supported by this server", param: "logprobs")
        }
        if let tools = root["tools"], tools != .null {
            guard case .array(let list) = tools else { throw APIError.invalid("'tools' must be an array, got \(tools.typeName)", param: "tools") }
            if !list.isEmpty { throw APIError.invalid("tools (function calling) are not supported by this server", param: "tools") }
        }
        _ = try fields.string("user")
        return request
    }

    /// The sampling options of this request (a random seed when none was given).
    public var sampling: SamplingOptions {
        SamplingOptions(temperature: Float(temperature), topK: topK, topP: Float(topP), minP: Float(minP),
                        repetitionPenalty: Float(repetitionPenalty), seed: seed ?? UInt64.random(in: 0...UInt64.max))
    }

    // MARK: - Parts

    static func parseMessage(_ node: JSONValue, index: Int, limits: Limits) throws -> ChatTurn {
        let at = "messages[\(index)]"
        guard case .object = node else { throw APIError.invalid("each message must be an object, got \(node.typeName)", param: at) }
        var fields = FieldReader(node, prefix: at + ".")
        guard let roleName = try fields.string("role") else { throw APIError.invalid("'role' is required", param: at + ".role") }
        let role: ChatRole
        switch roleName {
        case "system", "developer": role = .system
        case "user": role = .user
        case "assistant": role = .assistant
        case "tool", "function":
            throw APIError.invalid("role '\(roleName)' is not supported (no tool calling)", param: at + ".role")
        default:
            throw APIError.invalid("unknown role '\(roleName)' (expected system, developer, user or assistant)", param: at + ".role")
        }
        guard let content = node["content"] else {
            if role == .assistant { return ChatTurn(role: role, text: "") }
            throw APIError.invalid("'content' is required", param: at + ".content")
        }
        switch content {
        case .string(let text):
            return ChatTurn(role: role, text: text)
        case .null where role == .assistant:
            return ChatTurn(role: role, text: "")
        case .array(let parts):
            return ChatTurn(role: role, parts: try parts.enumerated().map { try parsePart($1, param: "\(at).content[\($0)]", limits: limits) })
        default:
            throw APIError.invalid("'content' must be a string or an array of content parts, got \(content.typeName)", param: at + ".content")
        }
    }

    static func parsePart(_ node: JSONValue, param: String, limits: Limits) throws -> ContentPart {
        guard case .object = node else { throw APIError.invalid("a content part must be an object, got \(node.typeName)", param: param) }
        var fields = FieldReader(node, prefix: param + ".")
        guard let type = try fields.string("type") else { throw APIError.invalid("a content part needs a 'type'", param: param + ".type") }
        switch type {
        case "text":
            guard let text = try fields.string("text") else { throw APIError.invalid("a text part needs 'text'", param: param + ".text") }
            return .text(text)
        case "image_url":
            let urlParam = param + ".image_url.url"
            let url: String
            switch node["image_url"] {
            case .string(let s)?: url = s
            case .object?:
                var inner = FieldReader(node["image_url"]!, prefix: param + ".image_url.")
                guard let s = try inner.string("url") else { throw APIError.invalid("'image_url.url' is required", param: urlParam) }
                _ = try inner.string("detail")
                url = s
            case let other?:
                throw APIError.invalid("'image_url' must be an object with a 'url', got \(other.typeName)", param: param + ".image_url")
            case nil:
                throw APIError.invalid("an image_url part needs 'image_url'", param: param + ".image_url")
            }
            return .image(try decodeImage(url, param: urlParam, limits: limits))
        default:
            throw APIError.invalid("content part type '\(type)' is not supported (text and image_url are)", param: param + ".type")
        }
    }

    /// `data:image/...;base64,...` → the decoded image; any other URL is refused (the server
    /// never fetches from the network).
    static func decodeImage(_ url: String, param: String, limits: Limits) throws -> RGBImage {
        guard url.hasPrefix("data:") else {
            let scheme = url.split(separator: ":", maxSplits: 1).first.map(String.init) ?? url
            throw APIError.invalid("only data: URLs are accepted for images (data:image/png;base64,… or data:image/jpeg;base64,…), got a \(scheme.prefix(16)): URL",
                                   param: param, code: "invalid_image_url")
        }
        guard let comma = url.firstIndex(of: ",") else {
            throw APIError.invalid("malformed data: URL (no comma before the data)", param: param, code: "invalid_image_url")
        }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        guard header.split(separator: ";").contains("base64") else {
            throw APIError.invalid("the image data: URL must be base64-encoded (data:image/...;base64,...)", param: param, code: "invalid_image_url")
        }
        guard let data = Data(base64Encoded: String(url[url.index(after: comma)...]), options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw APIError.invalid("the image data: URL does not hold valid base64", param: param, code: "invalid_base64")
        }
        do {
            return try ImageDecoder.decode(data: data, name: "image", limits: limits.imageLimits)
        } catch let e as ForgeError {
            throw APIError.invalid("the image cannot be decoded: \(e.message)", param: param, code: "invalid_image")
        }
    }

    static func parseStop(_ node: JSONValue?, limits: Limits) throws -> [String] {
        switch node {
        case nil, .null?: return []
        case .string(let s)?: return s.isEmpty ? [] : [s]
        case .array(let items)?:
            guard items.count <= limits.maxStopStrings else {
                throw APIError.invalid("'stop' has \(items.count) strings; at most \(limits.maxStopStrings) are accepted", param: "stop")
            }
            return try items.enumerated().compactMap { i, item in
                guard case .string(let s) = item else { throw APIError.invalid("'stop[\(i)]' must be a string, got \(item.typeName)", param: "stop[\(i)]") }
                return s.isEmpty ? nil : s
            }
        case let other?:
            throw APIError.invalid("'stop' must be a string or an array of strings, got \(other.typeName)", param: "stop")
        }
    }

    static func parseResponseFormat(_ node: JSONValue?) throws -> ResponseFormat {
        guard let node, node != .null else { return .text }
        guard case .object = node else { throw APIError.invalid("'response_format' must be an object, got \(node.typeName)", param: "response_format") }
        var fields = FieldReader(node, prefix: "response_format.")
        switch try fields.string("type") {
        case nil: throw APIError.invalid("'response_format.type' is required", param: "response_format.type")
        case "text": return .text
        case "json_object": return .jsonObject
        case "json_schema":
            guard let spec = node["json_schema"], case .object = spec else {
                throw APIError.invalid("'response_format.json_schema' must be an object with 'name' and 'schema'", param: "response_format.json_schema")
            }
            var inner = FieldReader(spec, prefix: "response_format.json_schema.")
            let name = try inner.string("name") ?? "response"
            let strict = try inner.bool("strict") ?? false
            guard let schema = spec["schema"] else {
                throw APIError.invalid("'response_format.json_schema.schema' is required", param: "response_format.json_schema.schema")
            }
            guard case .object = schema else {
                throw APIError.invalid("'response_format.json_schema.schema' must be an object, got \(schema.typeName)", param: "response_format.json_schema.schema")
            }
            return .jsonSchema(name: name, schema: schema.compactText, strict: strict)
        case let other?:
            throw APIError.invalid("response_format type '\(other)' is not supported (text, json_object, json_schema are)", param: "response_format.type")
        }
    }
}

/// Typed reads of an object's optional fields; a present field of the wrong type is a 400.
/// `null` counts as absent, as in OpenAI's API.
struct FieldReader {
    let node: JSONValue
    let prefix: String
    init(_ node: JSONValue, prefix: String = "") {
        self.node = node
        self.prefix = prefix
    }

    private func value(_ key: String) -> JSONValue? {
        guard let v = node[key], v != .null else { return nil }
        return v
    }

    private func mismatch(_ key: String, _ expected: String, _ got: JSONValue) -> APIError {
        APIError.invalid("'\(prefix)\(key)' must be \(expected), got \(got.typeName)", param: prefix + key)
    }

    mutating func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case .string(let s) = v else { throw mismatch(key, "a string", v) }
        return s
    }

    mutating func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case .bool(let b) = v else { throw mismatch(key, "a boolean", v) }
        return b
    }

    mutating func number(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard case .number(let n) = v else { throw mismatch(key, "a number", v) }
        return n.double
    }

    mutating func integer(_ key: String) throws -> Int64? {
        guard let v = value(key) else { return nil }
        guard case .number(let n) = v else { throw mismatch(key, "an integer", v) }
        if let i = n.int { return Int64(i) }
        let d = n.double
        // 5.0 is an integer in JSON Schema's sense.
        guard d.rounded() == d, abs(d) < 9.0e15 else { throw mismatch(key, "an integer", v) }
        return Int64(d)
    }
}

extension JSONParseOptions {
    /// Request bodies: members kept in order with the last of a repeated key winning (as OpenAI's
    /// Python server reads them); lone surrogates are an error; nesting is capped at 64.
    static let requestBody = JSONParseOptions(duplicateKeys: .keepAll, loneSurrogates: .reject, maximumDepth: 64)
}
