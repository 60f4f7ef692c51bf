import ForgeCore
import Foundation
import Imaging
import Models
import Tokenizers
import Training

extension TrainingRun {
    struct RunModel {
        var model: LlavaModel
        /// The llava folder the weights came from (its config.json and companions are kept).
        var llavaFolder: String?
        /// Where a preprocessor_config.json may be.
        var preprocessorFolders: [String]
        /// The HF folder the tokenizer came from (its files are copied into checkpoints).
        var tokenizerFolder: String?
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    static func modelType(folder: String) -> String? {
        guard let data = FileManager.default.contents(atPath: folder + "/config.json"),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return object["model_type"] as? String
    }

    var tokenizerSource: String { options.tokenizer ?? options.llm }

    func loadTokenizer() throws -> Tokenizer {
        let source = tokenizerSource
        guard FileManager.default.fileExists(atPath: source) else {
            throw ForgeError(.io, "no such file or folder (the tokenizer comes from --llm unless --tokenizer is given)", file: source)
        }
        return try TokenizerLoader.load(model: source)
    }

    /// The LLaVA to train: the checkpoint (resume), a whole llava folder, or parts (tower + LLM
    /// + optional projector). From parts, the image token is the tokenizer's `<image>` when it has
    /// one inside the vocabulary, else the first id past the vocabulary (never a real token).
    func loadModel(resuming: Bool, tokenizer: Tokenizer) throws -> RunModel {
        let tokenizerFolder = Self.isDirectory(tokenizerSource) ? tokenizerSource : nil
        if resuming {
            guard case .llava(let model) = try ModelLoader.load(path: checkpointFolder) else {
                throw ForgeError(.badInput, "the checkpoint is not a llava model", file: checkpointFolder)
            }
            // The original source's preprocessor first, so resumed features are those of the first run.
            var sources: [String] = []
            if Self.isDirectory(options.llm), Self.modelType(folder: options.llm) == "llava" {
                sources.append(options.llm)
            } else if let vision = options.vision {
                sources.append(vision == RandomVisionTower.name ? path("random_tiny_vision") : vision)
            }
            return RunModel(model: model, llavaFolder: checkpointFolder, preprocessorFolders: sources, tokenizerFolder: tokenizerFolder)
        }
        if Self.isDirectory(options.llm), Self.modelType(folder: options.llm) == "llava" {
            guard case .llava(let model) = try ModelLoader.load(path: options.llm) else {
                throw ForgeError(.badInput, "not a llava model", file: options.llm)
            }
            if options.vision != nil || options.projector != nil {
                log("note: --llm is a whole llava folder; its own tower and projector are used (--vision / --projector ignored)")
            }
            return RunModel(model: model, llavaFolder: options.llm, preprocessorFolders: [options.llm], tokenizerFolder: tokenizerFolder)
        }
        guard var vision = options.vision else {
            throw ForgeError(.usage, "--vision is required (a CLIP folder or \(RandomVisionTower.name)) unless --llm is a llava folder")
        }
        if vision == RandomVisionTower.name {
            vision = try RandomVisionTower.materialise(in: path("random_tiny_vision"))
            log("vision tower: \(RandomVisionTower.name) — a seeded RANDOM small ViT, not CLIP (its features carry no meaning)")
        } else if vision.hasPrefix("random:") {
            throw ForgeError(.usage, "unknown random tower \"\(vision)\" (known: \(RandomVisionTower.name))")
        }
        let parts = try ModelLoader.loadParts(vision: vision, llm: options.llm, projector: options.projector,
                                              options: LlavaPartsOptions(seed: options.seed))
        let vocab = parts.config.textConfig.vocabSize
        var config = parts.config
        if let id = tokenizer.tokenToId(ChatTemplate.imageToken), id < vocab { config.imageTokenIndex = id } else { config.imageTokenIndex = vocab }
        let model = try LlavaModel(config: config, vision: parts.vision, trainable: parts.trainable, projectorConfig: parts.projector.config)
        return RunModel(model: model, llavaFolder: nil, preprocessorFolders: [vision], tokenizerFolder: tokenizerFolder)
    }

