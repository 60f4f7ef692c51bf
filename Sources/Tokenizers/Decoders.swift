import ForgeCore

/// A `tokenizer.json` decoder stage: token strings in, token strings out (HF `decode_chain`);
/// the final strings are concatenated.
protocol TokenDecoder: Sendable {
    func decodeChain(_ tokens: [String]) -> [String]
}

enum DecoderFactory {
    static func make(_ json: JSONValue?, file: String?, field: String = "decoder") throws -> TokenDecoder? {
        guard let json, !json.isNull else { return nil }
        guard let type = json["type"]?.string else {
            throw ForgeError(.badInput, "decoder without a \"type\"", file: file, location: field)
        }
        switch type {
        case "Sequence":
            guard let items = json["decoders"]?.array else {
                throw ForgeError(.badInput, "Sequence decoder without \"decoders\"", file: file, location: field)
            }
            var stages: [TokenDecoder] = []
            for (i, item) in items.enumerated() {
                if let stage = try make(item, file: file, field: "\(field).decoders[\(i)]") { stages.append(stage) }
            }
            return SequenceDecoder(stages: stages)
        case "ByteLevel":
            return ByteLevelDecoder()
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "\u{2581}"
            let scheme: MetaspacePrependScheme
            if let name = json["prepend_scheme"]?.string, let s = MetaspacePrependScheme(rawValue: name) {
                scheme = s
            } else {
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            return MetaspaceDecoder(replacement: replacement, prependScheme: scheme)
        case "Replace":
            let pattern = try PatternSpec.parse(json["pattern"], file: file, field: "\(field).pattern")
            return ReplaceDecoder(pattern: pattern, content: [UInt32](scalarsOf: json["content"]?.string ?? ""))
        case "ByteFallback":
            return ByteFallbackDecoder()
        case "Fuse":
            return FuseDecoder()
        case "Strip":
            return StripDecoder(content: json["content"]?.string?.unicodeScalars.first?.value ?? 0x20,
                                start: json["start"]?.wholeNumber ?? 0, stop: json["stop"]?.wholeNumber ?? 0)
        case "BPEDecoder":
            return SuffixDecoder(suffix: json["suffix"]?.string ?? "</w>")
        default:
            throw ForgeError(.badInput, "unsupported decoder type \"\(type)\"", file: file, location: "\(field).type")
        }
    }
}

struct SequenceDecoder: TokenDecoder {
    var stages: [TokenDecoder]
    func decodeChain(_ tokens: [String]) -> [String] {
        var current = tokens
        for stage in stages { current = stage.decodeChain(current) }
        return current
    }
}

/// Byte-level alphabet → bytes → UTF-8 (invalid sequences become U+FFFD). A token with a character
/// outside the alphabet (an added token) contributes its own UTF-8 bytes.
struct ByteLevelDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for token in tokens where !ByteLevelAlphabet.bytes(ofToken: token, into: &bytes) {
            bytes.append(contentsOf: Array(token.utf8))
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// ▁ → space; the first token loses its ▁ when the pre-tokenizer prepended one.
struct MetaspaceDecoder: TokenDecoder {
    var replacement: String
    var prependScheme: MetaspacePrependScheme
    func decodeChain(_ tokens: [String]) -> [String] {
        let r = replacement.unicodeScalars.first?.value ?? 0x2581
        return tokens.enumerated().map { i, token in
            var out = String.UnicodeScalarView()
            for u in token.unicodeScalars {
                if u.value == r {
                    // HF drops every ▁ of the first token (not only the leading one).
                    if i == 0, prependScheme != .never { continue }
                    out.append(" ")
                } else {
                    out.append(u)
                }
            }
            return String(out)
        }
    }
}

struct ReplaceDecoder: TokenDecoder {
    var pattern: SplitPattern
    var content: [UInt32]
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            var text = PieceBuffer(scalars: [UInt32](scalarsOf: token), origin: [Int32](repeating: 0, count: token.unicodeScalars.count))
            ReplaceNormalizer(pattern: pattern, content: content).normalize(&text)
            return String(scalarValues: text.scalars)
        }
    }
}

/// Runs of `<0xNN>` tokens become the text of their bytes; an invalid run becomes one U+FFFD per byte.
struct ByteFallbackDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(tokens.count)
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validatingUTF8Bytes: pending) {
                out.append(s)
            } else {
                for _ in pending { out.append("\u{FFFD}") }
            }
            pending.removeAll(keepingCapacity: true)
        }
        for token in tokens {
            if let b = Self.byteValue(token) {
                pending.append(b)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }

    static func byteValue(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
        return hi << 4 | lo
    }
}

struct FuseDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

/// Removes up to `start` leading and `stop` trailing `content` characters from every token.
struct StripDecoder: TokenDecoder {
    var content: UInt32
    var start: Int
    var stop: Int
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { token in
            var scalars = Array(token.unicodeScalars)
            var lo = 0
            while lo < start, lo < scalars.count, scalars[lo].value == content { lo += 1 }
            var hi = scalars.count
            var removed = 0
            while removed < stop, hi > lo, scalars[hi - 1].value == content { hi -= 1; removed += 1 }
            scalars = Array(scalars[lo..<hi])
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars)
            return String(view)
        }
    }
}

/// `BPEDecoder`: the end-of-word suffix becomes a space (none after the last token).
struct SuffixDecoder: TokenDecoder {
    var suffix: String
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, token in
            token.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ")
        }
    }
}

extension String {
    /// Strict UTF-8 decoding: nil when the bytes are not valid UTF-8.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        var view = String.UnicodeScalarView()
        loop: while true {
            switch decoder.decode(&it) {
            case .scalarValue(let u): view.append(u)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(view)
    }
}
