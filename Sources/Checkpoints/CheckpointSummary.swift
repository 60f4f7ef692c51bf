import ForgeCore
import Foundation

/// What `llava-forge model-info` reports about a checkpoint: a GGUF file, a safetensors file, or a
/// Hugging Face folder (config.json + safetensors, sharded or not, + tokenizer files).
///
/// Everything is read from headers and small JSON files; tensor data is never touched, so this is
/// fast even for large models.
public struct CheckpointSummary: Encodable {
    public struct FileEntry: Encodable, Equatable {
        public var path: String
        public var bytes: Int
    }

    public struct TensorEntry: Encodable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var parameters: Int
    }

    public struct DTypeCount: Encodable, Equatable {
        public var dtype: String
        public var tensors: Int
        public var parameters: Int
        public var bytes: Int
    }

    /// A hyper-parameter value as found (JSON number, string, …).
    public enum Value: Encodable, Equatable, CustomStringConvertible {
        case int(Int), double(Double), string(String), bool(Bool)

        public func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .int(let v): try container.encode(v)
            case .double(let v): try container.encode(v)
            case .string(let v): try container.encode(v)
            case .bool(let v): try container.encode(v)
            }
        }

        public var description: String {
            switch self {
            case .int(let v): return String(v)
            case .double(let v): return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)
            case .string(let v): return v
            case .bool(let v): return String(v)
            }
        }
    }

    public struct Tokenizer: Encodable, Equatable {
        /// Where it came from: `gguf` (embedded) or `tokenizer.json`, `tokenizer.model`, …
        public var source: String
        /// `gpt2`/`llama` (GGUF `tokenizer.ggml.model`) or the tokenizer.json model type (`BPE`, `Unigram`, …).
        public var model: String?
        public var vocabSize: Int?
        public var merges: Int?
        public var addedTokens: Int?
        /// Extra facts: pre-tokenizer, tokenizer class, chat template present, …
        public var details: [String]
    }

    /// `gguf`, `safetensors` or `huggingface-folder`.
    public var format: String
    public var path: String
    public var formatVersion: Int?
    public var files: [FileEntry]
    public var totalBytes: Int
    /// GGUF `general.architecture`, or config.json `model_type`.
    public var architecture: String?
    /// config.json `architectures` (e.g. `LlavaForConditionalGeneration`).
    public var architectures: [String]
    public var name: String?
    /// Key hyper-parameters in reporting order (layers, hidden, heads, …; for LLaVA also the
    /// vision tower and projector).
    public var hyperparameters: [(key: String, value: Value)]
    public var tokenizer: Tokenizer?
    public var tensors: [TensorEntry]
    public var parametersByDType: [DTypeCount]
    public var totalParameters: Int
    /// Things worth knowing that are not errors (e.g. no tokenizer found).
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case format, path, formatVersion, files, totalBytes, architecture, architectures, name, hyperparameters, tokenizer,
             tensors, parametersByDType, totalParameters, notes
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .format)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(formatVersion, forKey: .formatVersion)
        try c.encode(files, forKey: .files)
        try c.encode(totalBytes, forKey: .totalBytes)
        try c.encodeIfPresent(architecture, forKey: .architecture)
        try c.encode(architectures, forKey: .architectures)
        try c.encodeIfPresent(name, forKey: .name)
        try c.encode(Dictionary(hyperparameters.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first }), forKey: .hyperparameters)
        try c.encodeIfPresent(tokenizer, forKey: .tokenizer)
        try c.encode(tensors, forKey: .tensors)
        try c.encode(parametersByDType, forKey: .parametersByDType)
        try c.encode(totalParameters, forKey: .totalParameters)
        try c.encode(notes, forKey: .notes)
    }

    public func hyperparameter(_ key: String) -> Value? { hyperparameters.first { $0.key == key }?.value }

    // MARK: - Inspection

    /// Inspects `path`: a `.gguf` file, a `.safetensors` file or index, or a folder.
    public static func inspect(path: String) throws -> CheckpointSummary {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForgeError(.io, "no such file or folder", file: path)
        }
        if isDirectory.boolValue { return try inspectFolder(path) }
        if try isGGUF(path) { return try inspectGGUF(path) }
        return try inspectSafeTensors(path, folder: URL(fileURLWithPath: path).deletingLastPathComponent().path, format: "safetensors")
    }

    private static func isGGUF(_ path: String) throws -> Bool {
        if path.lowercased().hasSuffix(".gguf") { return true }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ForgeError(.io, "cannot open", file: path) }
        defer { try? handle.close() }
        return handle.readData(ofLength: 4) == Data("GGUF".utf8)
    }

    private static func inspectFolder(_ folder: String) throws -> CheckpointSummary {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let hasSafeTensors = entries.contains { $0.hasSuffix(".safetensors") || $0.hasSuffix(".safetensors.index.json") }
        if !hasSafeTensors {
            let ggufs = entries.filter { $0.lowercased().hasSuffix(".gguf") }.sorted()
            if ggufs.count == 1 { return try inspectGGUF(folder + "/" + ggufs[0]) }
            if entries.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }) {
                throw ForgeError(.badInput, "only PyTorch pickle weights (.bin/.pt) here; llava-forge reads safetensors and GGUF (convert with transformers' save_pretrained(safe_serialization=True))",
                                 file: folder)
            }
        }
        return try inspectSafeTensors(folder, folder: folder, format: "huggingface-folder")
    }

    static func fileEntry(_ path: String) -> FileEntry {
        // Follow symlinks (models/ often links to a download cache): report the target's size.
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? NSNumber)?.intValue ?? 0
        return FileEntry(path: path, bytes: size)
    }

    // MARK: GGUF

    private static func inspectGGUF(_ path: String) throws -> CheckpointSummary {
        let file = try GGUFFile(path: path)
        let arch = file.architecture
        var summary = CheckpointSummary(format: "gguf", path: path, formatVersion: file.version, files: [fileEntry(path)], totalBytes: 0,
                                        architecture: arch, architectures: [], name: file.metadata["general.name"]?.string,
                                        hyperparameters: [], tokenizer: nil, tensors: [], parametersByDType: [], totalParameters: 0, notes: [])
        summary.totalBytes = summary.files.reduce(0) { $0 + $1.bytes }
        func add(_ label: String, _ key: String) {
            guard let value = file.metadata[key] else { return }
            switch value {
            // Via the shortest Float text, so 1e-5 stored as Float32 reads 1e-05, not 9.99999974e-06.
            case .float32(let v): summary.hyperparameters.append((label, .double(Double(v.description) ?? Double(v))))
            case .float64(let v): summary.hyperparameters.append((label, .double(v)))
            case .string(let v): summary.hyperparameters.append((label, .string(v)))
            case .bool(let v): summary.hyperparameters.append((label, .bool(v)))
            default: if let v = value.int { summary.hyperparameters.append((label, .int(v))) }
            }
        }
        if let arch {
            let p = arch + "."
            add("layers", p + "block_count")
            add("hidden", p + "embedding_length")
            add("intermediate", p + "feed_forward_length")
            add("heads", p + "attention.head_count")
            add("kv_heads", p + "attention.head_count_kv")
            add("head_dim", p + "attention.key_length")
            add("context", p + "context_length")
            add("rope_theta", p + "rope.freq_base")
            add("rope_dims", p + "rope.dimension_count")
            add("rms_norm_eps", p + "attention.layer_norm_rms_epsilon")
            add("layer_norm_eps", p + "attention.layer_norm_epsilon")
            if arch == "clip" {
                add("vision_layers", "clip.vision.block_count")
                add("vision_hidden", "clip.vision.embedding_length")
                add("vision_heads", "clip.vision.attention.head_count")
                add("image_size", "clip.vision.image_size")
                add("patch_size", "clip.vision.patch_size")
                add("projector_type", "clip.projector_type")
                add("projection_dim", "clip.vision.projection_dim")
            }
        }
        let tokens = file.metadata["tokenizer.ggml.tokens"]?.array?.count
        if let vocab = file.metadata[(arch ?? "") + ".vocab_size"]?.int {
            summary.hyperparameters.append(("vocab", .int(vocab)))
        } else if let tokens {
            summary.hyperparameters.append(("vocab", .int(tokens)))
        }
        add("file_type", "general.file_type")
        if let model = file.metadata["tokenizer.ggml.model"]?.string {
            var details: [String] = []
            if let pre = file.metadata["tokenizer.ggml.pre"]?.string { details.append("pre-tokenizer \(pre)") }
            if let bos = file.metadata["tokenizer.ggml.bos_token_id"]?.int { details.append("bos \(bos)") }
            if let eos = file.metadata["tokenizer.ggml.eos_token_id"]?.int { details.append("eos \(eos)") }
            if file.metadata["tokenizer.chat_template"]?.string != nil { details.append("chat template") }
            summary.tokenizer = Tokenizer(source: "gguf", model: model, vocabSize: tokens,
                                          merges: file.metadata["tokenizer.ggml.merges"]?.array?.count, addedTokens: nil, details: details)
        } else {
            summary.notes.append("no tokenizer embedded in the GGUF file")
        }
        summary.setTensors(file.tensorNamesInFileOrder.compactMap { file.info($0) })
        return summary
    }

    // MARK: safetensors / Hugging Face folder

    private static func inspectSafeTensors(_ path: String, folder: String, format: String) throws -> CheckpointSummary {
        let checkpoint = try SafeTensorsCheckpoint(path: path)
        var files = checkpoint.files.map { fileEntry($0.path) }
        if let index = checkpoint.indexPath { files.insert(fileEntry(index), at: 0) }
        var summary = CheckpointSummary(format: format, path: path, formatVersion: nil, files: files, totalBytes: files.reduce(0) { $0 + $1.bytes },
                                        architecture: nil, architectures: [], name: nil, hyperparameters: [], tokenizer: nil,
                                        tensors: [], parametersByDType: [], totalParameters: 0, notes: [])
        let config = folder + "/config.json"
        if FileManager.default.fileExists(atPath: config) {
            try summary.readConfig(config)
            summary.files.append(fileEntry(config))
        } else {
            summary.notes.append("no config.json next to the weights")
        }
        summary.tokenizer = try TokenizerFiles.describe(folder: folder, files: &summary.files)
        if summary.tokenizer == nil { summary.notes.append("no tokenizer files (tokenizer.json, tokenizer.model) found") }
        summary.totalBytes = summary.files.reduce(0) { $0 + $1.bytes }
        summary.setTensors(checkpoint.tensorNames.compactMap { checkpoint.info($0) })
        return summary
    }

    /// config.json: model type, architectures and the hyper-parameters of a LLaMA-family LM, a CLIP
    /// tower, or a LLaVA (text_config + vision_config + projector).
    mutating func readConfig(_ path: String) throws {
        let json = try ConfigJSON.load(path)
        architecture = json["model_type"]?.string
        architectures = json["architectures"]?.array?.compactMap(\.string) ?? []
        name = json["_name_or_path"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        let text = json["text_config"]?.object ?? json
        func add(_ label: String, _ object: JSONObject, _ keys: String...) {
            for key in keys {
                switch object[key] {
                case .number(let n)?: hyperparameters.append((label, n.int.map(Value.int) ?? .double(n.double))); return
                case .string(let v)?: hyperparameters.append((label, .string(v))); return
                case .bool(let v)?: hyperparameters.append((label, .bool(v))); return
                default: continue
                }
            }
        }
        if json["text_config"] != nil { add("text_model_type", text, "model_type") }
        add("layers", text, "num_hidden_layers", "n_layer")
        add("hidden", text, "hidden_size", "n_embd")
        add("intermediate", text, "intermediate_size")
        add("heads", text, "num_attention_heads", "n_head")
        add("kv_heads", text, "num_key_value_heads")
        add("head_dim", text, "head_dim")
        add("vocab", text, "vocab_size")
        add("context", text, "max_position_embeddings", "n_positions")
        add("rope_theta", text, "rope_theta")
        // transformers ≥ 5 moved it into rope_parameters (with rope_type).
        if hyperparameter("rope_theta") == nil, let rope = text["rope_parameters"]?.object {
            add("rope_theta", rope, "rope_theta")
            if rope["rope_type"]?.string != "default" { add("rope_type", rope, "rope_type") }
        }
        add("rms_norm_eps", text, "rms_norm_eps")
        add("tie_word_embeddings", text, "tie_word_embeddings")
        add("hidden_act", text, "hidden_act")
        add("torch_dtype", json, "torch_dtype", "dtype")
        if let vision = json["vision_config"]?.object {
            add("vision_model_type", vision, "model_type")
            add("vision_layers", vision, "num_hidden_layers")
            add("vision_hidden", vision, "hidden_size")
            add("vision_heads", vision, "num_attention_heads")
            add("image_size", vision, "image_size")
            add("patch_size", vision, "patch_size")
        }
        // llava-hf: projector_hidden_act + vision_feature_*; original LLaVA: mm_* keys.
        add("projector_type", json, "mm_projector_type")
        add("projector_act", json, "projector_hidden_act")
        add("vision_tower", json, "mm_vision_tower")
        add("vision_feature_layer", json, "vision_feature_layer", "mm_vision_select_layer")
        add("vision_feature_select", json, "vision_feature_select_strategy", "mm_vision_select_feature")
        add("image_token_index", json, "image_token_index", "image_token_id")
        add("image_seq_length", json, "image_seq_length")
        add("projector_bias", json, "multimodal_projector_bias")
    }

    mutating func setTensors(_ infos: [TensorInfo]) {
        tensors = infos.map { TensorEntry(name: $0.name, dtype: $0.dtype.description, shape: $0.shape, parameters: $0.elementCount) }
        var byType: [String: DTypeCount] = [:]
        for info in infos {
            let key = info.dtype.description
            var entry = byType[key] ?? DTypeCount(dtype: key, tensors: 0, parameters: 0, bytes: 0)
            entry.tensors += 1
            entry.parameters += info.elementCount
            entry.bytes += info.byteCount
            byType[key] = entry
        }
        parametersByDType = byType.values.sorted { ($0.parameters, $0.dtype) > ($1.parameters, $1.dtype) }
        totalParameters = infos.reduce(0) { $0 + $1.elementCount }
    }
}

