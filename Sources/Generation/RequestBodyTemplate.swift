import ForgeCore
import LLMClient

/// The canonical body of a type's requests split around the context: every request of a run
/// shares the system message, the few-shot examples and the sampling parameters, so only the
/// context is escaped per request (`prefix + escaped(context) + suffix`). The bytes equal
/// `ChatRequest.bodyJSON()` exactly — they are hashed into the cache key — and the first body
/// built is checked against it; any difference turns the template off (the full encoder is used).
final class RequestBodyTemplate {
    private static let marker = "@@llava-forge-context-0f3c9a@@"
    private let build: (String) -> ChatRequest
    private var prefix: [UInt8] = []
    private var suffix: [UInt8] = []
    private var usable: Bool
    private var verified = false

    init(build: @escaping (String) -> ChatRequest) {
        self.build = build
        let body = [UInt8](build(Self.marker).bodyJSON())
        let m = Array(Self.marker.utf8)
        var hits: [Int] = []
        if body.count >= m.count {
            for i in 0...(body.count - m.count) where body[i] == m[0] && Array(body[i..<(i + m.count)]) == m { hits.append(i) }
        }
        usable = hits.count == 1
        if usable {
            prefix = Array(body[..<hits[0]])
            suffix = Array(body[(hits[0] + m.count)...])
        }
    }

    /// SHA-256 midstate after the prefix: every body of a run starts with the same ~5–10 KB
    /// (system message, few-shot examples), so hashing it once per run instead of per request
    /// removes most of planning's hashing (it was a third of planning's CPU).
    private lazy var prefixHasher: SHA256 = {
        var h = SHA256()
        h.update(prefix)
        return h
    }()

    /// The exact body for `context` and its cache key (SHA-256 hex of the body).
    func bodyAndKey(context: String) -> (body: [UInt8], key: String) {
        let body = body(context: context)
        guard usable, body.count >= prefix.count else { return (body, SHA256.hex(body)) }
        return (body, prefixHasher.hex(appending: body[prefix.count...]))
    }

    /// The shared parts, once a first body was checked against the full encoder (nil when the
    /// template is off: every body is then stored whole).
    var verifiedParts: (prefix: [UInt8], suffix: [UInt8])? {
        usable && verified ? (prefix, suffix) : nil
    }

    /// The exact body for `context`.
    func body(context: String) -> [UInt8] {
        guard usable else { return [UInt8](build(context).bodyJSON()) }
        var out = prefix
        out.reserveCapacity(prefix.count + context.utf8.count + suffix.count + 64)
        CanonicalJSON.appendEscaped(context, to: &out)
        out.append(contentsOf: suffix)
        if !verified {
            verified = true
            let reference = [UInt8](build(context).bodyJSON())
            if reference != out {
                usable = false
                return reference
            }
        }
        return out
    }
}
