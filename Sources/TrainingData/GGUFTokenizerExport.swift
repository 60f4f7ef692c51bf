import Checkpoints
import ForgeCore
import Foundation

/// Writes the tokenizer embedded in a GGUF file as HF files (`tokenizer.json`,
/// `tokenizer_config.json`, `chat_template.jinja`), so a checkpoint trained from a GGUF language
/// model loads on its own (llava-forge, transformers). Byte-level BPE (`tokenizer.ggml.model =
/// gpt2`) with the GPT-2 or SmolLM (digits split first) pre-tokenizer only — the pipelines
/// `GGUFTokenizerMetadata` builds for them; other kinds return false (give a tokenizer folder).
public enum GGUFTokenizerExport {
    @discardableResult
    public static func write(gguf path: String, to folder: String) throws -> Bool {
        let file = try GGUFFile(path: path)
        let meta = file.metadata
        guard meta["tokenizer.ggml.model"]?.string == "gpt2", let tokens = meta["tokenizer.ggml.tokens"]?.strings,
              let mergeLines = meta["tokenizer.ggml.merges"]?.strings else { return false }
        let pre = meta["tokenizer.ggml.pre"]?.string ?? "default"
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let preTokenizer: [String: Any]
        switch pre {
        case "default", "gpt2", "gpt-2", "mpt", "olmo", "jais": preTokenizer = byteLevel
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
            preTokenizer = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
        default: return false
        }
        let types = meta["tokenizer.ggml.token_type"]?.ints ?? [Int](repeating: 1, count: tokens.count)
        var added: [[String: Any]] = []
        for (id, type) in types.enumerated() where type == 2 || type == 3 || type == 4 {
            added.append(["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false,
                          "normalized": false, "special": type != 4])
        }
        func token(_ key: String) -> String? {
            guard let id = meta[key]?.int, id >= 0, id < tokens.count else { return nil }
            return tokens[id]
        }
        let bos = token("tokenizer.ggml.bos_token_id"), eos = token("tokenizer.ggml.eos_token_id")
        var postProcessor: Any = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        if meta["tokenizer.ggml.add_bos_token"]?.bool == true, let bos, let bosID = meta["tokenizer.ggml.bos_token_id"]?.int {
            postProcessor = ["type": "TemplateProcessing",
                             "single": [["SpecialToken": ["id": bos, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                             "pair": [["Sequence": ["id": "A", "type_id": 0]], ["Sequence": ["id": "B", "type_id": 1]]],
                             "special_tokens": [bos: ["id": bos, "ids": [bosID], "tokens": [bos]]]]
        }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        for (id, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
        let model: [String: Any] = ["type": "BPE", "dropout": NSNull(), "unk_token": token("tokenizer.ggml.unknown_token_id") ?? NSNull(),
                                    "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(), "fuse_unk": false,
                                    "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": mergeLines]
        let tokenizer: [String: Any] = ["version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
                                        "normalizer": NSNull(), "pre_tokenizer": preTokenizer, "post_processor": postProcessor,
                                        "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
                                        "model": model]
        var config: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
                                     "add_bos_token": meta["tokenizer.ggml.add_bos_token"]?.bool ?? false]
        if let bos { config["bos_token"] = bos }
        if let eos { config["eos_token"] = eos }
        if let unk = token("tokenizer.ggml.unknown_token_id") { config["unk_token"] = unk }
        if let pad = token("tokenizer.ggml.padding_token_id") { config["pad_token"] = pad }
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: tokenizer, options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: folder + "/tokenizer.json"), options: .atomic)
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: folder + "/tokenizer_config.json"), options: .atomic)
            if let template = meta["tokenizer.chat_template"]?.string {
                try template.write(toFile: folder + "/chat_template.jinja", atomically: true, encoding: .utf8)
            }
        } catch {
            throw ForgeError(.io, "cannot write the tokenizer files: \(error.localizedDescription)", file: folder)
        }
        return true
    }
}
