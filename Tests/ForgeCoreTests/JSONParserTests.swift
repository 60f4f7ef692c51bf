import Foundation
import XCTest
@testable import ForgeCore

final class JSONParserTests: XCTestCase {
    func parse(_ text: String, _ options: JSONParseOptions = .strict) throws -> JSONValue { try JSONParser.parse(text, options: options) }

    func syntaxError(_ text: String, _ options: JSONParseOptions = .strict, file: StaticString = #filePath, line: UInt = #line) -> JSONSyntaxError? {
        do {
            _ = try JSONParser.parse(text, options: options)
            XCTFail("parsed: \(text)", file: file, line: line)
        } catch let e as JSONSyntaxError {
            return e
        } catch {
            XCTFail("not a JSONSyntaxError: \(error)", file: file, line: line)
        }
        return nil
    }

    func testDocumentsParseWithOrderAndKinds() throws {
        let v = try parse(" {\"b\": [1, -2.5e3, true, false, null, {}, []], \"a\": \"x\"}\n")
        XCTAssertEqual(v.object?.keys, ["b", "a"])
        let b = try XCTUnwrap(v["b"]?.array)
        XCTAssertEqual(b.count, 7)
        XCTAssertEqual(b[0], .integer(1))
        XCTAssertEqual(b[1].number?.text, "-2.5e3")
        XCTAssertEqual(b[1].double, -2500)
        XCTAssertEqual(b[2], .bool(true))
        XCTAssertEqual(b[3], .bool(false))
        XCTAssertEqual(b[4], .null)
        XCTAssertEqual(b[5], .object([:]))
        XCTAssertEqual(b[6], .array([]))
        XCTAssertEqual(v["a"]?.string, "x")
        for scalar in ["0", "-1", "\"\"", "true", "null", " [ ] "] { XCTAssertNoThrow(try parse(scalar), scalar) }
    }

    func testBooleansAreNotNumbers() throws {
        let v = try parse("[true, 1, 0, false]")
        XCTAssertNil(v[0]?.int)
        XCTAssertNil(v[0]?.double)
        XCTAssertNil(v[1]?.bool)
        XCTAssertNotEqual(v[0], v[1])
        XCTAssertNotEqual(v[2], v[3])
        XCTAssertEqual(v[0]?.typeName, "boolean")
        XCTAssertEqual(v[1]?.typeName, "integer")
    }

    /// Everything RFC 8259 forbids is an error, including what lenient parsers accept.
    func testRFC8259Rejections() {
        let bad = [
            "", "   ", "[1,]", "{\"a\":1,}", "[,1]", "{,}", "01", "-01", "00", "1.", ".5", "+1", "-", "1e", "1e+", "1.e3", "0x10",
            "NaN", "Infinity", "-Infinity", "{a:1}", "{'a':1}", "['a']", "\"abc", "\"a\tb\"", "\"a\nb\"", "\"\\x\"", "\"\\u12\"",
            "\"\\u12G4\"", "tru", "nul", "falsey", "[1] 2", "{\"a\" 1}", "{\"a\":}", "[1 2]", "\u{FEFF}[]", "/* c */ 1", "[1]//",
        ]
        for text in bad { _ = syntaxError(text) }
    }

    func testNumbersKeepTheirText() throws {
        let big = try XCTUnwrap(try parse("18446744073709551617").number)  // 2^64 + 1
        XCTAssertEqual(big.text, "18446744073709551617")
        XCTAssertNil(big.int)
        XCTAssertTrue(big.isIntegerLiteral)
        XCTAssertEqual(big.double, 18446744073709551616.0)

        XCTAssertEqual(try parse("9007199254740993").int, 9_007_199_254_740_993)  // not representable as Double
        XCTAssertEqual(try parse("9223372036854775807").int, Int.max)
        XCTAssertEqual(try parse("-9223372036854775808").int, Int.min)
        XCTAssertNil(try parse("9223372036854775808").int)

        let negativeZero = try XCTUnwrap(try parse("-0").number)
        XCTAssertEqual(negativeZero.text, "-0")
        XCTAssertEqual(negativeZero.int, 0)
        XCTAssertEqual(negativeZero.double.sign, .minus)
        XCTAssertNotEqual(try parse("-0"), try parse("0"))

        let one = try parse("1"), onePointZero = try parse("1.0")
        XCTAssertNotEqual(one, onePointZero)
        XCTAssertEqual(onePointZero.number?.text, "1.0")
        XCTAssertNil(onePointZero.int)
        XCTAssertEqual(onePointZero.wholeNumber, 1)
        XCTAssertEqual(try parse("1e3").wholeNumber, 1000)
        XCTAssertNil(try parse("1.5").wholeNumber)
        XCTAssertEqual(try parse("1.0").typeName, "number")

        for (text, value) in [("1E+2", 100.0), ("1e-2", 0.01), ("-2.5E-3", -0.0025), ("0.1", 0.1), ("1e-400", 0),
                              ("1.7976931348623157e308", .greatestFiniteMagnitude), ("2.2250738585072014e-308", 2.2250738585072014e-308),
                              ("0.30000000000000004", 0.30000000000000004)] {
            XCTAssertEqual(try parse(text).double, value, text)
            XCTAssertEqual(try parse(text).number?.text, text)
        }
        XCTAssertEqual(syntaxError("[1e999]")?.message, "number 1e999 is out of range")
        XCTAssertEqual(syntaxError("-1.8e308")?.offset, 0)
        XCTAssertEqual(JSONNumber(text: "2.50")?.text, "2.50")
        XCTAssertNil(JSONNumber(text: "2.50 "))
        XCTAssertNil(JSONNumber(text: "02"))
    }

