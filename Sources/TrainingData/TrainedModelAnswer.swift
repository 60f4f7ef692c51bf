import ForgeCore
import Foundation
import Imaging
import Models
import Tokenizers

/// One question about one image, answered greedily by a (freshly trained) LLaVA: the template's
/// generation prompt with "<image>\n" + question, the image's feature rows spliced in, decoding
/// until an end-of-sequence / end-of-turn token or `maxTokens`.
public enum TrainedModelAnswer {
    public static func answer(model: LlavaModel, tokenizer: Tokenizer, template: ChatTemplate, preprocessor: CLIPPreprocessorConfig,
                              padToSquare: Bool, imagePath: String, question: String, maxTokens: Int) throws -> String {
        let image = try ImageDecoder.decode(path: imagePath)
        let pixels = CLIPPreprocessor(config: preprocessor).pixelValues(image, padToSquare: padToSquare)
        let user = ChatTemplate.imageToken + "\n" + question
        let promptTemplate = template.name == .plain ? ChatTemplate(.vicunaV1) : template
        let rendered = try promptTemplate.generationPrompt([.user(user)])
        var ids: [Int] = []
        for id in tokenizer.encodeLLaVA(rendered.text, imageTokenId: llavaImageMarker).ids {
            if id == llavaImageMarker {
                ids += [Int](repeating: model.config.imageTokenIndex, count: model.rowsPerImage)
            } else {
                ids.append(id)
            }
        }
        let positions = model.language.rotary.positions
        guard ids.count < positions else {
            throw ForgeError(.usage, "the question's prompt has \(ids.count) tokens; the model attends over \(positions)")
        }
        var stops = Set(tokenizer.eosTokenIds)
        if let eos = tokenizer.eosTokenId { stops.insert(eos) }
        if let eos = model.config.textConfig.eosTokenID { stops.insert(eos) }
        if let end = tokenizer.tokenToId("<|im_end|>") { stops.insert(end) }
        let budget = max(0, min(maxTokens, positions - ids.count))
        let cache = KVCache(config: model.language.config, capacity: ids.count + budget)
        var logits = try model.prefill(tokens: ids, pixelValues: pixels, cache: cache)
        var generated: [Int] = []
        while generated.count < budget {
            let next = LlamaModel.argmax(logits)
            if stops.contains(next) { break }
            generated.append(next)
            if generated.count == budget { break }
            logits = try model.language.decode(tokens: [next], cache: cache)
        }
        return tokenizer.decode(generated, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
