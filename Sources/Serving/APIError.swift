import ForgeCore
import Foundation

/// An error answer in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with an
/// HTTP status. `param` names the request field at fault (`messages[0].content[1].image_url.url`).
public struct APIError: Error, Equatable, CustomStringConvertible, Sendable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?
    /// Seconds for a `Retry-After` header (503 when the queue is full).
    public var retryAfter: Int?

    public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status) \(type): \(message)" + (param.map { " (param \($0))" } ?? "") }

    /// A 400 about one request field.
    public static func invalid(_ message: String, param: String?, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param, code: code)
    }

    public static let unauthorized = APIError(status: 401, message: "Incorrect API key provided. Send it as 'Authorization: Bearer <key>'.",
                                              code: "invalid_api_key")

    public static func overloaded(_ message: String) -> APIError {
        APIError(status: 503, message: message, type: "server_error", code: "server_overloaded", retryAfter: 1)
    }

    /// The JSON body.
    public var body: String {
        "{\"error\":{\"message\":\(JSONText.quoted(message)),\"type\":\(JSONText.quoted(type)),"
            + "\"param\":\(param.map(JSONText.quoted) ?? "null"),\"code\":\(code.map(JSONText.quoted) ?? "null")}}"
    }
}
