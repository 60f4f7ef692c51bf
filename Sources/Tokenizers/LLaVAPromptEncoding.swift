import ForgeCore
import Foundation

extension Tokenizer {
    /// LLaVA's `tokenizer_image_token`: the text is split at each `<image>`, every chunk is
    /// encoded on its own (with the tokenizer's special tokens), the first chunk's BOS is kept
    /// and later chunks lose theirs, and one `imageTokenId` (LLaVA: -200) stands for each image.
    /// Chunks being encoded separately matters: a SentencePiece tokenizer prepends ▁ to each.
    public func encodeLLaVA(_ text: String, imageTokenId: Int = -200, imagePlaceholder: String = ChatTemplate.imageToken) -> TokenizedText {
        let chunks = text.components(separatedBy: imagePlaceholder)
        let placeholderLength = imagePlaceholder.unicodeScalars.count
        var encoded: [TokenizedText] = []
        var placeholderStarts: [Int] = [] // scalar index of each <image>
        var start = 0
        for chunk in chunks {
            var e = encodeWithSources(chunk, addSpecialTokens: true)
            e.sourceScalarIndex = e.sourceScalarIndex.map { $0 >= 0 ? $0 + start : $0 }
            encoded.append(e)
            start += chunk.unicodeScalars.count
            placeholderStarts.append(start)
            start += placeholderLength
        }
        let beginsWithBOS = bosTokenId != nil && encoded.first?.ids.first == bosTokenId
        // LLaVA's `offset`: with BOS first, every chunk's first token (its BOS) is dropped after
        // the first BOS has been written once.
        let offset = beginsWithBOS ? 1 : 0
        var ids: [Int] = []
        var sources: [Int] = []
        if beginsWithBOS, let first = encoded.first {
            ids.append(first.ids[0])
            sources.append(first.sourceScalarIndex[0])
        }
        for (i, e) in encoded.enumerated() {
            if i > 0 {
                ids.append(imageTokenId)
                sources.append(placeholderStarts[i - 1])
            }
            if e.ids.count > offset {
                ids.append(contentsOf: e.ids[offset...])
                sources.append(contentsOf: e.sourceScalarIndex[offset...])
            }
        }
        return TokenizedText(ids: ids, sourceScalarIndex: sources)
    }

    /// A rendered conversation encoded the LLaVA way (`encodeLLaVA`), with the training mask;
    /// image tokens are never trainable.
    public func encodeLLaVA(chat: RenderedChat, imageTokenId: Int = -200) -> TokenizedChat {
        let encoded = encodeLLaVA(chat.text, imageTokenId: imageTokenId)
        var mask = Self.trainableMask(chat, encoded)
        for (i, id) in encoded.ids.enumerated() where id == imageTokenId { mask[i] = false }
        return TokenizedChat(ids: encoded.ids, trainable: mask)
    }
}
