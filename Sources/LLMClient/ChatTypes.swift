import Foundation

/// One chat message (`role` is `system`, `user` or `assistant`).
public struct ChatMessage: Codable, Equatable, Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// Sampling parameters; `nil` means "leave it to the server" and is not sent.
public struct SamplingParams: Codable, Equatable, Sendable {
    public var temperature: Double?
    public var topP: Double?
    public var maxTokens: Int?
    public var seed: Int?
    public var stop: [String]?

    public init(temperature: Double? = nil, topP: Double? = nil, maxTokens: Int? = nil, seed: Int? = nil, stop: [String]? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.maxTokens = maxTokens
        self.seed = seed
        self.stop = stop
    }

    enum CodingKeys: String, CodingKey {
        case temperature
        case topP = "top_p"
        case maxTokens = "max_tokens"
        case seed
        case stop
    }
}

/// A non-streaming chat-completions request.
public struct ChatRequest: Sendable, Equatable {
    public var model: String
    public var messages: [ChatMessage]
    public var params: SamplingParams

    public init(model: String, messages: [ChatMessage], params: SamplingParams = SamplingParams()) {
        self.model = model
        self.messages = messages
        self.params = params
    }

    /// The canonical request body: keys in the fixed order
    /// `model, messages[{role, content}], temperature, top_p, max_tokens, seed, stop, stream`,
    /// no whitespace, only the non-nil parameters, `"stream":false` last. Strings are escaped
    /// minimally (`"`, `\`, control characters; everything else is raw UTF-8) and doubles use
    /// Swift's shortest round-trip form, so equal requests always give identical bytes — the
    /// bytes are used for cache keys.
    public func bodyJSON() -> Data {
        var w = CanonicalJSONWriter()
        w.raw("{\"model\":")
        w.string(model)
        w.raw(",\"messages\":[")
        for (i, m) in messages.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"role\":")
            w.string(m.role)
            w.raw(",\"content\":")
            w.string(m.content)
            w.raw("}")
        }
        w.raw("]")
        if let t = params.temperature { w.raw(",\"temperature\":"); w.double(t) }
        if let p = params.topP { w.raw(",\"top_p\":"); w.double(p) }
        if let n = params.maxTokens { w.raw(",\"max_tokens\":\(n)") }
        if let s = params.seed { w.raw(",\"seed\":\(s)") }
        if let stop = params.stop {
            w.raw(",\"stop\":[")
            for (i, s) in stop.enumerated() {
                if i > 0 { w.raw(",") }
                w.string(s)
            }
            w.raw("]")
        }
        w.raw(",\"stream\":false}")
        return Data(w.bytes)
    }
}

/// Builds canonical JSON text byte by byte.
struct CanonicalJSONWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(1024) }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x00..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Shortest round-trip decimal (`0.7`, `1.0`, `1e-05`); JSON has no NaN/Infinity, so those
    /// become `null` (the server then rejects the request with a clear 400).
    mutating func double(_ d: Double) {
        guard d.isFinite else { raw("null"); return }
        raw(d == 0 ? "0.0" : "\(d)")
    }
}

/// The parsed outcome of one successful completion.
public struct ChatResult: Sendable, Equatable {
    public var content: String
    public var finishReason: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var httpStatus: Int
    /// Wall time of the attempt that succeeded (retries and back-off waits excluded).
    public var latencyMs: Double
    public var responseID: String?
    /// Response headers, names lowercased (repeated headers joined with ", ").
    public var headers: [String: String]

    public init(content: String, finishReason: String? = nil, promptTokens: Int? = nil, completionTokens: Int? = nil,
                httpStatus: Int = 200, latencyMs: Double = 0, responseID: String? = nil, headers: [String: String] = [:]) {
        self.content = content
        self.finishReason = finishReason
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.httpStatus = httpStatus
        self.latencyMs = latencyMs
        self.responseID = responseID
        self.headers = headers
    }
}
