import ForgeCore
import Foundation
@testable import Generation
import LLMClient
import XCTest

/// The planner's fast paths must give byte-identical bodies and identical keys: the request
/// cache is keyed on the SHA-256 of the exact body.
final class RequestBodyFastPathTests: XCTestCase {
    func testKeyHashMatchesReferenceSHA256AtEveryPaddingBoundary() {
        var rng = SystemRandomNumberGenerator()
        for length in [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 6143, 6144] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var streaming = SHA256()
            streaming.update(bytes)
            XCTAssertEqual(SHA256OneShot.hex(bytes), streaming.finalize().map { String(format: "%02x", $0) }.joined(), "length \(length)")
        }
        // Fed in uneven pieces, the streaming digest is the same.
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var pieces = SHA256()
        for range in [0..<1, 1..<64, 64..<200, 200..<201, 201..<1000] { pieces.update(Array(long[range])) }
        XCTAssertEqual(pieces.finalize().map { String(format: "%02x", $0) }.joined(), SHA256OneShot.hex(long))
        // A known vector, so the test fails if both were wrong the same way.
        XCTAssertEqual(SHA256OneShot.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testTemplateBodiesEqualTheFullEncoderForAwkwardContexts() {
        let build: (String) -> ChatRequest = { context in
            ChatRequest(model: "gpt-4o-mini", messages: [
                .system("You are an AI visual assistant.\n\"Quotes\" and \\ backslashes\u{7F}"),
                .user("example context\twith tab"), .assistant("example answer"),
                .user(context),
            ], params: SamplingParams(temperature: 0.7, topP: 0.95, maxTokens: 512, seed: 3, stop: ["\n\n"]))
        }
        let template = RequestBodyTemplate(build: build)
        let contexts = ["", "plain", "line one\nline two\r\n", "quote \" backslash \\ control \u{1}\u{1F}\u{7F} é 日本 🐕",
                        "person: [0.12, 0.5, 0.3, 0.9]\n" + String(repeating: "A dog next to a cat.\n", count: 300)]
        for c in contexts {
            XCTAssertEqual(template.body(context: c), [UInt8](build(c).bodyJSON()), "context \(c.prefix(30).debugDescription)")
            // The key hashed from the prefix's midstate equals the hash of the whole body.
            let (body, key) = template.bodyAndKey(context: c)
            XCTAssertEqual(key, SHA256.hex([UInt8](build(c).bodyJSON())), "context \(c.prefix(30).debugDescription)")
            XCTAssertEqual(body, [UInt8](build(c).bodyJSON()))
        }
    }

    func testHexAppendingKeepsTheHasherAndMatchesOneShot() {
        var rng = SystemRandomNumberGenerator()
        for prefixLength in [0, 1, 55, 63, 64, 65, 127, 128, 1000] {
            let prefix = (0..<prefixLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var hasher = SHA256()
            hasher.update(prefix)
            for tailLength in [0, 1, 8, 56, 64, 300] {
                let tail = (0..<tailLength).map { _ in UInt8.random(in: 0...255, using: &rng) }
                XCTAssertEqual(hasher.hex(appending: tail), SHA256OneShot.hex(prefix + tail), "prefix \(prefixLength) tail \(tailLength)")
                XCTAssertEqual(hasher.hex(appending: tail), SHA256OneShot.hex(prefix + tail), "the hasher is unchanged by hex(appending:)")
            }
        }
    }

    func testEscapingKeepsTheCanonicalForm() {
        let body = ChatRequest(model: "m", messages: [.user("a\"b\\c\nd\u{0}e\u{7F}f\u{8}\u{C}\tg/é")]).bodyJSON()
        XCTAssertEqual(String(decoding: body, as: UTF8.self),
                       #"{"model":"m","messages":[{"role":"user","content":"a\"b\\c\nd\u0000e\u007ff\b\f\tg/é"}],"stream":false}"#)
    }
}
