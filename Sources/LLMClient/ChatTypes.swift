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
    /// OpenAI's `response_format` value as compact JSON text, sent verbatim after the sampling
    /// parameters (e.g. `{"type":"json_schema","json_schema":{…}}`); nil = free text, not sent.
    public var responseFormat: String?

    public init(model: String, messages: [ChatMessage], params: SamplingParams = SamplingParams(), responseFormat: String? = nil) {
        self.model = model
        self.messages = messages
        self.params = params
        self.responseFormat = responseFormat
    }

    /// The canonical request body: keys in the fixed order
    /// `model, messages[{role, content}], temperature, top_p, max_tokens, seed, stop, response_format, stream`,
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
        if let format = responseFormat { w.raw(",\"response_format\":"); w.raw(format) }
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
        var copy = s
        copy.withUTF8 { appendEscaped($0) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends `utf8` escaped: runs that need no escape are copied in one go (contexts and
    /// prompts are kilobytes with a newline every few dozen bytes).
    mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        bytes.reserveCapacity(bytes.count + utf8.count + 16)
        var runStart = 0
        var i = 0
        let n = utf8.count
        while i < n {
            let b = utf8[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C && b != 0x7F { i += 1; continue }
            if i > runStart { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
            appendEscape(b)
            i += 1
            runStart = i
        }
        if n > runStart { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<n])) }
    }

    private static let hexDigits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                                   UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102)

    private mutating func appendEscape(_ b: UInt8) {
        bytes.append(0x5C)
        switch b {
        case UInt8(ascii: "\""): bytes.append(0x22)
        case UInt8(ascii: "\\"): bytes.append(0x5C)
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        default:  // other control characters and DEL: \u00XX
            let hi = Int(b >> 4), lo = Int(b & 0xF)
            let digit: (Int) -> UInt8 = { d in withUnsafeBytes(of: CanonicalJSONWriter.hexDigits) { $0[d] } }
            bytes.append(UInt8(ascii: "u"))
            bytes.append(UInt8(ascii: "0"))
            bytes.append(UInt8(ascii: "0"))
            bytes.append(digit(hi))
            bytes.append(digit(lo))
        }
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

/// The canonical string escaping of `ChatRequest.bodyJSON`, for callers that assemble bodies
/// from precomputed pieces (the bytes must be identical: they are hashed into cache keys).
public enum CanonicalJSON {
    /// Appends the escaped contents of `s` (without the surrounding quotes).
    public static func appendEscaped(_ s: String, to bytes: inout [UInt8]) {
        var w = CanonicalJSONWriter(adopting: bytes)
        bytes = []
        var copy = s
        copy.withUTF8 { w.appendEscaped($0) }
        bytes = w.bytes
    }
}

extension CanonicalJSONWriter {
    init(adopting bytes: [UInt8]) { self.bytes = bytes }
}