/// config.json and friends, parsed with the checkpoint JSON parser (exact integers, byte offsets in errors).
enum ConfigJSON {
    static func load(_ path: String) throws -> JSONObject {
        let file = try MappedFile(path: path)
        do {
            guard let object = try JSONParser.parse(UnsafeRawBufferPointer(file.bytes), options: .checkpoint).object else {
                throw ForgeError(.badInput, "not a JSON object", file: path)
            }
            return object
        } catch let error as JSONSyntaxError {
            throw ForgeError(.badInput, "not valid JSON: \(error.message)", file: path, location: "byte \(error.offset)")
        }
    }
}

/// The tokenizer files of a Hugging Face folder.
enum TokenizerFiles {
    static func describe(folder: String, files: inout [CheckpointSummary.FileEntry]) throws -> CheckpointSummary.Tokenizer? {
        let json = folder + "/tokenizer.json", config = folder + "/tokenizer_config.json", sentencePiece = folder + "/tokenizer.model"
        var details: [String] = []
        var tokenizerClass: String?
        if FileManager.default.fileExists(atPath: config) {
            let object = try ConfigJSON.load(config)
            files.append(CheckpointSummary.fileEntry(config))
            tokenizerClass = object["tokenizer_class"]?.string
            if let tokenizerClass { details.append("class \(tokenizerClass)") }
            if object["chat_template"] != nil { details.append("chat template") }
        }
        if FileManager.default.fileExists(atPath: json) {
            let object = try ConfigJSON.load(json)
            files.append(CheckpointSummary.fileEntry(json))
            let model = object["model"]?.object
            if let pre = object["pre_tokenizer"]?.object?["type"]?.string { details.insert("pre-tokenizer \(pre)", at: 0) }
            if model?["byte_fallback"] == .bool(true) { details.append("byte fallback") }
            let vocab: Int?
            switch model?["vocab"] {
            case .object(let entries)?: vocab = entries.count
            case .array(let entries)?: vocab = entries.count  // Unigram: [[piece, score], …]
            default: vocab = nil
            }
            return CheckpointSummary.Tokenizer(source: "tokenizer.json", model: model?["type"]?.string, vocabSize: vocab,
                                               merges: model?["merges"]?.array?.count,
                                               addedTokens: object["added_tokens"]?.array?.count, details: details)
        }
        if FileManager.default.fileExists(atPath: sentencePiece) {
            files.append(CheckpointSummary.fileEntry(sentencePiece))
            return CheckpointSummary.Tokenizer(source: "tokenizer.model", model: "sentencepiece", vocabSize: nil, merges: nil,
                                               addedTokens: nil, details: details)
        }
        return nil
    }
}
