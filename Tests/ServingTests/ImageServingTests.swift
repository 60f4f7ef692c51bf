import XCTest
import Foundation
import Imaging
import Inference
import Models
import Tokenizers
@testable import Serving

/// Images end to end on the tiny llava fixture (CLIP tower 42 px → 9 rows, LM vocab 300): the
/// prompt ids equal HF tokenizers' with the image rows, the spliced features are the model's own,
/// the server's greedy answer equals LlavaModel's prefill + decode, and the prefix cache never
/// carries KV from one image to another.
final class ImageServingTests: XCTestCase {
    static let model: ChatModel = try! ChatModel(path: try! ServingFixtures.tinyLlavaFolder())
    var llava: LlavaModel { Self.model.model.llava! }

    func photoTurn(_ path: String = ServingFixtures.photo, text: String = "What is in the picture?") throws -> ChatTurn {
        ChatTurn(role: .user, parts: [.image(try ImageDecoder.decode(path: path)), .text(text)])
    }

    func pixels(_ path: String) throws -> [Float] {
        CLIPPreprocessor(config: .openAI(resolution: llava.config.visionConfig.imageSize)).pixelValues(try ImageDecoder.decode(path: path), padToSquare: false)
    }

    /// Greedy ids from LlavaModel's own prefill (pixels → tower → projector → splice) and decode.
    func llavaGreedy(ids: [Int], imagePath: String, maxTokens: Int) throws -> [Int] {
        let cache = KVCache(config: llava.language.config, capacity: ids.count + maxTokens)
        var logits = try llava.prefill(tokens: ids, pixelValues: try pixels(imagePath), cache: cache)
        var out: [Int] = []
        while out.count < maxTokens {
            let next = Sampler.argmax(logits)
            if Self.model.stopTokenIDs.contains(next) { break }
            out.append(next)
            if out.count == maxTokens || cache.length >= cache.capacity { break }
            logits = try llava.language.decode(tokens: [next], cache: cache)
        }
        return out
    }

    func testPromptIsHFTokenizersIdsWithTheImageRowsSpliced() throws {
        XCTAssertEqual(Self.model.template.name, .llavaHF)
        XCTAssertEqual(Self.model.maxImages, 1)
        let prompt = try Self.model.prepare([try photoTurn()])
        XCTAssertEqual(prompt.text, "USER: <image>\nWhat is in the picture? ASSISTANT:")
        XCTAssertEqual(prompt.ids, try ServingFixtures.llavaExpectedIDs())
        let splice = try XCTUnwrap(prompt.splice)
        XCTAssertEqual(splice.positions, prompt.ids.indices.filter { prompt.ids[$0] == 299 })
        XCTAssertEqual(splice.positions.count, llava.rowsPerImage)
        XCTAssertEqual(splice.rows, try llava.imageFeatures(pixelValues: try pixels(ServingFixtures.photo), images: 1))
    }

    func testTooManyImagesAndPlaceholderTextAreRefused() throws {
        let image = try ImageDecoder.decode(path: ServingFixtures.photo)
        XCTAssertThrowsError(try Self.model.prepare([ChatTurn(role: .user, parts: [.image(image), .image(image), .text("two")])])) { e in
            XCTAssertEqual((e as? PromptError)?.kind, .tooManyImages)
            XCTAssertEqual((e as? PromptError)?.param, "messages[0].content[0]")
        }
        XCTAssertThrowsError(try Self.model.prepare([ChatTurn(role: .user, text: "sneaky <image> text")])) { e in
            XCTAssertEqual((e as? PromptError)?.param, "messages[0].content")
        }
        XCTAssertThrowsError(try Self.model.prepare([ChatTurn(role: .assistant, parts: [.image(image)])])) { e in
            XCTAssertEqual((e as? PromptError)?.param, "messages[0].content[0]")
        }
    }

