/// Minimal JSON text writing for streamed outputs (JSONL, exports): RFC 8259 string escaping,
/// non-ASCII kept as UTF-8.
public enum JSONText {
    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        // Every byte that needs escaping is ASCII, so the runs between them start and end on
        // scalar boundaries and are appended as whole slices (no per-scalar appends).
        let utf8 = s.utf8
        var runStart = utf8.startIndex
        var i = runStart
        while i != utf8.endIndex {
            let b = utf8[i]
            if b < 0x20 || b == 0x22 || b == 0x5C {
                if runStart != i { out.append(contentsOf: Substring(utf8[runStart..<i])) }
                switch b {
                case 0x22: out.append("\\\"")
                case 0x5C: out.append("\\\\")
                case 0x0A: out.append("\\n")
                case 0x0D: out.append("\\r")
                case 0x09: out.append("\\t")
                case 0x08: out.append("\\b")
                case 0x0C: out.append("\\f")
                default:
                    let hex = String(b, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                }
                i = utf8.index(after: i)
                runStart = i
            } else {
                i = utf8.index(after: i)
            }
        }
        if runStart == utf8.startIndex {
            out.append(s)
        } else if runStart != utf8.endIndex {
            out.append(contentsOf: Substring(utf8[runStart..<utf8.endIndex]))
        }
        out.append("\"")
    }

    public static func quoted(_ s: String) -> String {
        var out = ""
        appendString(s, to: &out)
        return out
    }
}

extension JSONText {
    /// The same escaping, into bytes.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        var text = ""
        appendString(s, to: &text)
        out.append(contentsOf: text.utf8)
    }
}
