import ForgeCore

/// Token ids of a text with, per token, where it came from.
public struct TokenizedText: Sendable, Equatable {
    public var ids: [Int]
    /// Per token: the index (in Unicode scalars of the encoded text) of the first character the
    /// token stands for; -1 for tokens the post-processor added (BOS/EOS).
    public var sourceScalarIndex: [Int]
}

/// A loaded BPE tokenizer: added tokens → normalizer → pre-tokenizer → BPE → post-processor for
/// encoding, token strings → decoder chain for decoding. Thread-safe (the word cache is locked).
public final class Tokenizer: @unchecked Sendable {
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedById: [Int: AddedToken]
    private let addedByContent: [String: Int]
    /// The string an added token decodes to: its content, normalized when the token is matched
    /// on normalized text (HF stores "foo bar" as "▁foo▁bar" behind a ▁-normalizer).
    private let addedTokenStrings: [Int: String]

    /// Added tokens (special and not) in id order.
    public let addedTokens: [AddedToken]
    public let bosTokenId: Int?
    /// The first end-of-sequence id (the tokenizer's own `eos_token`).
    public let eosTokenId: Int?
    /// Every id that ends generation (the EOS token and any `eos_token_id` list from generation_config).
    public let eosTokenIds: [Int]
    public let padTokenId: Int?
    public let unkTokenId: Int?
    /// The raw Jinja chat template the model ships with, when there is one (not executed here).
    public let chatTemplate: String?
    /// Where the tokenizer came from (for messages).
    public let source: String
    public let vocabularySize: Int
    /// Whether `encode(_:addSpecialTokens: true)` starts with the BOS token.
    public private(set) var addsBOS = false

    struct SpecialIds {
        var bos: Int?
        var eos: [Int] = []
        var pad: Int?
        var unk: Int?
    }

    init(model: BPEModel, normalizer: Normalizer?, preTokenizer: PreTokenizer?, postProcessor: PostProcessor?,
         decoder: TokenDecoder?, addedTokens: [AddedToken], specials: SpecialIds, chatTemplate: String?, source: String) {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        let sorted = addedTokens.sorted { $0.id < $1.id }
        self.addedTokens = sorted
        var byId: [Int: AddedToken] = [:]
        var byContent: [String: Int] = [:]
        for t in sorted {
            if byId[t.id] == nil { byId[t.id] = t }
            if byContent[t.content] == nil { byContent[t.content] = t.id }
        }
        addedById = byId
        addedByContent = byContent
        let raw = sorted.filter { !$0.normalized }
        rawMatcher = AddedTokenMatcher(tokens: raw, patterns: raw.map { [UInt32](scalarsOf: $0.content) })
        let normalizedTokens = sorted.filter { $0.normalized }
        let normalizedPatterns = normalizedTokens.map { token in
            var buffer = PieceBuffer(scalars: [UInt32](scalarsOf: token.content),
                                     origin: [Int32](repeating: 0, count: token.content.unicodeScalars.count))
            normalizer?.normalize(&buffer)
            return buffer.scalars
        }
        normalizedMatcher = AddedTokenMatcher(tokens: normalizedTokens, patterns: normalizedPatterns)
        var strings: [Int: String] = [:]
        for t in sorted where strings[t.id] == nil { strings[t.id] = t.content }
        for (t, pattern) in zip(normalizedTokens, normalizedPatterns) { strings[t.id] = String(scalarValues: pattern) }
        addedTokenStrings = strings
        bosTokenId = specials.bos
        eosTokenId = specials.eos.first
        eosTokenIds = specials.eos
        padTokenId = specials.pad
        unkTokenId = specials.unk ?? model.unkId.map(Int.init)
        self.chatTemplate = chatTemplate
        self.source = source
        vocabularySize = max(model.idToToken.count, (sorted.map(\.id).max() ?? -1) + 1)
        let probe = encode("", addSpecialTokens: true)
        addsBOS = bosTokenId != nil && probe.first == bosTokenId
    }

    // MARK: - Vocabulary

    public func tokenToId(_ token: String) -> Int? {
        addedByContent[token] ?? model.tokenToId[token]
    }

