import Foundation
import XCTest
@testable import Tokenizers

final class ChatTemplateTests: XCTestCase {
    let conversation: [ChatMessage] = [
        .user("<image>\nWhat is in the image?"), .assistant("A cat on a mat."),
        .user("What color is it?"), .assistant("It is black."),
    ]

    /// LLaVA conversation.py, SeparatorStyle.TWO: system + sep, then role + ": " + message + seps[i % 2].
    func testVicunaV1MatchesLLaVAGetPrompt() throws {
        let rendered = try ChatTemplate(.vicunaV1).render(conversation)
        let system = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
        XCTAssertEqual(rendered.text, system + " USER: <image>\nWhat is in the image? ASSISTANT: A cat on a mat.</s>USER: What color is it? ASSISTANT: It is black.</s>")
        let prompt = try ChatTemplate(.vicunaV1).generationPrompt([.user("<image>\nDescribe it.")])
        XCTAssertEqual(prompt.text, system + " USER: <image>\nDescribe it. ASSISTANT:")
        let llava = try ChatTemplate(.llavaV1).render(Array(conversation.prefix(2)))
        XCTAssert(llava.text.hasPrefix("A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions. USER: "))
    }

    func testVicunaV1RejectsConversationsThatDoNotAlternate() {
        XCTAssertThrowsError(try ChatTemplate(.vicunaV1).render([.assistant("hi")]))
        XCTAssertThrowsError(try ChatTemplate(.vicunaV1).generationPrompt([.user("a"), .assistant("b")]))
    }

    /// Trainable tokens are exactly the answers and their </s>; everything else is masked.
    func testVicunaMaskTrainsAnswersAndEndOfTurn() throws {
        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        let rendered = try ChatTemplate(.vicunaV1).render(conversation)
        let tokenized = tokenizer.encode(chat: rendered)
        XCTAssertEqual(tokenized.ids, tokenizer.encode(rendered.text))
        XCTAssertEqual(tokenized.trainable.first, false) // BOS
        let runs = trainableRuns(tokenized).map { tokenizer.decode($0) }
        XCTAssertEqual(runs, ["A cat on a mat.</s>", "It is black.</s>"])
        XCTAssertEqual(tokenized.ids.filter { $0 == 2 }.count, 2)
    }

    func testChatMLWithSmolLMDefaultSystemPrompt() throws {
        let smol = try ChatTemplate(.chatMLSmolLM).generationPrompt([.user("Hi")])
        XCTAssertEqual(smol.text, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let custom = try ChatTemplate(.chatMLSmolLM).render([.system("Be brief."), .user("Hi"), .assistant("Hello!")])
        XCTAssertEqual(custom.text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")
        let plain = try ChatTemplate(.chatML).render([.user("Hi"), .assistant("Hello!")])
        XCTAssertEqual(plain.text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n")

        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path("bytelevel"))
        let runs = trainableRuns(tokenizer.encode(chat: custom)).map { tokenizer.decode($0) }
        XCTAssertEqual(runs, ["Hello!<|im_end|>"])
    }

    func testLlavaHFAndPlain() throws {
        let hf = try ChatTemplate(.llavaHF).generationPrompt([.user("<image>\nWhat is shown?")])
        XCTAssertEqual(hf.text, "USER: <image>\nWhat is shown? ASSISTANT:")
        let hfTurns = try ChatTemplate(.llavaHF).render([.user("<image>\nQ1"), .assistant("A1"), .user("Q2")])
        XCTAssertEqual(hfTurns.text, "USER: <image>\nQ1 ASSISTANT: A1 USER: Q2 ")

        let plain = try ChatTemplate(.plain).render([.user("Describe.\n<image>"), .assistant("A dog runs on grass.")])
        XCTAssertEqual(plain.text, "<image>A dog runs on grass.\n")
        XCTAssertEqual(plain.segments.map(\.trainable), [false, true])
        XCTAssertThrowsError(try ChatTemplate(.plain).render([.user("no image"), .assistant("x")]))
        XCTAssertEqual(try ChatTemplate(.plain).generationPrompt([.user("<image>")]).text, "<image>")
        XCTAssertEqual(try ChatTemplate.named("vicuna_v1").name, .vicunaV1)
        XCTAssertThrowsError(try ChatTemplate.named("nope"))
    }

    func testLLaVAImagePlacement() {
        XCTAssertEqual(ChatTemplate.llavaImageFirst("What is this?\n<image>"), "<image>\nWhat is this?")
        XCTAssertEqual(ChatTemplate.llavaImageFirst("  <image> Describe.  "), "<image>\nDescribe.")
        XCTAssertEqual(ChatTemplate.llavaImageFirst("No image"), "No image")
    }

    /// LLaVA's tokenizer_image_token, against the Python reference on HF tokenizers.
    func testLLaVAImageTokenEncodingMatchesReference() throws {
        struct Prompt: Decodable { var tokenizer: String; var text: String; var ids: [Int] }
        let prompts = try JSONDecoder().decode([Prompt].self, from: Data(contentsOf: URL(fileURLWithPath: try Fixtures.path("llava_prompts.json"))))
        XCTAssertEqual(prompts.count, 8)
        var tokenizers: [String: Tokenizer] = [:]
        for p in prompts {
            let tokenizer = try tokenizers[p.tokenizer] ?? TokenizerLoader.load(folder: try Fixtures.path(p.tokenizer))
            tokenizers[p.tokenizer] = tokenizer
            XCTAssertEqual(tokenizer.encodeLLaVA(p.text).ids, p.ids, "\(p.tokenizer): \(String(reflecting: p.text))")
        }
    }

    func testLLaVAMaskWithImage() throws {
        let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        let rendered = try ChatTemplate(.vicunaV1).render(conversation)
        let tokenized = tokenizer.encodeLLaVA(chat: rendered)
        XCTAssertEqual(tokenized.ids.filter { $0 == -200 }.count, 1)
        XCTAssertEqual(trainableRuns(tokenized).map { tokenizer.decode($0) }, ["A cat on a mat.</s>", "It is black.</s>"])
        let plain = try ChatTemplate(.plain).render([.user("<image>"), .assistant("A dog.")])
        let plainTokens = tokenizer.encodeLLaVA(chat: plain)
        XCTAssertEqual(Array(plainTokens.ids.prefix(2)), [1, -200])
        XCTAssertEqual(plainTokens.trainable.prefix(2), [false, false])
        XCTAssertEqual(trainableRuns(plainTokens).map { tokenizer.decode($0) }, ["A dog.\n"])
    }

    /// Contiguous runs of trainable ids.
    func trainableRuns(_ t: TokenizedChat) -> [[Int]] {
        var runs: [[Int]] = []
        var current: [Int] = []
        for (id, train) in zip(t.ids, t.trainable) {
            if train { current.append(id) } else if !current.isEmpty { runs.append(current); current = [] }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }
}
