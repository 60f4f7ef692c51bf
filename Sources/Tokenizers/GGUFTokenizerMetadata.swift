import Checkpoints
import ForgeCore

/// The tokenizer embedded in a GGUF file (`tokenizer.ggml.*`, llama.cpp's conventions), rebuilt
/// as the same pipeline transformers builds when it loads a GGUF:
/// - `gpt2`: byte-level BPE from `tokens` + `merges`, pre-tokenizer chosen by `tokenizer.ggml.pre`;
/// - `llama`: SentencePiece BPE from `tokens` + `scores` (merges derived from the scores), byte
///   fallback through the `<0xNN>` tokens, ▁ prefix/replace normalizer.
/// Control tokens (type 3) and the unknown token (type 2) become special added tokens,
/// user-defined ones (type 4) plain added tokens.
struct GGUFTokenizerMetadata {
    let file: GGUFFile

    enum TokenType: Int {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    private func fail(_ message: String, _ key: String) -> ForgeError {
        ForgeError(.badInput, message, file: file.path, location: "metadata '\(key)'")
    }

    private func int(_ key: String) -> Int? { file.metadata[key]?.int }
    private func bool(_ key: String) -> Bool? { file.metadata[key]?.bool }

    func makeTokenizer() throws -> Tokenizer {
        guard let modelName = file.metadata["tokenizer.ggml.model"]?.string else {
            throw fail("no tokenizer in this GGUF file", "tokenizer.ggml.model")
        }
        guard let tokens = file.metadata["tokenizer.ggml.tokens"]?.strings, !tokens.isEmpty else {
            throw fail("missing or not an array of strings", "tokenizer.ggml.tokens")
        }
        var types = [Int](repeating: TokenType.normal.rawValue, count: tokens.count)
        if let value = file.metadata["tokenizer.ggml.token_type"] {
            guard let list = value.ints, list.count == tokens.count else {
                throw fail("must be \(tokens.count) integers (one per token)", "tokenizer.ggml.token_type")
            }
            types = list
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { vocab[token] = id }

        var specials = Tokenizer.SpecialIds()
        func checkedID(_ key: String) throws -> Int? {
            guard let id = int(key) else { return nil }
            guard id >= 0, id < tokens.count else { throw fail("id \(id) is outside the vocabulary (\(tokens.count) tokens)", key) }
            return id
        }
        specials.bos = try checkedID("tokenizer.ggml.bos_token_id")
        if let eos = try checkedID("tokenizer.ggml.eos_token_id") { specials.eos.append(eos) }
        for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let id = try checkedID(key), !specials.eos.contains(id) { specials.eos.append(id) }
        }
        specials.unk = try checkedID("tokenizer.ggml.unknown_token_id")
        specials.pad = try checkedID("tokenizer.ggml.padding_token_id")

        var added: [AddedToken] = []
        for (id, type) in types.enumerated() {
            switch TokenType(rawValue: type) {
            case .control, .unknown: added.append(AddedToken(id: id, content: tokens[id], special: true, normalized: false))
            case .userDefined: added.append(AddedToken(id: id, content: tokens[id], special: false, normalized: false))
            default: break
            }
        }

        let addBOS: Bool
        let model: BPEModel
        let normalizer: Normalizer?
        let preTokenizer: PreTokenizer?
        let decoder: TokenDecoder
        switch modelName {
        case "gpt2":
            guard let mergeLines = file.metadata["tokenizer.ggml.merges"]?.strings else {
                throw fail("a gpt2 tokenizer needs merges (array of strings)", "tokenizer.ggml.merges")
            }
            var merges: [(String, String)] = []
            merges.reserveCapacity(mergeLines.count)
            for (i, line) in mergeLines.enumerated() {
                guard let space = line.firstIndex(of: " ") else {
                    throw fail("merge \(i) \(JSONText.quoted(line)) is not \"a b\"", "tokenizer.ggml.merges")
                }
                merges.append((String(line[..<space]), String(line[line.index(after: space)...])))
            }
            model = try BPEModel(vocab: vocab, merges: merges, unkToken: specials.unk.map { tokens[$0] }, fuseUnk: false,
                                 byteFallback: false, ignoreMerges: false, continuingSubwordPrefix: nil, endOfWordSuffix: nil,
                                 names: tokens, file: file.path, field: "tokenizer.ggml")
            normalizer = nil
            preTokenizer = try byteLevelPreTokenizer(file.metadata["tokenizer.ggml.pre"]?.string ?? "default")
            decoder = ByteLevelDecoder()
            addBOS = bool("tokenizer.ggml.add_bos_token") ?? false
        case "llama":
            guard let scores = file.metadata["tokenizer.ggml.scores"]?.floats, scores.count == tokens.count else {
                throw fail("a llama tokenizer needs one score per token", "tokenizer.ggml.scores")
            }
            let merges = Self.mergesFromScores(tokens: tokens, vocab: vocab, scores: scores)
            model = try BPEModel(vocab: vocab, merges: merges, unkToken: specials.unk.map { tokens[$0] }, fuseUnk: true,
                                 byteFallback: true, ignoreMerges: false, continuingSubwordPrefix: nil, endOfWordSuffix: nil,
                                 names: tokens, file: file.path, field: "tokenizer.ggml")
            let spacePrefix = bool("tokenizer.ggml.add_space_prefix") ?? true
            let replace = ReplaceNormalizer(pattern: LiteralPattern(literal: [0x20]), content: [0x2581])
            normalizer = spacePrefix ? SequenceNormalizer(stages: [PrependNormalizer(prefix: [0x2581]), replace]) : replace
            preTokenizer = nil
            var stages: [TokenDecoder] = [ReplaceDecoder(pattern: LiteralPattern(literal: [0x2581]), content: [0x20]),
                                          ByteFallbackDecoder(), FuseDecoder()]
            if spacePrefix { stages.append(StripDecoder(content: 0x20, start: 1, stop: 0)) }
            decoder = SequenceDecoder(stages: stages)
            addBOS = bool("tokenizer.ggml.add_bos_token") ?? true
        default:
            throw fail("tokenizer model \"\(modelName)\" is not supported (gpt2 and llama are)", "tokenizer.ggml.model")
        }

        var prefix: [Int] = []
        var suffix: [Int] = []
        if addBOS, let bos = specials.bos { prefix = [bos] }
        if bool("tokenizer.ggml.add_eos_token") ?? false, let eos = specials.eos.first { suffix = [eos] }
        let post: PostProcessor? = (prefix.isEmpty && suffix.isEmpty) ? nil : TemplateProcessor(prefix: prefix, suffix: suffix)
        return Tokenizer(model: model, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: post, decoder: decoder,
                         addedTokens: added, specials: specials,
                         chatTemplate: file.metadata["tokenizer.chat_template"]?.string, source: file.path)
    }

