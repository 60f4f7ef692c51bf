import ForgeCore
import Foundation

/// A `tokenizer.json` normalizer: rewrites the scalars of one piece of text (the text between added
/// tokens), keeping each output scalar's origin.
protocol Normalizer: Sendable {
    func normalize(_ text: inout PieceBuffer)
}

enum NormalizerFactory {
    /// Builds the normalizer described by a `normalizer` object (`{"type": …}`), or nil for `null`.
    static func make(_ json: JSONValue?, file: String?, field: String = "normalizer") throws -> Normalizer? {
        guard let json, !json.isNull else { return nil }
        guard let type = json["type"]?.string else {
            throw ForgeError(.badInput, "normalizer without a \"type\"", file: file, location: field)
        }
        switch type {
        case "Sequence":
            guard let items = json["normalizers"]?.array else {
                throw ForgeError(.badInput, "Sequence normalizer without \"normalizers\"", file: file, location: field)
            }
            var stages: [Normalizer] = []
            for (i, item) in items.enumerated() {
                if let stage = try make(item, file: file, field: "\(field).normalizers[\(i)]") { stages.append(stage) }
            }
            return SequenceNormalizer(stages: stages)
        case "Prepend":
            guard let prepend = json["prepend"]?.string else {
                throw ForgeError(.badInput, "Prepend normalizer without \"prepend\"", file: file, location: field)
            }
            return PrependNormalizer(prefix: [UInt32](scalarsOf: prepend))
        case "Append":
            guard let append = json["append"]?.string else {
                throw ForgeError(.badInput, "Append normalizer without \"append\"", file: file, location: field)
            }
            return AppendNormalizer(suffix: [UInt32](scalarsOf: append))
        case "Replace":
            let pattern = try PatternSpec.parse(json["pattern"], file: file, field: "\(field).pattern")
            guard let content = json["content"]?.string else {
                throw ForgeError(.badInput, "Replace normalizer without \"content\"", file: file, location: field)
            }
            return ReplaceNormalizer(pattern: pattern, content: [UInt32](scalarsOf: content))
        case "NFC": return UnicodeFormNormalizer(form: .nfc)
        case "NFD": return UnicodeFormNormalizer(form: .nfd)
        case "NFKC": return UnicodeFormNormalizer(form: .nfkc)
        case "NFKD": return UnicodeFormNormalizer(form: .nfkd)
        case "Lowercase": return LowercaseNormalizer()
        case "Strip":
            return StripNormalizer(left: json["strip_left"]?.bool ?? true, right: json["strip_right"]?.bool ?? true)
        case "StripAccents": return StripAccentsNormalizer()
        default:
            throw ForgeError(.badInput, "unsupported normalizer type \"\(type)\"", file: file, location: "\(field).type")
        }
    }
}

struct SequenceNormalizer: Normalizer {
    var stages: [Normalizer]
    func normalize(_ text: inout PieceBuffer) {
        for stage in stages { stage.normalize(&text) }
    }
}

/// Prepends a string to non-empty text (SentencePiece's "▁" dummy prefix).
struct PrependNormalizer: Normalizer {
    var prefix: [UInt32]
    func normalize(_ text: inout PieceBuffer) {
        guard !text.scalars.isEmpty else { return }
        let o = text.origin[0]
        text.scalars.insert(contentsOf: prefix, at: 0)
        text.origin.insert(contentsOf: [Int32](repeating: o, count: prefix.count), at: 0)
        text.ends = [text.scalars.count]
    }
}

struct AppendNormalizer: Normalizer {
    var suffix: [UInt32]
    func normalize(_ text: inout PieceBuffer) {
        guard let o = text.origin.last else { return }
        text.scalars.append(contentsOf: suffix)
        text.origin.append(contentsOf: [Int32](repeating: o, count: suffix.count))
        text.ends = [text.scalars.count]
    }
}

/// Replaces every match of a pattern with `content`; the replacement inherits the origin of the
/// match's first scalar.
struct ReplaceNormalizer: Normalizer {
    var pattern: SplitPattern
    var content: [UInt32]
    func normalize(_ text: inout PieceBuffer) {
        let matches = text.scalars.withUnsafeBufferPointer { pattern.matches(in: $0) }
        guard !matches.isEmpty else { return }
        var out = PieceBuffer(capacity: text.scalars.count + matches.count * content.count)
        var cursor = 0
        for m in matches where !m.isEmpty {
            for i in cursor..<m.lowerBound { out.append(text.scalars[i], origin: text.origin[i]) }
            let o = text.origin[m.lowerBound]
            for c in content { out.append(c, origin: o) }
            cursor = m.upperBound
        }
        for i in cursor..<text.scalars.count { out.append(text.scalars[i], origin: text.origin[i]) }
        out.ends = out.scalars.isEmpty ? [] : [out.scalars.count]
        text = out
    }
}