    func testEscapesAndSurrogates() throws {
        XCTAssertEqual(try parse(#""\"\\\/\b\f\n\r\t""#).string, "\"\\/\u{08}\u{0C}\n\r\t")
        XCTAssertEqual(try parse(#""x\u00e9\u00E9\u0000\ud83d\ude00y""#).string, "xéé\u{0}😀y")
        XCTAssertEqual(try parse("\"é😀 raw UTF-8\"").string, "é😀 raw UTF-8")
        XCTAssertEqual(try parse("[\"\", \"\\/\"]"), .array([.string(""), .string("/")]))
        // Lone surrogates: an error by default, U+FFFD on request (the next escape read on its own).
        for lone in [#""\ud800""#, #""\udc00""#, #""\ud800x""#, #""\ud800\u0041""#, #""\ude00\ud83d""#] {
            XCTAssertTrue(syntaxError(lone)?.message.contains("unpaired surrogate") ?? false, lone)
        }
        let replace = JSONParseOptions(loneSurrogates: .replace)
        XCTAssertEqual(try parse(#""\ud800""#, replace).string, "\u{FFFD}")
        XCTAssertEqual(try parse(#""\ud800\u0041""#, replace).string, "\u{FFFD}A")
        XCTAssertEqual(try parse(#""\ud800\ud83d\ude00""#, replace).string, "\u{FFFD}😀")
        XCTAssertEqual(try parse(#""a\udc00b""#, replace).string, "a\u{FFFD}b")
        // Invalid UTF-8 is never repaired.
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0x61, 0xFF, 0x22])) { error in
            XCTAssertEqual((error as? JSONSyntaxError)?.message, "invalid UTF-8 in a string")
            XCTAssertEqual((error as? JSONSyntaxError)?.offset, 2)
        }
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0x5C, 0x6E, 0xC3, 0x22]))  // truncated sequence after an escape
    }

    func testDepthLimit() throws {
        let ok = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        XCTAssertNoThrow(try parse(ok))
        let deep = String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        XCTAssertEqual(syntaxError(deep)?.message, "nested deeper than 128 levels")
        XCTAssertEqual(syntaxError(deep)?.offset, 128)
        XCTAssertNotNil(syntaxError(String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65), JSONParseOptions(maximumDepth: 64)))
        // Hostile input: a million open brackets is an error, not a stack overflow.
        XCTAssertNotNil(syntaxError(String(repeating: "[", count: 1_000_000)))
    }

    func testDuplicateKeys() throws {
        let e = syntaxError(#"{"a": 1, "b": 2, "a": 3}"#)
        XCTAssertEqual(e?.message, #"duplicate key "a""#)
        XCTAssertEqual(e?.offset, 17)
        // Past the linear scan (16 members) the check uses a set.
        let many = (0..<40).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        XCTAssertNoThrow(try parse("{\(many)}"))
        XCTAssertEqual(syntaxError("{\(many), \"k3\": 0}")?.message, #"duplicate key "k3""#)
        XCTAssertEqual(syntaxError("{\(many), \"k39\": 0}")?.message, #"duplicate key "k39""#)
        // keepAll: every member in order, lookups see the last.
        let kept = try parse(#"{"a": 1, "b": 2, "a": 3}"#, JSONParseOptions(duplicateKeys: .keepAll))
        XCTAssertEqual(kept.object?.keys, ["a", "b", "a"])
        XCTAssertEqual(kept["a"], .integer(3))
        XCTAssertEqual(kept.object?.dictionary["a"], .integer(3))
        XCTAssertEqual(kept.compactText, #"{"a":1,"b":2,"a":3}"#)
    }

    func testErrorPositions() {
        let e = syntaxError("{\n  \"a\": [1, 2,,]\n}")
        XCTAssertEqual(e?.offset, 15)
        XCTAssertEqual(e?.line, 2)
        XCTAssertEqual(e?.column, 14)
        XCTAssertEqual(e?.description, "unexpected character ',', expected a value at byte 15 (line 2, column 14)")
        XCTAssertEqual(syntaxError("[1,\n]")?.message, "trailing comma in an array")
        XCTAssertEqual(syntaxError("[1,\n]")?.line, 2)
        XCTAssertEqual(syntaxError(#"{"a":1,}"#)?.message, "trailing comma in an object")
        XCTAssertEqual(syntaxError(#"{"a":1,}"#)?.offset, 7)
        XCTAssertEqual(syntaxError("[01]")?.message, "invalid number: leading zero")
        XCTAssertEqual(syntaxError("[01]")?.offset, 1)
        XCTAssertEqual(syntaxError(#"["abc"#)?.message, "unterminated string")
        XCTAssertEqual(syntaxError(#"["abc"#)?.offset, 1)
        XCTAssertEqual(syntaxError("[1] x")?.offset, 4)
        XCTAssertEqual(syntaxError("[tru]")?.message, "invalid literal, expected true")
        XCTAssertEqual(syntaxError("\"a\u{1}\"")?.message, "control character byte 0x1 in a string (escape it)")
        XCTAssertEqual(syntaxError(#""\q""#)?.offset, 1)
        let forge = syntaxError("[")?.forgeError(file: "x.json")
        XCTAssertEqual(forge?.description, "x.json: byte 1 (line 1, column 2): bad input: invalid JSON: unexpected end of JSON, expected a value")
    }

    func testWritingRoundTrips() throws {
        let text = #"{"b":[1,-2.5e3,true,false,null,{},[]],"a":"x\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t\u0001","n":{"k":1.50}}"#
        let v = try parse(text)
        XCTAssertEqual(v.compactText, #"{"b":[1,-2.5e3,true,false,null,{},[]],"a":"xé😀\"\\/\b\f\n\r\t\u0001","n":{"k":1.50}}"#)
        XCTAssertEqual(try parse(v.compactText), v)
        XCTAssertEqual(try parse(v.prettyText()), v)
        XCTAssertEqual(try parse(#"{"a": [1, {"b": []}], "c": {}}"#).prettyText(), "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {}\n}")
        // Pretty output means the same to Foundation.
        let back = try JSONSerialization.jsonObject(with: Data(v.prettyText().utf8)) as? NSDictionary
        XCTAssertEqual(back?["a"] as? String, "xé😀\"\\/\u{08}\u{0C}\n\r\t\u{01}")
    }

    func testLookupErrorsNameThePath() throws {
        let root = try parse(#"{"model": {"vocab": [1], "type": "BPE", "n": 2.0, "none": null}, "tokens": [{"id": "x"}]}"#).at(file: "t.json")
        XCTAssertEqual(try root["model"]["type"].string(), "BPE")
        XCTAssertEqual(try root["model"]["n"].wholeNumber(), 2)
        XCTAssertNil(try root["model"]["none"].stringIfPresent())
        XCTAssertNil(try root["model"]["absent"].intIfPresent())
        XCTAssertFalse(root["model"]["none"].exists)
        func message(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch { return "\(error)" }
        }
        XCTAssertEqual(message { _ = try root["model"]["vocab"].object() }, "t.json: model.vocab: bad input: expected an object, found array")
        XCTAssertEqual(message { _ = try root["model"]["n"].int() }, "t.json: model.n: bad input: expected an integer, found number")
        XCTAssertEqual(message { _ = try root["tokens"][0]["id"].int() }, "t.json: tokens[0].id: bad input: expected an integer, found string")
        XCTAssertEqual(message { _ = try root["tokens"][3]["id"].intIfPresent() }, nil)
        XCTAssertEqual(message { _ = try root["model"]["merges"].array() }, "t.json: model.merges: bad input: model.merges is missing, expected an array")
        XCTAssertEqual(try root["tokens"].elements().map(\.path), ["tokens[0]"])
    }

    /// The real tokenizer files agree with Foundation's parser on every string, number and count.
    func testTokenizerFixturesAgreeWithFoundation() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TokenizerTests/Fixtures")
        let folders = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).sorted()
        var checked = 0
        for folder in folders {
            let path = fixtures.appendingPathComponent(folder).appendingPathComponent("tokenizer.json").path
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let ours = try JSONParser.parse([UInt8](data))
            let foundation = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            try assertSame(ours, foundation, path: folder)
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 5)
    }

    func assertSame(_ ours: JSONValue, _ theirs: Any, path: String) throws {
        switch ours {
        case .null: XCTAssertTrue(theirs is NSNull, path)
        case .bool(let b):
            XCTAssertEqual((theirs as? NSNumber)?.boolValue, b, path)
        case .number(let n): XCTAssertEqual((theirs as? NSNumber)?.doubleValue, n.double, path)
        case .string(let s): XCTAssertEqual(theirs as? String, s, path)
        case .array(let items):
            let other = try XCTUnwrap(theirs as? [Any], path)
            XCTAssertEqual(items.count, other.count, path)
            for (i, item) in items.enumerated() where i < other.count { try assertSame(item, other[i], path: "\(path)[\(i)]") }
        case .object(let object):
            let other = try XCTUnwrap(theirs as? [String: Any], path)
            XCTAssertEqual(object.count, other.count, path)
            for (key, value) in object { try assertSame(value, try XCTUnwrap(other[key], "\(path).\(key)"), path: "\(path).\(key)") }
        }
    }
}
