import CCurl
import Foundation

/// Options every transfer gets, easy or multi: no signals, no redirects, http(s) only,
/// connect/total/stall timeouts, keep-alive, compression, HTTP/2 over TLS when the server offers
/// it (HTTP/1.1 otherwise), and the CA bundle for https.
enum CurlOptions {
    static func applyCommon(_ curl: UnsafeMutableRawPointer, config: ClientConfig, url: String, isHTTPS: Bool? = nil) {
        _ = forge_curl_setopt_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = forge_curl_setopt_long(curl, CURLOPT_FOLLOWLOCATION, 0)
        _ = "http,https".withCString { forge_curl_setopt_ptr(curl, CURLOPT_PROTOCOLS_STR, $0) }
        _ = forge_curl_setopt_long(curl, CURLOPT_CONNECTTIMEOUT_MS, OpenAIClient.milliseconds(config.connectTimeout))
        _ = forge_curl_setopt_long(curl, CURLOPT_TIMEOUT_MS, OpenAIClient.milliseconds(config.requestTimeout))
        // Stalled: under 1 byte/s for stallTimeout seconds (curl counts whole seconds).
        _ = forge_curl_setopt_long(curl, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = forge_curl_setopt_long(curl, CURLOPT_LOW_SPEED_TIME, max(1, Int(config.stallTimeout.rounded(.up))))
        _ = forge_curl_setopt_long(curl, CURLOPT_TCP_KEEPALIVE, 1)
        _ = forge_curl_setopt_long(curl, CURLOPT_TCP_NODELAY, 1)
        _ = forge_curl_setopt_long(curl, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        _ = "".withCString { forge_curl_setopt_ptr(curl, CURLOPT_ACCEPT_ENCODING, $0) }  // all built-in decoders
        _ = "llava-forge (libcurl)".withCString { forge_curl_setopt_ptr(curl, CURLOPT_USERAGENT, $0) }
        if isHTTPS ?? url.lowercased().hasPrefix("https:"), let bundle = caBundlePath(config) {
            _ = bundle.withCString { forge_curl_setopt_ptr(curl, CURLOPT_CAINFO, $0) }
        }
    }

    /// The configured bundle, `SSL_CERT_FILE` / `CURL_CA_BUNDLE`, or the first system bundle
    /// that exists (Debian/Ubuntu, Fedora/RHEL, Alpine/macOS layouts); nil = libcurl's default.
    static func caBundlePath(_ config: ClientConfig) -> String? {
        if let b = config.caBundle { return b }
        let env = ProcessInfo.processInfo.environment
        if let b = env["SSL_CERT_FILE"] ?? env["CURL_CA_BUNDLE"], !b.isEmpty { return b }
        return systemBundle
    }

    static let systemBundle: String? = [
        "/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem",
    ].first { FileManager.default.fileExists(atPath: $0) }
}