/// Unicode normalization forms, applied one grapheme cluster at a time (composition never crosses
/// a cluster boundary), so origins stay per cluster.
struct UnicodeFormNormalizer: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    var form: Form

    func normalize(_ text: inout PieceBuffer) {
        // ASCII is invariant under every form.
        if !text.scalars.contains(where: { $0 >= 0x80 }) { return }
        var out = PieceBuffer(capacity: text.scalars.count)
        let string = String(scalarValues: text.scalars)
        var index = 0
        for character in string {
            let count = character.unicodeScalars.count
            let o = text.origin[index]
            let normalized: String
            let s = String(character)
            switch form {
            case .nfc: normalized = s.precomposedStringWithCanonicalMapping
            case .nfd: normalized = s.decomposedStringWithCanonicalMapping
            case .nfkc: normalized = s.precomposedStringWithCompatibilityMapping
            case .nfkd: normalized = s.decomposedStringWithCompatibilityMapping
            }
            for u in normalized.unicodeScalars { out.append(u.value, origin: o) }
            index += count
        }
        out.ends = out.scalars.isEmpty ? [] : [out.scalars.count]
        text = out
    }
}

/// Full (not context-sensitive) lowercase mapping per scalar, like Rust's `char::to_lowercase`.
struct LowercaseNormalizer: Normalizer {
    func normalize(_ text: inout PieceBuffer) {
        var out = PieceBuffer(capacity: text.scalars.count)
        for (i, v) in text.scalars.enumerated() {
            let o = text.origin[i]
            if v < 0x80 {
                out.append((v >= 0x41 && v <= 0x5A) ? v + 0x20 : v, origin: o)
            } else if let u = Unicode.Scalar(v) {
                for l in u.properties.lowercaseMapping.unicodeScalars { out.append(l.value, origin: o) }
            }
        }
        out.ends = out.scalars.isEmpty ? [] : [out.scalars.count]
        text = out
    }
}

struct StripNormalizer: Normalizer {
    var left: Bool
    var right: Bool
    func normalize(_ text: inout PieceBuffer) {
        var lo = 0
        var hi = text.scalars.count
        if left { while lo < hi, CharClass.isWhitespace(text.scalars[lo]) { lo += 1 } }
        if right { while hi > lo, CharClass.isWhitespace(text.scalars[hi - 1]) { hi -= 1 } }
        if lo == 0, hi == text.scalars.count { return }
        text.scalars = Array(text.scalars[lo..<hi])
        text.origin = Array(text.origin[lo..<hi])
        text.ends = text.scalars.isEmpty ? [] : [text.scalars.count]
    }
}

/// Removes non-spacing marks (use after NFD, as BERT does).
struct StripAccentsNormalizer: Normalizer {
    func normalize(_ text: inout PieceBuffer) {
        var out = PieceBuffer(capacity: text.scalars.count)
        for (i, v) in text.scalars.enumerated() {
            if v >= 0x300, let u = Unicode.Scalar(v), u.properties.generalCategory == .nonspacingMark { continue }
            out.append(v, origin: text.origin[i])
        }
        out.ends = out.scalars.isEmpty ? [] : [out.scalars.count]
        text = out
    }
}

/// The `pattern` of Replace / Split: `{"String": …}` or `{"Regex": …}`.
enum PatternSpec {
    static func parse(_ json: JSONValue?, file: String?, field: String) throws -> SplitPattern {
        if let literal = json?["String"]?.string {
            return LiteralPattern(literal: [UInt32](scalarsOf: literal))
        }
        if let regex = json?["Regex"]?.string {
            return try Patterns.regex(regex, file: file, field: field)
        }
        if let literal = json?.string { // some writers store the bare string
            return LiteralPattern(literal: [UInt32](scalarsOf: literal))
        }
        throw ForgeError(.badInput, "pattern must be {\"String\": …} or {\"Regex\": …}", file: file, location: field)
    }
}
