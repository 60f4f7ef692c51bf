import Foundation
import ForgeCore
import XCTest

final class JSONTextTests: XCTestCase {
    func testEscapesExactlyAsRFC8259() {
        XCTAssertEqual(JSONText.quoted(""), #""""#)
        XCTAssertEqual(JSONText.quoted("plain café 東京 🪁"), "\"plain café 東京 🪁\"")
        XCTAssertEqual(JSONText.quoted("a\"b\\c\nd\re\tf\u{08}g\u{0C}h\u{01}i\u{1F}"),
                       #""a\"b\\c\nd\re\tf\bg\fh\u0001i\u001f""#)
        XCTAssertEqual(JSONText.quoted("\n"), #""\n""#)
        XCTAssertEqual(JSONText.quoted("ends with é\n"), #""ends with é\n""#)
        XCTAssertEqual(JSONText.quoted("\"é\""), #""\"é\"""#)
    }

    /// Whatever the string, JSONSerialization reads back exactly what was written.
    func testRoundTripsThroughAJSONParser() throws {
        var state: UInt64 = 42
        let alphabet: [Character] = ["a", " ", "\n", "\t", "\"", "\\", "é", "東", "🪁", "\u{01}", "\u{7F}", "/", "\r\n"]
        for _ in 0..<500 {
            var s = ""
            state = state &* 6364136223846793005 &+ 1442695040888963407
            for _ in 0..<Int(state >> 59) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                s.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            let json = "[" + JSONText.quoted(s) + "]"
            let back = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String]
            XCTAssertEqual(back, [s], json)
        }
    }
}
