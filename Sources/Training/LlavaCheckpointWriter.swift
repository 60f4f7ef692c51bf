import Foundation
import Checkpoints
import ForgeCore
import Models
import TensorMath

/// Writes a LLaVA as a transformers `LlavaForConditionalGeneration` folder: `model.safetensors`
/// (F32) + `config.json`. The keys are what transformers 5 `save_pretrained` writes (the inverse
/// of `CheckpointKeys.sanitize` for that layout): `language_model.model.*`,
/// `language_model.lm_head.weight` (only when untied — a tied head is not stored),
/// `multi_modal_projector.*`, and the frozen tower as `vision_tower.*`.
public enum LlavaCheckpointWriter {
    /// HF key of each of our tensors, in the trainable buffer and the tower buffer.
    public static func keys(_ model: LlavaModel) -> [(key: String, buffer: ParameterBuffer, slot: ParameterSlot)] {
        var list: [(String, ParameterBuffer, ParameterSlot)] = []
        let lmHead = LlavaModel.languagePrefix + LlamaParameterNames.lmHead
        for slot in model.trainable.slots {
            if slot.name == lmHead {
                list.append(("language_model.lm_head.weight", model.trainable, slot))
            } else if slot.name.hasPrefix(LlavaModel.languagePrefix) {
                list.append(("language_model.model." + slot.name.dropFirst(LlavaModel.languagePrefix.count), model.trainable, slot))
            } else {
                list.append((slot.name, model.trainable, slot))  // multi_modal_projector.* already
            }
        }
        let tower = model.vision.parameters, towerPrefix = model.vision.prefix
        for slot in tower.slots where slot.name.hasPrefix(towerPrefix) {
            list.append(("vision_tower." + slot.name.dropFirst(towerPrefix.count), tower, slot))
        }
        return list
    }

    /// Writes the folder (created if needed). `configJSON`: the source checkpoint's config.json to
    /// keep every field transformers knows; without it one is encoded from `model.config`.
    public static func write(_ model: LlavaModel, configJSON: Data?, to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let tensors = keys(model).map { entry in
            (name: entry.key, shape: entry.slot.shape, data: entry.buffer.storage.toArray(offset: entry.slot.offset, count: entry.slot.count))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: folder + "/model.safetensors")
        let config = try configJSON ?? encodedConfig(model.config)
        try config.write(to: URL(fileURLWithPath: folder + "/config.json"), options: .atomic)
    }

    /// `LlavaConfig`'s encoding plus the fields transformers needs to pick the class.
    static func encodedConfig(_ config: LlavaConfig) throws -> Data {
        let encoded = try JSONEncoder().encode(config)
        guard var object = try JSONSerialization.jsonObject(with: encoded) as? [String: Any] else {
            throw ForgeError(.config, "LlavaConfig did not encode to a JSON object")
        }
        object["model_type"] = "llava"
        object["architectures"] = ["LlavaForConditionalGeneration"]
        object["tie_word_embeddings"] = config.textConfig.tieWordEmbeddings
        if var vision = object["vision_config"] as? [String: Any], vision["model_type"] == nil {
            vision["model_type"] = "clip_vision_model"
            object["vision_config"] = vision
        }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
