@testable import Contexts
import XCTest

final class PythonFloatTests: XCTestCase {
    /// Values and `str(round(v, 3))` as CPython 3.11 prints them.
    func testRoundedReprMatchesPython() {
        let cases: [(Double, String)] = [
            (0.0005, "0.001"), (0.0015, "0.002"), (0.0025, "0.003"), (0.1235, "0.123"), (0.3445, "0.344"),
            (1.0 / 3.0, "0.333"), (2.0 / 3.0, "0.667"), (0.5, "0.5"), (0.0, "0.0"), (1.0, "1.0"), (0.9995, "1.0"),
            (0.12, "0.12"), (0.34, "0.34"), (0.574, "0.574"), (2.675 / 10, "0.267"), (0.0004999, "0.0"),
            (0.1005, "0.101"), (0.9999, "1.0"), (-0.0, "0.0"),
        ]
        for (v, want) in cases {
            XCTAssertEqual(PythonFloat.roundedRepr(v), want, "round(\(v), 3)")
        }
    }

    /// The integer fast path against the printf reference: ties (k + 0.5)/1000 and their
    /// neighbours one ulp away, every k/1000, and 100,000 seeded random values in [0, 1].
    func testFastPathEqualsPrintfReference() {
        var values: [Double] = [0, 1, 0.5, 0.9995, 0.0005, .leastNonzeroMagnitude, 1.0.nextDown]
        for k in 0...1000 {
            let tie = (Double(k) + 0.5) / 1000
            values += [Double(k) / 1000, tie, tie.nextUp, tie.nextDown, (Double(k) / 1000).nextUp, (Double(k) / 1000).nextDown]
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<100_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            values.append(Double(state >> 11) / Double(1 << 53))
        }
        var mismatches = 0
        for v in values where v >= 0 && v <= 1 {
            let fast = PythonFloat.roundedRepr(v), reference = PythonFloat.roundedReprViaPrintf(v)
            if fast != reference {
                mismatches += 1
                if mismatches < 5 { XCTFail("round(\(v), 3): fast \(fast), printf \(reference)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testStripMatchesPythonIsSpace() {
        XCTAssertEqual(PythonText.strip(" \t\n a b \u{1C}\u{1F}\u{A0}\u{3000}"), "a b")
        XCTAssertEqual(PythonText.strip("\u{200B}x\u{200B}"), "\u{200B}x\u{200B}")  // ZWSP is not whitespace in Python
        XCTAssertEqual(PythonText.strip("   "), "")
        XCTAssertEqual(PythonText.strip("line one\nline two\n"), "line one\nline two")
        XCTAssertEqual(PythonText.strip("plain"), "plain")
        XCTAssertEqual(PythonText.strip("x\u{85}"), "x")
        XCTAssertEqual(PythonText.strip(""), "")
    }

    func testFormatClampsDropsAndOrders() {
        let a = ImageAnnotations(imageID: 1, fileName: "a.jpg", width: 640, height: 480,
                                 captions: ["  A dog.  ", "Two cats.\n"],
                                 boxes: [.init(category: "dog", x: -10, y: 0.24, w: 700, h: 480),
                                         .init(category: "cat", x: 10, y: 10, w: 0, h: 5),
                                         .init(category: "dining table", x: 64, y: 48, w: 320, h: 240)])
        let detail = SymbolicContextFormatter.format(a, kind: .captionsAndBoxes)
        XCTAssertEqual(detail.text, "A dog.\nTwo cats.\n\ndog: [0.0, 0.001, 1.0, 1.0]\ndining table: [0.1, 0.1, 0.6, 0.6]")
        XCTAssertEqual(detail.droppedBoxes, 1)
        XCTAssertEqual(SymbolicContextFormatter.format(a, kind: .captions).text, "A dog.\nTwo cats.")
        var noBoxes = a
        noBoxes.boxes = []
        XCTAssertEqual(SymbolicContextFormatter.format(noBoxes, kind: .captionsAndBoxes).text, "A dog.\nTwo cats.")
    }
}