    /// `auto`: plain for Stage 1; ChatML when the tokenizer has `<|im_start|>` (SmolLM2's flavour
    /// when its own template carries SmolLM2's system prompt); else vicuna_v1.
    func resolveTemplate(tokenizer: Tokenizer) throws -> ChatTemplate {
        guard options.template == "auto" else { return try ChatTemplate.named(options.template) }
        if options.stage == 1 { return ChatTemplate(.plain) }
        if tokenizer.tokenToId("<|im_start|>") != nil {
            if let jinja = tokenizer.chatTemplate, let inferred = ChatTemplate.inferred(fromJinja: jinja),
               inferred.name == .chatML || inferred.name == .chatMLSmolLM { return inferred }
            return ChatTemplate(.chatML)
        }
        return ChatTemplate(.vicunaV1)
    }

    /// The first preprocessor_config.json found, else OpenAI CLIP's recipe at the tower's size.
    func loadPreprocessor(model: LlavaModel, folders: [String]) throws -> CLIPPreprocessorConfig {
        for folder in folders {
            let file = (folder as NSString).appendingPathComponent("preprocessor_config.json")
            if FileManager.default.fileExists(atPath: file) { return try CLIPPreprocessorConfig.load(path: file) }
        }
        return CLIPPreprocessorConfig.openAI(resolution: model.config.visionConfig.imageSize)
    }

    /// A store (SQLite magic) or LLaVA JSON / JSONL.
    func loadExamples(_ source: String) throws -> [TrainingExample] {
        guard let handle = FileHandle(forReadingAtPath: source) else {
            throw ForgeError(.io, "cannot open the data (a .db store or a LLaVA .json file)", file: source)
        }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        try? handle.close()
        if head.starts(with: Data("SQLite format 3".utf8)) {
            return try StoreExampleLoader.load(databasePath: source, selection: options.selection, imagesFolder: options.images, seed: options.seed)
        }
        if case .types(let types?) = options.selection {
            let examples = try LLaVAJSONLoader.load(path: source, imagesFolder: options.images)
            return examples.filter { $0.type == nil || types.contains($0.type!) }
        }
        return try LLaVAJSONLoader.load(path: source, imagesFolder: options.images)
    }

    /// Makes a checkpoint folder self-contained: the tokenizer's files (HF tokenizer folders) and
    /// a preprocessor_config.json, when missing.
    func completeCheckpoint(tokenizerSource folder: String?, preprocessor: CLIPPreprocessorConfig) throws {
        let files = FileManager.default
        if let folder {
            for name in Trainer.companionFiles where name.hasPrefix("tokenizer") || name == "special_tokens_map.json" || name == "chat_template.jinja" {
                let from = folder + "/" + name, to = checkpointFolder + "/" + name
                if files.fileExists(atPath: from), !files.fileExists(atPath: to) { try? files.copyItem(atPath: from, toPath: to) }
            }
        }
        // A GGUF language model's embedded tokenizer, as HF files.
        if folder == nil, !files.fileExists(atPath: checkpointFolder + "/tokenizer.json"), !Self.isDirectory(tokenizerSource) {
            if try !GGUFTokenizerExport.write(gguf: tokenizerSource, to: checkpointFolder) {
                log("note: this GGUF's tokenizer kind is not exported; the checkpoint has no tokenizer files (copy them in)")
            }
        }
        let processor = checkpointFolder + "/preprocessor_config.json"
        if !files.fileExists(atPath: processor) {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try? encoder.encode(preprocessor).write(to: URL(fileURLWithPath: processor), options: .atomic)
        }
    }
}

/// `<out>/data_order.json`: the data-order state of the last few checkpoints, written before each
/// checkpoint (so a checkpoint never exists without its state), looked up by step on resume.
enum DataOrderLog {
    static func read(_ path: String) throws -> [DataOrderState] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        do { return try JSONDecoder().decode([DataOrderState].self, from: data) } catch {
            throw ForgeError(.badInput, "cannot read the data-order state: \(error)", file: path)
        }
    }

    static func append(_ state: DataOrderState, path: String) throws {
        var states = try read(path).filter { $0.step != state.step }
        states.append(state)
        states = Array(states.suffix(4))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do { try encoder.encode(states).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw ForgeError(.io, "cannot write the data-order state: \(error.localizedDescription)", file: path)
        }
    }

    static func state(at step: Int, path: String) throws -> DataOrderState {
        guard let found = try read(path).last(where: { $0.step == step }) else {
            throw ForgeError(.badInput, "no data-order state for the checkpoint's step \(step)", file: path)
        }
        return found
    }
}
