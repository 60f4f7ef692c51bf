import Foundation
import ForgeCore
import Models
import TensorMath

/// The buffers of a LoRA run: the decoder's weights stay where they are, frozen (no gradient
/// buffer, no optimizer moments for them); one small trainable buffer holds a copy of the
/// projector (LLaVA: the projector still trains fully, as in LLaVA's LoRA recipe) followed by the
/// adapters. `merged*` produce a plain model (adapters folded into the weights, trained projector
/// copied back) for export, leaving the training state untouched.
public final class LoRATraining {
    public let options: LoRAOptions
    public let language: LlamaModel
    public let llava: LlavaModel?
    /// Projector tensors (`multi_modal_projector.*`, LLaVA only) then `…lora_A/B.weight` tensors.
    public let trainable: ParameterBuffer
    /// The projector over `trainable` (LLaVA only).
    public let projector: Projector?
    public let adapters: LoRAAdapters

    public convenience init(model: LlavaModel, options: LoRAOptions) throws {
        try self.init(language: model.language, llava: model, options: options)
    }

    public convenience init(language: LlamaModel, options: LoRAOptions) throws {
        try self.init(language: language, llava: nil, options: options)
    }

    private init(language: LlamaModel, llava: LlavaModel?, options: LoRAOptions) throws {
        try options.validate()
        self.options = options
        self.language = language
        self.llava = llava
        var layout = ParameterLayout()
        if let llava { ProjectorParameterNames.declare(llava.projector.config, prefix: LlavaModel.projectorPrefix, into: &layout) }
        LoRAAdapters.declare(language.config, options: options, prefix: language.prefix, into: &layout)
        trainable = ParameterBuffer(layout: layout)
        if let llava {
            for (name, _) in ProjectorParameterNames.shapes(llava.projector.config) {
                let full = LlavaModel.projectorPrefix + name, slot = trainable.slot(full)
                trainable.pointer(full).update(from: llava.trainable.pointer(full), count: slot.count)
            }
            projector = try Projector(config: llava.projector.config, parameters: trainable, prefix: LlavaModel.projectorPrefix)
        } else {
            projector = nil
        }
        adapters = try LoRAAdapters(config: language.config, options: options, parameters: trainable, prefix: language.prefix)
        adapters.initialize(prefix: language.prefix)
    }

    /// A copy of the model's own buffer (LLaVA: projector + decoder; else the decoder's) with the
    /// trained projector copied in and every adapter merged (W += alpha/r · B·A).
    public func mergedParameters() -> ParameterBuffer {
        let base = llava?.trainable ?? language.parameters
        let merged = ParameterBuffer(layout: base.layout)
        merged.storage.pointer.update(from: base.storage.pointer, count: base.totalCount)
        if llava != nil {
            for slot in trainable.slots where slot.name.hasPrefix(LlavaModel.projectorPrefix) {
                merged.pointer(slot.name).update(from: trainable.storage.pointer + slot.offset, count: slot.count)
            }
        }
        adapters.merge(into: merged, decoderPrefix: language.prefix)
        return merged
    }

    /// The merged LLaVA (shares the frozen tower), a plain `LlavaForConditionalGeneration`.
    public func mergedModel() throws -> LlavaModel {
        guard let llava else { throw ForgeError(.usage, "mergedModel() is for LLaVA runs; use mergedLanguageModel()") }
        return try LlavaModel(config: llava.config, vision: llava.vision, trainable: mergedParameters(), projectorConfig: llava.projector.config)
    }

    /// The merged decoder (for a LLaVA run: its language model alone).
    public func mergedLanguageModel() throws -> LlamaModel {
        try LlamaModel(config: language.config, parameters: mergedParameters(), prefix: language.prefix)
    }
}
