import Foundation

/// Turns HTTP exchanges into results or `LLMError`s.
enum ResponseParser {
    /// Longest body prefix quoted in an error message.
    static let maxQuotedBody = 300

    static func chatResult(_ ex: Exchange, redact: (String) -> String) -> Result<ChatResult, LLMError> {
        guard (200...299).contains(ex.status) else { return .failure(httpError(ex, redact: redact)) }
        guard let root = (try? JSONSerialization.jsonObject(with: ex.body)) as? [String: Any] else {
            return .failure(.malformedResponse(message: redact("HTTP \(ex.status) body is not a JSON object: \(quote(ex.body))")))
        }
        if root["choices"] == nil, let apiError = errorFields(root) {
            return .failure(.malformedResponse(message: redact("HTTP \(ex.status) carries an error: \(apiError.message)")))
        }
        guard let choices = root["choices"] as? [Any], let first = choices.first as? [String: Any] else {
            return .failure(.malformedResponse(message: redact("no choices in HTTP \(ex.status) body: \(quote(ex.body))")))
        }
        guard let message = first["message"] as? [String: Any] else {
            return .failure(.malformedResponse(message: redact("choices[0] has no message: \(quote(ex.body))")))
        }
        let content: String
        switch message["content"] {
        case let s as String:
            content = s
        case let parts as [Any]:  // content as an array of {type: text, text: ...} parts
            content = parts.compactMap { ($0 as? [String: Any])?["text"] as? String }.joined()
        case nil, is NSNull:
            content = ""  // e.g. a refusal or tool call; finish_reason tells
        default:
            return .failure(.malformedResponse(message: "choices[0].message.content is neither a string nor null"))
        }
        let usage = root["usage"] as? [String: Any]
        return .success(ChatResult(
            content: content,
            finishReason: first["finish_reason"] as? String,
            promptTokens: int(usage?["prompt_tokens"]),
            completionTokens: int(usage?["completion_tokens"]),
            httpStatus: ex.status,
            latencyMs: ex.latencyMs,
            responseID: root["id"] as? String,
            headers: ex.headers))
    }

    static func modelIDs(_ ex: Exchange, redact: (String) -> String) -> Result<[String], LLMError> {
        guard (200...299).contains(ex.status) else { return .failure(httpError(ex, redact: redact)) }
        guard let root = (try? JSONSerialization.jsonObject(with: ex.body)) as? [String: Any],
              let data = root["data"] as? [Any]
        else {
            return .failure(.malformedResponse(message: redact("not a model list: \(quote(ex.body))")))
        }
        return .success(data.compactMap { ($0 as? [String: Any])?["id"] as? String })
    }

    /// A non-2xx exchange as an error: quota exhaustion, or `.http` with the server's message
    /// (plus the requested delay, when given).
    static func httpError(_ ex: Exchange, redact: (String) -> String) -> LLMError {
        var message = ""
        var isQuota = false
        if let root = (try? JSONSerialization.jsonObject(with: ex.body)) as? [String: Any], let fields = errorFields(root) {
            message = fields.message
            isQuota = [fields.code, fields.type].contains { tag in
                guard let tag = tag?.lowercased() else { return false }
                return tag == "insufficient_quota" || tag.hasPrefix("billing_")
            }
        }
        if message.isEmpty { message = quote(ex.body) }
        message = redact(message)
        if ex.status == 429 && isQuota { return .quotaExhausted(message: message) }
        return .http(status: ex.status, message: LLMError.httpMessage(message, retryAfter: retryAfter(ex.headers)))
    }

    /// `{"error": {"message", "type", "code"}}` (OpenAI), or the looser shapes other
    /// compatible servers use: `{"error": "text"}`, `{"message": ...}`, `{"detail": ...}`.
    static func errorFields(_ root: [String: Any]) -> (message: String, type: String?, code: String?)? {
        if let err = root["error"] as? [String: Any] {
            let code: String?
            switch err["code"] {
            case let s as String: code = s
            case let n as NSNumber: code = n.stringValue
            default: code = nil
            }
            return ((err["message"] as? String) ?? "", err["type"] as? String, code)
        }
        if let s = root["error"] as? String { return (s, nil, nil) }
        if let s = root["message"] as? String { return (s, nil, nil) }
        if let s = root["detail"] as? String { return (s, nil, nil) }
        return nil
    }

    /// Seconds from `retry-after-ms` (milliseconds) or `Retry-After` (seconds or an HTTP date).
    static func retryAfter(_ headers: [String: String]) -> Double? {
        if let ms = headers["retry-after-ms"].flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }),
           ms.isFinite, ms >= 0 {
            return ms / 1000
        }
        guard let value = headers["retry-after"]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let s = Double(value) { return s.isFinite && s >= 0 ? s : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return max(0, date.timeIntervalSinceNow)
    }

    /// A readable, bounded rendering of a body for error messages: HTML reduced to its text,
    /// whitespace collapsed, cut to `maxQuotedBody` characters.
    static func quote(_ body: Data) -> String {
        var text = String(decoding: body.prefix(64 * 1024), as: UTF8.self)
        let lower = text.lowercased()
        if lower.contains("<html") || lower.contains("<!doctype") || lower.contains("<body") || lower.contains("<title") {
            text = text.replacingOccurrences(of: "(?is)<(script|style)\\b.*?</\\1\\s*>", with: " ", options: .regularExpression)
            text = text.replacingOccurrences(of: "(?s)<!--.*?-->", with: " ", options: .regularExpression)
            text = text.replacingOccurrences(of: "<[^>]*>", with: " ", options: .regularExpression)
        }
        text = text.replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression)
            .trimmingCharacters(in: .whitespaces)
        if text.isEmpty { return "(empty body)" }
        if text.count > maxQuotedBody { return String(text.prefix(maxQuotedBody)) + "…" }
        return text
    }

    static func int(_ value: Any?) -> Int? {
        switch value {
        case let n as Int: return n
        case let n as NSNumber: return n.intValue
        default: return nil
        }
    }
}

/// Decodes a chat-completions answer that did not come over our own transfer (e.g. a line of a
/// Batch API output file): the same rules as a live answer.
public enum ChatResponseDecoder {
    public static func decode(status: Int, body: Data, headers: [String: String] = [:]) -> Result<ChatResult, LLMError> {
        ResponseParser.chatResult(Exchange(status: status, body: body, headers: headers, latencyMs: 0), redact: { $0 })
    }
}
