import Checkpoints
import ForgeCore
import Foundation

/// Loads tokenizers from a Hugging Face folder (`tokenizer.json` + configs) or a GGUF file.
public enum TokenizerLoader {
    /// `tokenizer.json` (required), with `tokenizer_config.json`, `special_tokens_map.json`,
    /// `generation_config.json` and `chat_template.jinja` when present.
    public static func load(folder: String) throws -> Tokenizer {
        let tokenizerPath = (folder as NSString).appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw ForgeError(.io, "no tokenizer.json in the folder (only the fast-tokenizer format is supported)", file: folder)
        }
        func optionalJSON(_ name: String) throws -> (JSONValue, String)? {
            let path = (folder as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            return (try JSONParser.load(path: path, options: .tokenizer), path)
        }
        let config = try optionalJSON("tokenizer_config.json")
        let specialMap = try optionalJSON("special_tokens_map.json")
        let generation = try optionalJSON("generation_config.json")
        var template: String? = nil
        let jinjaPath = (folder as NSString).appendingPathComponent("chat_template.jinja")
        if let data = FileManager.default.contents(atPath: jinjaPath) { template = String(decoding: data, as: UTF8.self) }
        return try load(tokenizerJSON: JSONParser.load(path: tokenizerPath, options: .tokenizer), file: tokenizerPath,
                        config: config, specialTokensMap: specialMap, generationConfig: generation, chatTemplate: template)
    }

