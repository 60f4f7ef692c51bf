import ArgumentParser
import ForgeCore
import Foundation
import Tokenizers

/// `llava-forge tokenize --model M [--template T] TEXT`: the token ids as a JSON array.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the token ids of a text (optionally wrapped in a chat template) as a JSON array.")

    @Option(name: .long, help: "A tokenizer folder (tokenizer.json …) or a .gguf file.")
    var model: String

    @Option(name: .long, help: "Chat template (\(ChatTemplateName.allCases.map(\.rawValue).joined(separator: ", "))) or none; the text becomes the user turn of a generation prompt.")
    var template: String = "none"

    @Flag(name: .long, help: "Do not add the tokenizer's special tokens (BOS/EOS).")
    var noSpecialTokens = false

    @Option(name: .long, help: "Split at <image> the LLaVA way and stand this id in for each image (LLaVA: --image-token-id=-200).")
    var imageTokenId: Int?

    @Argument(help: "The text.")
    var text: String

    func run() throws {
        try runReportingErrors {
            let tokenizer = try TokenizerLoader.load(model: model)
            var input = text
            if template != "none" {
                input = try ChatTemplate.named(template).generationPrompt([.user(text)]).text
            }
            let ids: [Int]
            if let imageTokenId {
                ids = tokenizer.encodeLLaVA(input, imageTokenId: imageTokenId).ids
            } else {
                ids = tokenizer.encode(input, addSpecialTokens: !noSpecialTokens)
            }
            print("[" + ids.map(String.init).joined(separator: ",") + "]")
        }
    }
}
