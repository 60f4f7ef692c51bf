/// The bytes each token contributes to decoded text, for constrained sampling (which must know
/// what text every candidate token would add): byte-level BPE tokens through the GPT-2 byte
/// alphabet, SentencePiece tokens with ▁ as a space and `<0xNN>` byte-fallback tokens as their
/// byte, added non-special tokens as their text. Special/control tokens have no bytes (nil).
///
/// These are the bytes of a token in the middle of a text: decoders that strip the text's
/// leading space (SentencePiece `Strip`, Metaspace's first token) apply that only at the start.
extension Tokenizer {
    /// `tokenBytes(id)` for every id below `vocabularySize`.
    public func tokenBytesTable() -> [[UInt8]?] {
        let added = Dictionary(addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return (0..<vocabularySize).map { tokenBytes($0, added: added[$0]) }
    }

    public func tokenBytes(_ id: Int) -> [UInt8]? {
        tokenBytes(id, added: addedTokens.first { $0.id == id })
    }

    private func tokenBytes(_ id: Int, added: AddedToken?) -> [UInt8]? {
        if let added {
            return added.special ? nil : idToToken(id).map { Array($0.utf8) }
        }
        guard id >= 0, id < model.idToToken.count, !model.idToToken[id].isEmpty else { return nil }
        return Self.bytes(ofToken: model.idToToken[id], decoder: decoder)
    }

    /// One token through the decoder chain, kept as bytes (a byte-level token may be part of a
    /// UTF-8 character, which a String would turn into U+FFFD).
    static func bytes(ofToken token: String, decoder: TokenDecoder?) -> [UInt8] {
        var text = token
        var stages: [TokenDecoder] = []
        if let sequence = decoder as? SequenceDecoder { stages = sequence.stages } else if let decoder { stages = [decoder] }
        for stage in stages {
            switch stage {
            case is ByteLevelDecoder:
                var out: [UInt8] = []
                return ByteLevelAlphabet.bytes(ofToken: text, into: &out) ? out : Array(text.utf8)
            case is ByteFallbackDecoder:
                if let b = ByteFallbackDecoder.byteValue(text) { return [b] }
            case let metaspace as MetaspaceDecoder:
                let r = metaspace.replacement.unicodeScalars.first ?? "\u{2581}"
                text = String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == r ? " " : $0 }))
            case is ReplaceDecoder, is SuffixDecoder:
                // Mid-text behaviour: decode the token after another one and keep its part.
                text = stage.decodeChain(["x", text, "x"])[1]
            default:
                continue  // Fuse, Strip: they act on the whole text or its ends
            }
        }
        return Array(text.utf8)
    }
}