    /// llama.cpp's pre-tokenizer names (`tokenizer.ggml.pre`) as HF pre-tokenizer pipelines.
    private func byteLevelPreTokenizer(_ name: String) throws -> PreTokenizer {
        switch name {
        case "default", "gpt2", "mpt", "olmo", "jais", "gpt-2":
            return ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            // `\p{N}` split first (each digit alone), then the GPT-2 regex.
            return SequencePreTokenizer(stages: [DigitsPreTokenizer(individualDigits: true),
                                                 ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)])
        case "llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "falcon3":
            return SequencePreTokenizer(stages: [SplitPreTokenizer(pattern: Llama3Pattern(maxDigits: 3), behavior: .isolated, invert: false),
                                                 ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false)])
        case "qwen2", "deepseek-r1-qwen", "stablelm2":
            return SequencePreTokenizer(stages: [SplitPreTokenizer(pattern: Llama3Pattern(maxDigits: 1), behavior: .isolated, invert: false),
                                                 ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false)])
        default:
            throw fail("pre-tokenizer \"\(name)\" is not supported", "tokenizer.ggml.pre")
        }
    }

    /// Merges implied by SentencePiece scores, ordered as transformers' `generate_merges` orders
    /// them: every split of a token into two vocabulary pieces, ranked by the token's score
    /// (descending; ties keep token order, then (left id, right id)).
    static func mergesFromScores(tokens: [String], vocab: [String: Int], scores: [Float]) -> [(String, String)] {
        var candidates: [(left: String, right: String, score: Float, order: Int)] = []
        for (id, token) in tokens.enumerated() {
            // Only the id that the vocabulary map keeps for this string (Python dict semantics).
            guard vocab[token] == id else { continue }
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1 else { continue }
            var local: [(String, String, Int, Int)] = []
            for cut in 1..<scalars.count {
                var left = String.UnicodeScalarView(); left.append(contentsOf: scalars[..<cut])
                var right = String.UnicodeScalarView(); right.append(contentsOf: scalars[cut...])
                let l = String(left), r = String(right)
                if let li = vocab[l], let ri = vocab[r] { local.append((l, r, li, ri)) }
            }
            local.sort { ($0.2, $0.3) < ($1.2, $1.3) }
            for m in local { candidates.append((m.0, m.1, scores[id], candidates.count)) }
        }
        // Stable sort by score, descending.
        candidates.sort { $0.score != $1.score ? $0.score > $1.score : $0.order < $1.order }
        return candidates.map { ($0.left, $0.right) }
    }
}