    func testImageRequestThroughTheServerEqualsLlavasOwnDecode() throws {
        let ids = try ServingFixtures.llavaExpectedIDs()
        let expected = try llavaGreedy(ids: ids, imagePath: ServingFixtures.photo, maxTokens: 12)
        let expectedText = Self.model.detokenize(expected)
        var options = ChatService.Options(modelName: "tiny-llava")
        options.limits = .init(maxTokens: 12)
        let server = try RunningServer(service: ChatService(model: Self.model, options: options))
        defer { server.stop() }
        let body = chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": try ServingFixtures.dataURL(ServingFixtures.photo)]],
                                                         ["type": "text", "text": "What is in the picture?"]]]], ["temperature": 0, "max_tokens": 12])
        let r = try RawHTTP.post(port: server.port, body)
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(((r.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String, expectedText)
        let usage = r.json["usage"] as? [String: Any]
        XCTAssertEqual(usage?["prompt_tokens"] as? Int, ids.count, "image rows count as prompt tokens")
        XCTAssertEqual(usage?["completion_tokens"] as? Int, expected.count)

        // Two images in one conversation: more than the model takes.
        let url = try ServingFixtures.dataURL(ServingFixtures.photo)
        let two = try RawHTTP.post(port: server.port, chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": url]],
                                                                                        ["type": "image_url", "image_url": ["url": url]]]]]))
        XCTAssertEqual(two.status, 400)
        XCTAssertEqual(two.error["code"] as? String, "too_many_images")
        XCTAssertEqual(try RawHTTP.post(port: server.port, body).status, 200, "still serving")
    }

    /// The same token ids with two different images: the prefix cache may give the second only
    /// the text before the image (block size 4 here, so "USER: " shares one block), never rows
    /// computed with the first image — through the generator and through the batch scheduler.
    func testThePrefixCacheNeverReusesKVAcrossImages() throws {
        let promptA = try Self.model.prepare([try photoTurn(ServingFixtures.photo)])
        let promptB = try Self.model.prepare([try photoTurn(ServingFixtures.otherPhoto)])
        XCTAssertEqual(promptA.ids, promptB.ids)
        let firstImage = promptA.splice!.positions[0]
        let referenceA = try llavaGreedy(ids: promptA.ids, imagePath: ServingFixtures.photo, maxTokens: 8)
        let referenceB = try llavaGreedy(ids: promptB.ids, imagePath: ServingFixtures.otherPhoto, maxTokens: 8)
        XCTAssertNotEqual(referenceA, referenceB, "the two photos must lead to different answers for this test to mean anything")

        func request(_ p: PreparedPrompt) -> GenerationRequest {
            GenerationRequest(prompt: p.ids, maxTokens: 8, stopTokenIDs: Self.model.stopTokenIDs, embeddingSplice: p.splice)
        }
        let cache = PrefixCache(config: Self.model.engine.config, blockSize: 4)
        let generator = TextGenerator(engine: Self.model.engine, prefixCache: cache)
        let a = try generator.generate(request(promptA))
        let b = try generator.generate(request(promptB))
        let a2 = try generator.generate(request(promptA))
        XCTAssertEqual(a.tokens, referenceA)
        XCTAssertEqual(b.tokens, referenceB)
        XCTAssertEqual(a2.tokens, referenceA)
        XCTAssertEqual(b.cachedPromptTokens, min(firstImage - 1, firstImage / 4 * 4))  // the whole 4-token blocks before the image
        XCTAssertGreaterThan(b.cachedPromptTokens, 0, "the text before the image is shared")
        XCTAssertLessThanOrEqual(b.cachedPromptTokens, firstImage)

        let schedulerCache = PrefixCache(config: Self.model.engine.config, blockSize: 4)
        let scheduler = BatchScheduler(engine: Self.model.engine, maxActive: 4, prefixCache: schedulerCache)
        defer { scheduler.shutdown() }
        var results: [Int: GenerationResult] = [:]
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let r = try? scheduler.generate(request(i % 2 == 0 ? promptA : promptB))
            lock.lock(); results[i] = r; lock.unlock()
        }
        for i in 0..<4 { XCTAssertEqual(results[i]?.tokens, i % 2 == 0 ? referenceA : referenceB, "request \(i)") }
        for r in results.values { XCTAssertLessThanOrEqual(r.cachedPromptTokens, firstImage) }
    }
}