    public func idToToken(_ id: Int) -> String? {
        if let added = addedTokenStrings[id] { return added }
        guard id >= 0, id < model.idToToken.count else { return nil }
        let token = model.idToToken[id]
        return token.isEmpty ? nil : token
    }

    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    // MARK: - Encoding

    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        encodeWithSources(text, addSpecialTokens: addSpecialTokens).ids
    }

    public func encodeWithSources(_ text: String, addSpecialTokens: Bool = true) -> TokenizedText {
        let scalars = [UInt32](scalarsOf: text)
        var ids: [Int] = []
        var origins: [Int32] = []
        ids.reserveCapacity(scalars.count / 3 + 4)
        origins.reserveCapacity(scalars.count / 3 + 4)
        scalars.withUnsafeBufferPointer { all in
            var cursor = 0
            for m in rawMatcher.matches(in: all) {
                encodeSection(all, cursor..<m.range.lowerBound, &ids, &origins)
                ids.append(m.id)
                origins.append(Int32(m.range.lowerBound))
                cursor = m.range.upperBound
            }
            encodeSection(all, cursor..<all.count, &ids, &origins)
        }
        if addSpecialTokens, let postProcessor { postProcessor.process(ids: &ids, origins: &origins) }
        return TokenizedText(ids: ids, sourceScalarIndex: origins.map(Int.init))
    }

    /// Text between raw-matched added tokens: normalize, split out normalized added tokens,
    /// pre-tokenize, BPE.
    private func encodeSection(_ all: UnsafeBufferPointer<UInt32>, _ range: Range<Int>, _ ids: inout [Int], _ origins: inout [Int32]) {
        guard !range.isEmpty else { return }
        var piece = PieceBuffer(scalars: Array(all[range]), origin: (range.lowerBound..<range.upperBound).map { Int32($0) })
        normalizer?.normalize(&piece)
        guard !piece.scalars.isEmpty else { return }
        if normalizedMatcher.isEmpty {
            encodeNormalized(piece, &ids, &origins)
            return
        }
        let matches = piece.scalars.withUnsafeBufferPointer { normalizedMatcher.matches(in: $0) }
        var cursor = 0
        for m in matches {
            if m.range.lowerBound > cursor {
                encodeNormalized(slice(piece, cursor..<m.range.lowerBound), &ids, &origins)
            }
            ids.append(m.id)
            origins.append(piece.origin[m.range.lowerBound])
            cursor = m.range.upperBound
        }
        if cursor < piece.scalars.count { encodeNormalized(slice(piece, cursor..<piece.scalars.count), &ids, &origins) }
    }

    private func slice(_ piece: PieceBuffer, _ r: Range<Int>) -> PieceBuffer {
        PieceBuffer(scalars: Array(piece.scalars[r]), origin: Array(piece.origin[r]))
    }

    private func encodeNormalized(_ piece: PieceBuffer, _ ids: inout [Int], _ origins: inout [Int32]) {
        let words = preTokenizer?.preTokenize(piece) ?? piece
        words.scalars.withUnsafeBufferPointer { scalars in
            for w in 0..<words.wordCount {
                let range = words.wordRange(w)
                let encoded = model.encode(word: UnsafeBufferPointer(rebasing: scalars[range]))
                for k in 0..<encoded.ids.count {
                    ids.append(Int(encoded.ids[k]))
                    origins.append(words.origin[range.lowerBound + Int(encoded.starts[k])])
                }
            }
        }
    }

    // MARK: - Decoding

    /// Token strings for ids (unknown ids are dropped, like HF).
    func tokenStrings(_ ids: [Int], skipSpecialTokens: Bool) -> [String] {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let added = addedById[id] {
                if skipSpecialTokens, added.special { continue }
                tokens.append(addedTokenStrings[id] ?? added.content)
            } else if id >= 0, id < model.idToToken.count, !model.idToToken[id].isEmpty {
                tokens.append(model.idToToken[id])
            }
        }
        return tokens
    }

    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let tokens = tokenStrings(ids, skipSpecialTokens: skipSpecialTokens)
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// A decoder for token-by-token output.
    public func makeStreamingDecoder(skipSpecialTokens: Bool = true) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// Turns a stream of ids into text pieces that never split a UTF-8 character: each `push`
/// decodes a small window (the previous piece's tokens + the new ones) and returns only the new
/// complete text; bytes of an unfinished character wait for the next token.
public final class StreamingDecoder {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    private var ids: [Int] = []
    private var prefixIndex = 0
    private var readIndex = 0

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// The text that `id` completes ("" while a character is still incomplete).
    public func push(_ id: Int) -> String {
        ids.append(id)
        return emit(final: false)
    }

    /// Whatever is left (an incomplete character at the end becomes U+FFFD, as `decode` would).
    public func finish() -> String {
        emit(final: true)
    }

    private func emit(final: Bool) -> String {
        let before = tokenizer.decode(Array(ids[prefixIndex..<readIndex]), skipSpecialTokens: skipSpecialTokens)
        let after = tokenizer.decode(Array(ids[prefixIndex...]), skipSpecialTokens: skipSpecialTokens)
        let beforeBytes = before.utf8.count
        guard after.utf8.count > beforeBytes || final else { return "" }
        if !final, after.unicodeScalars.last == "\u{FFFD}" { return "" }
        let newBytes = Array(after.utf8.dropFirst(beforeBytes))
        // Keep the last piece as context: decoders that strip a leading space (SentencePiece)
        // must see that the new tokens are not at the start of the text.
        prefixIndex = readIndex
        readIndex = ids.count
        if prefixIndex > 0 {
            ids.removeFirst(prefixIndex)
            readIndex -= prefixIndex
            prefixIndex = 0
        }
        return String(decoding: newBytes, as: UTF8.self)
    }
}
