import ForgeCore
import Foundation
import Tokenizers

/// LLaVA's marker for an image inside token ids before expansion (`IMAGE_TOKEN_INDEX`).
public let llavaImageMarker = -200
/// HF's ignored label.
public let ignoredLabel = -100

/// A training sequence as token ids and labels, image rows expanded, plus what happened to it.
public struct EncodedExample: Sendable, Equatable {
    public var tokens: [Int]
    public var labels: [Int]
    public var imagePath: String?
    public var truncated: Bool
    /// Index of the source example.
    public var example: Int
}

/// What encoding a data set did (over-long samples are truncated and counted, never silent).
public struct EncodingReport: Sendable, Equatable {
    public var encoded = 0
    public var truncated = 0
    /// Over-long samples whose cut would fall inside the image rows (the splice needs them all).
    public var droppedImageCut = 0
    /// Samples left with no trained token (all answers cut away).
    public var droppedNoTarget = 0
    public var textOnly = 0
    /// Text-only samples skipped by the `plain` template (Stage 1 learns image → caption only).
    public var skippedWithoutImage = 0
    public init() {}
}

/// A conversation → ids + labels with LLaVA's masking, through a named `ChatTemplate`:
/// `vicuna_v1` (system, user turns and "ASSISTANT:" masked; " answer" + "</s>" trained),
/// ChatML (`<|im_start|>assistant\n` masked; answer + `<|im_end|>` trained), `plain` (Stage 1:
/// `<image>` masked, caption + "\n" trained). Text is encoded LLaVA's way (`tokenizer_image_token`:
/// chunks split at `<image>`), each token labelled by the segment its first character lies in.
public struct ConversationEncoder {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    /// The id the model's splice looks for (one per feature row).
    public let imageTokenIndex: Int
    public let rowsPerImage: Int
    public let maxLength: Int

    public init(tokenizer: Tokenizer, template: ChatTemplate, imageTokenIndex: Int, rowsPerImage: Int, maxLength: Int) {
        self.tokenizer = tokenizer
        self.template = template
        self.imageTokenIndex = imageTokenIndex
        self.rowsPerImage = rowsPerImage
        self.maxLength = maxLength
    }

    /// The messages LLaVA's `preprocess_multimodal` makes: `<image>` moved to the front of the turn
    /// that has it ("<image>\n" + rest); an image with no placeholder gets one in the first turn.
    /// `plain` keeps the first exchange only (LLaVA's pretraining records are single captions).
    public func messages(_ example: TrainingExample) throws -> [ChatMessage] {
        var turns = example.turns
        let mentions = turns.reduce(0) { $0 + $1.value.components(separatedBy: ChatTemplate.imageToken).count - 1 }
        if example.imagePath == nil, mentions > 0 {
            throw ForgeError(.badInput, "the conversation has \(ChatTemplate.imageToken) but the record has no image", location: "record \(example.id)")
        }
        if example.imagePath != nil {
            guard mentions <= 1 else {
                throw ForgeError(.badInput, "the conversation has \(mentions) \(ChatTemplate.imageToken) placeholders for one image", location: "record \(example.id)")
            }
            if mentions == 0 { turns[0].value = ChatTemplate.imageToken + "\n" + turns[0].value }
        }
        if template.name == .plain { turns = Array(turns.prefix(2)) }
        return turns.map { turn in
            let text = turn.value.contains(ChatTemplate.imageToken) ? ChatTemplate.llavaImageFirst(turn.value) : turn.value
            return TrainingExample.role(turn.from) == "human" ? .user(text) : .assistant(text)
        }
    }

    /// LLaVA's arrays before image expansion: ids with `llavaImageMarker` (-200) for the image and
    /// labels (−100 where not trained) — what `preprocess_v1` / `preprocess_plain` return.
    public func llavaArrays(_ example: TrainingExample) throws -> (ids: [Int], labels: [Int]) {
        let rendered = try template.render(messages(example))
        let chat = tokenizer.encodeLLaVA(chat: rendered, imageTokenId: llavaImageMarker)
        let labels = zip(chat.ids, chat.trainable).map { $1 ? $0 : ignoredLabel }
        return (chat.ids, labels)
    }

    /// The training sequence: the image marker expanded to `rowsPerImage` image tokens (labels
    /// −100), truncated to `maxLength`. nil when the example cannot train (counted in `report`).
    public func encode(_ example: TrainingExample, index: Int, report: inout EncodingReport) throws -> EncodedExample? {
        if template.name == .plain, example.imagePath == nil {
            report.skippedWithoutImage += 1
            return nil
        }
        let (ids, labels) = try llavaArrays(example)
        var tokens: [Int] = [], expandedLabels: [Int] = []
        tokens.reserveCapacity(ids.count + rowsPerImage)
        for (id, label) in zip(ids, labels) {
            if id == llavaImageMarker {
                tokens += [Int](repeating: imageTokenIndex, count: rowsPerImage)
                expandedLabels += [Int](repeating: ignoredLabel, count: rowsPerImage)
            } else {
                tokens.append(id)
                expandedLabels.append(label)
            }
        }
        var truncated = false
        if tokens.count > maxLength {
            let rows = tokens.reduce(0) { $0 + ($1 == imageTokenIndex ? 1 : 0) }
            let kept = tokens[..<maxLength].reduce(0) { $0 + ($1 == imageTokenIndex ? 1 : 0) }
            if kept != rows {
                report.droppedImageCut += 1
                return nil
            }
            tokens.removeLast(tokens.count - maxLength)
            expandedLabels.removeLast(expandedLabels.count - maxLength)
            truncated = true
        }
        guard expandedLabels.dropFirst().contains(where: { $0 != ignoredLabel }) else {
            report.droppedNoTarget += 1
            return nil
        }
        if truncated { report.truncated += 1 }
        if example.imagePath == nil { report.textOnly += 1 }
        report.encoded += 1
        return EncodedExample(tokens: tokens, labels: expandedLabels, imagePath: example.imagePath, truncated: truncated, example: index)
    }

    /// Every example encoded (those that cannot train dropped and counted).
    public func encodeAll(_ examples: [TrainingExample]) throws -> (sequences: [EncodedExample], report: EncodingReport) {
        var report = EncodingReport()
        var out: [EncodedExample] = []
        for (i, example) in examples.enumerated() {
            do {
                if let e = try encode(example, index: i, report: &report) { out.append(e) }
            } catch var error as ForgeError {
                if error.location == nil { error.location = "record \(example.id)" }
                throw error
            }
        }
        return (out, report)
    }
}
