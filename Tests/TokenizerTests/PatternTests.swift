import XCTest
@testable import Tokenizers

/// The hand-written pre-tokenizer scanners agree with ICU running the same regex.
final class PatternTests: XCTestCase {
    // Letters, numbers, marks, punctuation, symbols and the whitespace ICU and Oniguruma agree on
    // (ICU's \s lacks U+000B and U+0085, so they are left out here; the golden corpus covers
    // NBSP, EM SPACE and IDEOGRAPHIC SPACE against HF itself).
    let alphabet: [UInt32] = Array("aZé日ßſ1٣½'sStTrReEvVmMlLdD .,!?-_\t\n\r".unicodeScalars.map(\.value))
        + [0x00A0, 0x3000, 0x2003, 0x0301, 0x1F980, 0x20AC, 0x2028]

    func randomStrings(seed: UInt64, count: Int) -> [[UInt32]] {
        var x = seed
        var out: [[UInt32]] = []
        for _ in 0..<count {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let length = Int(x >> 60) + 1 + Int((x >> 20) & 15)
            var s: [UInt32] = []
            for _ in 0..<length {
                x = x &* 6364136223846793005 &+ 1442695040888963407
                s.append(alphabet[Int((x >> 33) % UInt64(alphabet.count))])
            }
            out.append(s)
        }
        return out
    }

    func compare(_ fast: SplitPattern, _ pattern: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let icu = try ICURegexPattern(pattern, file: nil, field: "test")
        var mismatches = 0
        for s in randomStrings(seed: 42, count: 3000) {
            let a = s.withUnsafeBufferPointer { fast.matches(in: $0) }
            let b = s.withUnsafeBufferPointer { icu.matches(in: $0) }
            if a != b {
                mismatches += 1
                if mismatches <= 3 { XCTFail("\(String(reflecting: String(scalarValues: s))): scanner \(a) vs ICU \(b)", file: file, line: line) }
            }
        }
        XCTAssertEqual(mismatches, 0, file: file, line: line)
    }

    func testGPT2ScannerMatchesICU() throws { try compare(GPT2Pattern(), Patterns.gpt2) }
    func testLlama3ScannerMatchesICU() throws { try compare(Llama3Pattern(maxDigits: 3), Patterns.llama3) }
    func testQwen2ScannerMatchesICU() throws { try compare(Llama3Pattern(maxDigits: 1), Patterns.qwen2) }

    func testKnownPatternsUseScanners() throws {
        XCTAssert(try Patterns.regex(Patterns.gpt2, file: nil, field: "") is GPT2Pattern)
        XCTAssert(try Patterns.regex(Patterns.llama3, file: nil, field: "") is Llama3Pattern)
        XCTAssert(try Patterns.regex(#"\s+"#, file: nil, field: "") is ICURegexPattern)
    }

    func testSplitBehaviours() {
        // "the-final--countdown" split on "-" (HF's documented examples).
        let text = [UInt32]("the-final--countdown".unicodeScalars.map(\.value))
        let input = PieceBuffer(scalars: text, origin: (0..<Int32(text.count)).map { $0 })
        let matches = text.withUnsafeBufferPointer { LiteralPattern(literal: [0x2D]).matches(in: $0) }
        func words(_ b: SplitBehavior, invert: Bool = false) -> [String] {
            var out = PieceBuffer()
            b.apply(matches: matches, word: 0..<text.count, of: input, invert: invert, into: &out)
            return (0..<out.wordCount).map { String(scalarValues: out.scalars[out.wordRange($0)]) }
        }
        XCTAssertEqual(words(.removed), ["the", "final", "countdown"])
        XCTAssertEqual(words(.isolated), ["the", "-", "final", "-", "-", "countdown"])
        XCTAssertEqual(words(.mergedWithPrevious), ["the-", "final-", "-", "countdown"])
        XCTAssertEqual(words(.mergedWithNext), ["the", "-final", "-", "-countdown"])
        XCTAssertEqual(words(.contiguous), ["the", "-", "final", "--", "countdown"])
        XCTAssertEqual(words(.removed, invert: true), ["-", "-", "-"])
    }

    func testCharacterClasses() {
        XCTAssertTrue(CharClass.isLetter(0x65E5)) // 日
        XCTAssertTrue(CharClass.isNumber(0xBD))   // ½
        XCTAssertTrue(CharClass.isNumber(0x663))  // ٣
        XCTAssertTrue(CharClass.isWhitespace(0x3000))
        XCTAssertTrue(CharClass.isWhitespace(0x85))
        XCTAssertFalse(CharClass.isWhitespace(0x200B)) // zero-width space is not White_Space
        XCTAssertFalse(CharClass.isLetter(0x1F980))
    }
}
