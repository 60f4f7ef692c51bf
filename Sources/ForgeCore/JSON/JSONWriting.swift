/// Writing a `JSONValue` back as text: numbers as written, keys in order, strings escaped as
/// `JSONText` does (`"`, `\`, controls; non-ASCII kept as UTF-8).
extension JSONValue {
    /// One line, no spaces (Python's `separators=(",", ":")`).
    public var compactText: String {
        var out = ""
        appendCompact(to: &out)
        return out
    }

    public var compactBytes: [UInt8] { Array(compactText.utf8) }

    public func appendCompact(to out: inout String) {
        switch self {
        case .null: out.append("null")
        case .bool(let b): out.append(b ? "true" : "false")
        case .number(let n): out.append(n.text)
        case .string(let s): JSONText.appendString(s, to: &out)
        case .array(let items):
            out.append("[")
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(",") }
                item.appendCompact(to: &out)
            }
            out.append("]")
        case .object(let object):
            out.append("{")
            for (k, member) in object.members.enumerated() {
                if k > 0 { out.append(",") }
                JSONText.appendString(member.key, to: &out)
                out.append(":")
                member.value.appendCompact(to: &out)
            }
            out.append("}")
        }
    }

    /// Laid out like Python's `json.dumps(v, indent=2, ensure_ascii=False)`: one item per line,
    /// `", "`-free, keys followed by `": "`, empty containers as `[]` / `{}`. `level` is the
    /// indentation (in spaces) of the line the value starts on.
    public func appendPretty(to out: inout String, level: Int, indent: Int = 2) {
        switch self {
        case .array(let items) where !items.isEmpty:
            out.append("[\n")
            for (k, item) in items.enumerated() {
                JSONValue.spaces(level + indent, to: &out)
                item.appendPretty(to: &out, level: level + indent, indent: indent)
                out.append(k + 1 < items.count ? ",\n" : "\n")
            }
            JSONValue.spaces(level, to: &out)
            out.append("]")
        case .object(let object) where !object.isEmpty:
            out.append("{\n")
            for (k, member) in object.members.enumerated() {
                JSONValue.spaces(level + indent, to: &out)
                JSONText.appendString(member.key, to: &out)
                out.append(": ")
                member.value.appendPretty(to: &out, level: level + indent, indent: indent)
                out.append(k + 1 < object.count ? ",\n" : "\n")
            }
            JSONValue.spaces(level, to: &out)
            out.append("}")
        default:
            appendCompact(to: &out)
        }
    }

    public func prettyText(indent: Int = 2) -> String {
        var out = ""
        appendPretty(to: &out, level: 0, indent: indent)
        return out
    }

    static func spaces(_ n: Int, to out: inout String) {
        if n > 0 { out.append(String(repeating: " ", count: n)) }
    }
}