    /// A model given as a folder (tokenizer.json …) or a `.gguf` file, as the CLI's `--model` takes it.
    public static func load(model path: String) throws -> Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForgeError(.io, "no such file or folder", file: path)
        }
        return isDirectory.boolValue ? try load(folder: path) : try load(gguf: path)
    }

    /// The tokenizer stored in a GGUF file's metadata (`tokenizer.ggml.*`).
    public static func load(gguf path: String) throws -> Tokenizer {
        try GGUFTokenizerMetadata(file: GGUFFile(path: path)).makeTokenizer()
    }

    /// Builds from parsed `tokenizer.json` (and optional configs, each with its path for errors).
    static func load(tokenizerJSON json: JSONValue, file: String, config: (JSONValue, String)? = nil,
                     specialTokensMap: (JSONValue, String)? = nil, generationConfig: (JSONValue, String)? = nil,
                     chatTemplate: String? = nil) throws -> Tokenizer {
        guard json.object != nil else { throw ForgeError(.badInput, "tokenizer.json must be a JSON object", file: file) }
        guard let modelJSON = json["model"], modelJSON.object != nil else {
            throw ForgeError(.badInput, "missing \"model\"", file: file, location: "model")
        }
        let modelType = modelJSON["type"]?.string ?? (modelJSON["merges"] != nil ? "BPE" : "unknown")
        guard modelType == "BPE" else {
            throw ForgeError(.badInput, "model type \"\(modelType)\" is not supported (only BPE)", file: file, location: "model.type")
        }
        guard let vocabObject = modelJSON["vocab"]?.object else {
            throw ForgeError(.badInput, "BPE model without a \"vocab\" object", file: file, location: "model.vocab")
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(vocabObject.count)
        for (token, value) in vocabObject {
            guard let id = value.wholeNumber, id >= 0 else {
                throw ForgeError(.badInput, "token \(JSONText.quoted(token)) has a non-integer or negative id", file: file, location: "model.vocab")
            }
            vocab[token] = id
        }
        var merges: [(String, String)] = []
        if let list = modelJSON["merges"]?.array {
            merges.reserveCapacity(list.count)
            for (i, item) in list.enumerated() {
                if let line = item.string {
                    guard let space = line.firstIndex(of: " ") else {
                        throw ForgeError(.badInput, "merge \(JSONText.quoted(line)) is not \"a b\"", file: file, location: "model.merges[\(i)]")
                    }
                    merges.append((String(line[..<space]), String(line[line.index(after: space)...])))
                } else if let pair = item.array, pair.count == 2, let a = pair[0].string, let b = pair[1].string {
                    merges.append((a, b))
                } else {
                    throw ForgeError(.badInput, "merge must be \"a b\" or [a, b]", file: file, location: "model.merges[\(i)]")
                }
            }
        }
        let model = try BPEModel(
            vocab: vocab, merges: merges,
            unkToken: modelJSON["unk_token"]?.string,
            fuseUnk: modelJSON["fuse_unk"]?.bool ?? false,
            byteFallback: modelJSON["byte_fallback"]?.bool ?? false,
            ignoreMerges: modelJSON["ignore_merges"]?.bool ?? false,
            continuingSubwordPrefix: modelJSON["continuing_subword_prefix"]?.string,
            endOfWordSuffix: modelJSON["end_of_word_suffix"]?.string,
            file: file)

        var added: [AddedToken] = []
        for (i, item) in (json["added_tokens"]?.array ?? []).enumerated() {
            guard let id = item["id"]?.wholeNumber, let content = item["content"]?.string else {
                throw ForgeError(.badInput, "added token needs \"id\" and \"content\"", file: file, location: "added_tokens[\(i)]")
            }
            let special = item["special"]?.bool ?? false
            added.append(AddedToken(id: id, content: content, special: special,
                                    singleWord: item["single_word"]?.bool ?? false, lstrip: item["lstrip"]?.bool ?? false,
                                    rstrip: item["rstrip"]?.bool ?? false, normalized: item["normalized"]?.bool ?? !special))
        }
        // transformers merges `added_tokens_decoder` from tokenizer_config.json; add what is missing.
        if let decoderTokens = config?.0["added_tokens_decoder"]?.object {
            let known = Set(added.map(\.id))
            for (key, item) in decoderTokens {
                guard let id = Int(key), !known.contains(id), let content = item["content"]?.string else { continue }
                let special = item["special"]?.bool ?? false
                added.append(AddedToken(id: id, content: content, special: special,
                                        singleWord: item["single_word"]?.bool ?? false, lstrip: item["lstrip"]?.bool ?? false,
                                        rstrip: item["rstrip"]?.bool ?? false, normalized: item["normalized"]?.bool ?? !special))
            }
        }

        let normalizer = try NormalizerFactory.make(json["normalizer"], file: file)
        let preTokenizer = try PreTokenizerFactory.make(json["pre_tokenizer"], file: file)
        var postProcessor = try PostProcessorFactory.make(json["post_processor"], file: file)
        let decoder = try DecoderFactory.make(json["decoder"], file: file)

        // Special tokens: tokenizer_config.json, then special_tokens_map.json.
        func tokenName(_ key: String) -> String? {
            for source in [config?.0, specialTokensMap?.0] {
                guard let value = source?[key] else { continue }
                if let s = value.string { return s }
                if let s = value["content"]?.string { return s }
            }
            return nil
        }
        func idOf(_ name: String?) -> Int? {
            guard let name else { return nil }
            return added.first(where: { $0.content == name })?.id ?? vocab[name]
        }
        var specials = Tokenizer.SpecialIds()
        specials.bos = idOf(tokenName("bos_token"))
        if let eos = idOf(tokenName("eos_token")) { specials.eos = [eos] }
        specials.pad = idOf(tokenName("pad_token"))
        specials.unk = idOf(tokenName("unk_token"))
        if let generation = generationConfig?.0 {
            if specials.bos == nil { specials.bos = generation["bos_token_id"]?.wholeNumber }
            if specials.pad == nil { specials.pad = generation["pad_token_id"]?.wholeNumber }
            var eosList: [Int] = []
            if let one = generation["eos_token_id"]?.wholeNumber { eosList = [one] }
            if let many = generation["eos_token_id"]?.array { eosList = many.compactMap(\.wholeNumber) }
            for id in eosList where !specials.eos.contains(id) { specials.eos.append(id) }
        }

        // LlamaTokenizerFast rebuilds its post-processor from add_bos_token / add_eos_token
        // (defaults true / false); other classes keep tokenizer.json's.
        let tokenizerClass = config?.0["tokenizer_class"]?.string ?? ""
        if ["LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"].contains(tokenizerClass) {
            let addBOS = config?.0["add_bos_token"]?.bool ?? true
            let addEOS = config?.0["add_eos_token"]?.bool ?? false
            var prefix: [Int] = []
            var suffix: [Int] = []
            if addBOS, let bos = specials.bos { prefix = [bos] }
            if addEOS, let eos = specials.eos.first { suffix = [eos] }
            postProcessor = (prefix.isEmpty && suffix.isEmpty) ? nil : TemplateProcessor(prefix: prefix, suffix: suffix)
        }

        var template = chatTemplate
        if template == nil, let value = config?.0["chat_template"] {
            if let s = value.string {
                template = s
            } else if let list = value.array {
                // [{"name": "default", "template": …}, …]
                template = list.first(where: { $0["name"]?.string == "default" })?["template"]?.string ?? list.first?["template"]?.string
            }
        }
        return Tokenizer(model: model, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: postProcessor,
                         decoder: decoder, addedTokens: added, specials: specials, chatTemplate: template, source: file)
    }
}

extension JSONParseOptions {
    /// tokenizer.json and its configs: a repeated key keeps the last value (as HF tokenizers'
    /// serde maps and Python's json read them); lone surrogates become U+FFFD.
    static let tokenizer = JSONParseOptions(duplicateKeys: .keepAll, loneSurrogates: .replace)
}
