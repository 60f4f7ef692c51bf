import ForgeCore
import Foundation

/// Where and how to reach an OpenAI-compatible server. Printing it never shows the key.
public struct ClientConfig: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// e.g. `http://127.0.0.1:8080/v1` or `https://api.openai.com/v1`; `/chat/completions` and
    /// `/models` are appended.
    public var baseURL: String
    public var apiKey: String?
    /// Seconds to establish the connection (TCP + TLS).
    public var connectTimeout: Double
    /// Seconds for a whole attempt, connection included.
    public var requestTimeout: Double
    /// Attempts after the first one, for retryable errors only.
    public var maxRetries: Int
    /// Back-off before retry n (0-based) is `min(backoffCap, backoffBase * 2^n)`, jittered to
    /// 50–100 %; a server's `retry-after-ms` / `Retry-After` replaces it.
    public var backoffBase: Double
    public var backoffCap: Double
    /// Seconds a transfer may go on receiving less than 1 byte/s before it is abandoned as
    /// stalled (curl's low-speed limit; whole seconds, at least 1).
    public var stallTimeout: Double
    /// CA bundle for TLS; nil = `SSL_CERT_FILE` / `CURL_CA_BUNDLE`, else the system bundle.
    public var caBundle: String?

    public init(baseURL: String, apiKey: String? = nil, connectTimeout: Double = 10, requestTimeout: Double = 600,
                maxRetries: Int = 4, backoffBase: Double = 0.5, backoffCap: Double = 20,
                stallTimeout: Double = 120, caBundle: String? = nil) {
        self.stallTimeout = stallTimeout
        self.caBundle = caBundle
        self.baseURL = baseURL
        self.apiKey = apiKey
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.maxRetries = maxRetries
        self.backoffBase = backoffBase
        self.backoffCap = backoffCap
    }

    public var description: String {
        "ClientConfig(baseURL: \(baseURL), apiKey: \(apiKey == nil ? "none" : "<redacted>"), "
            + "connectTimeout: \(connectTimeout), requestTimeout: \(requestTimeout), maxRetries: \(maxRetries), "
            + "backoffBase: \(backoffBase), backoffCap: \(backoffCap), stallTimeout: \(stallTimeout))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "baseURL": baseURL,
            "apiKey": apiKey == nil ? "none" : "<redacted>",
            "connectTimeout": connectTimeout,
            "requestTimeout": requestTimeout,
            "maxRetries": maxRetries,
            "backoffBase": backoffBase,
            "backoffCap": backoffCap,
            "stallTimeout": stallTimeout,
        ])
    }
}

/// Finds the API key. Errors name the file, never the key.
public enum APIKey {
    public static let environmentVariable = "OPENAI_API_KEY"

    /// The key from `keyFile` when one is given (surrounding whitespace trimmed), otherwise from
    /// `OPENAI_API_KEY`; `nil` when neither is set (a local server usually needs none).
    /// Throws `ForgeError(.io)` for an unreadable file and `ForgeError(.config)` for an empty
    /// file or a key containing control characters.
    public static func resolve(keyFile: String?) throws -> String? {
        if let keyFile {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: keyFile))
            } catch {
                throw ForgeError(.io, "cannot read the API key file", file: keyFile)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ForgeError(.config, "the API key file is not UTF-8 text", file: keyFile)
            }
            let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !key.isEmpty else { throw ForgeError(.config, "the API key file is empty", file: keyFile) }
            guard isValid(key) else {
                throw ForgeError(.config, "the API key in the file contains spaces or control characters", file: keyFile)
            }
            return key
        }
        guard let raw = ProcessInfo.processInfo.environment[environmentVariable] else { return nil }
        let key = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if key.isEmpty { return nil }
        guard isValid(key) else {
            throw ForgeError(.config, "\(environmentVariable) contains spaces or control characters")
        }
        return key
    }

    /// A key goes into an HTTP header: no whitespace or control characters (header injection).
    static func isValid(_ key: String) -> Bool {
        !key.unicodeScalars.contains { $0.value < 0x21 || $0.value == 0x7F }
    }
}
