import XCTest
@testable import Tokenizers

final class StreamingDecoderTests: XCTestCase {
    /// Token-by-token output concatenates to the full decode, and no piece ends inside a character.
    func testStreamingEqualsFullDecode() throws {
        for name in ["bytelevel", "spm", "spm_metaspace"] {
            let tokenizer = try TokenizerLoader.load(folder: try Fixtures.path(name))
            for c in try Fixtures.golden(name + "/expected.json").cases {
                let stream = tokenizer.makeStreamingDecoder(skipSpecialTokens: true)
                var pieces: [String] = []
                for id in c.ids { pieces.append(stream.push(id)) }
                pieces.append(stream.finish())
                XCTAssertEqual(pieces.joined(), c.decoded_skip_special, "\(name): \(String(reflecting: c.text))")
                if !c.decoded_skip_special.contains("\u{FFFD}") {
                    XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, "\(name): a piece split a character in \(String(reflecting: c.text))")
                }
            }
        }
    }

    func testMultiByteCharacterWaitsForItsLastByte() throws {
        let spm = try TokenizerLoader.load(folder: try Fixtures.path("spm"))
        // 𝄞 is not in the small vocabulary: four <0xNN> byte tokens.
        let ids = spm.encode("𝄞", addSpecialTokens: false)
        let bytes = ids.compactMap { spm.idToToken($0) }.filter { $0.hasPrefix("<0x") }
        XCTAssertEqual(bytes, ["<0xF0>", "<0x9D>", "<0x84>", "<0x9E>"])
        let stream = spm.makeStreamingDecoder()
        let outputs = ids.map { stream.push($0) }
        XCTAssertEqual(outputs.last, "𝄞")
        XCTAssert(outputs.dropLast().allSatisfy { $0.isEmpty || $0 == " " }, "\(outputs)")
    }
}
