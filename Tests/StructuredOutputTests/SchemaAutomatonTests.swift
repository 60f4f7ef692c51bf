import ForgeCore
import XCTest
@testable import Inference

/// Schema compilation (each supported keyword, each rejected one) and the byte automaton on
/// hand-written JSON: accepted documents, rejected ones, and where a prefix stops being valid.
final class SchemaAutomatonTests: XCTestCase {
    /// 256 one-byte tokens + EOS (id 256): masks and text acceptance over raw bytes.
    static let byteVocabulary = TokenVocabulary(tokenBytes: (0..<256).map { [UInt8($0)] } + [nil])
    static let eos = 256
    let compiler = JSONConstraintCompiler(vocabulary: byteVocabulary, maxWhitespaceRun: 2)

    func constraint(_ schema: String) throws -> TokenConstraint {
        try XCTUnwrap(compiler.makeConstraint(for: .jsonSchema(name: "t", schema: schema, strict: true), stopTokenIDs: [Self.eos]))
    }

    /// Whether `json` is a complete document of `schema`.
    func accepts(_ schema: String, _ json: String) throws -> Bool {
        let c = try constraint(schema)
        return c.accept(text: Array(json.utf8)) && c.canEnd
    }

    /// Whether `prefix` can still be completed.
    func acceptsPrefix(_ schema: String, _ prefix: String) throws -> Bool {
        try constraint(schema).accept(text: Array(prefix.utf8))
    }

    func assertRejected(_ schema: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try compiler.grammar(for: .jsonSchema(name: "t", schema: schema, strict: true)), file: file, line: line) { error in
            guard let e = error as? ForgeError else { return XCTFail("not a ForgeError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.kind, .badInput, file: file, line: line)
            for w in words { XCTAssertTrue(e.description.contains(w), "\(e.description) does not mention \(w)", file: file, line: line) }
        }
    }

    let person = """
        {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 2, "maxLength": 5},
            "age": {"type": "integer"},
            "nick": {"type": "string"},
            "ok": {"type": "boolean"}
        }, "required": ["name", "ok"], "additionalProperties": false}
        """

    func testObjectPropertiesInSchemaOrderRequiredAndOptional() throws {
        XCTAssertTrue(try accepts(person, #"{"name":"Ann","age":30,"nick":"a","ok":true}"#))
        XCTAssertTrue(try accepts(person, #"{"name":"Ann","ok":false}"#), "optional properties may be left out")
        XCTAssertTrue(try accepts(person, #"{ "name": "Ann", "ok": true }"#), "bounded whitespace")
        XCTAssertFalse(try accepts(person, #"{"ok":true,"name":"Ann"}"#), "schema order")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann"}"#), "a required property is missing")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann","ok":true,"x":1}"#), "no additional properties")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann","age":3.5,"ok":true}"#), "integer")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann","ok":true} "#), "nothing after the value")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann",   "ok":true}"#), "whitespace runs are bounded (2)")
        XCTAssertFalse(try accepts(person, #"{"name":"Ann","ok":true"#), "incomplete")
        XCTAssertTrue(try acceptsPrefix(person, #"{"name":"Ann","ok":tr"#))
        XCTAssertFalse(try acceptsPrefix(person, #"{"nam "#))
    }

    func testStringLengthsCountCharactersAndEscapes() throws {
        XCTAssertFalse(try accepts(person, #"{"name":"A","ok":true}"#), "minLength 2")
        XCTAssertTrue(try accepts(person, #"{"name":"Ünïcø","ok":true}"#), "5 characters, 9 bytes")
        XCTAssertFalse(try accepts(person, #"{"name":"Annabel","ok":true}"#), "maxLength 5")
        XCTAssertTrue(try acceptsPrefix(person, #"{"name":"Annab"#))
        XCTAssertFalse(try acceptsPrefix(person, #"{"name":"Annabe"#), "the sixth character is refused at once")
        XCTAssertTrue(try accepts(person, #"{"name":"a\"\n\u00e9","ok":true}"#), "escapes count as one character")
        XCTAssertFalse(try acceptsPrefix(person, "{\"name\":\"a\nb"), "raw control characters")
        XCTAssertFalse(try acceptsPrefix(person, #"{"name":"a\q"#), "unknown escape")
        XCTAssertFalse(try acceptsPrefix(person, #"{"name":"a\ud800"#), "surrogate escapes")
        XCTAssertFalse(try constraint(person).accept(text: Array(#"{"name":"a"#.utf8) + [0xC3, 0x28]), "invalid UTF-8")
        XCTAssertFalse(try constraint(person).accept(text: Array(#"{"name":"a"#.utf8) + [0xED, 0xA0, 0x80]), "UTF-8 surrogates")
    }

    func testArraysWithItemBounds() throws {
        let schema = #"{"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3}"#
        XCTAssertTrue(try accepts(schema, "[1]"))
        XCTAssertTrue(try accepts(schema, "[-0.5e+3, 12, 0]"))
        XCTAssertFalse(try accepts(schema, "[]"), "minItems")
        XCTAssertFalse(try accepts(schema, "[1,2,3,4]"), "maxItems")
        XCTAssertFalse(try acceptsPrefix(schema, "[1,2,3,"), "a fourth item is refused at the comma")
        XCTAssertFalse(try accepts(schema, "[01]"), "leading zero")
        XCTAssertFalse(try accepts(schema, "[1.]"))
        XCTAssertFalse(try accepts(schema, "[1,]"))
    }

    func testEnumConstBooleanNullAndTypeLists() throws {
        let schema = """
            {"type": "object", "properties": {
              "color": {"enum": ["red", "green", "greenish"]},
              "n": {"enum": [1, 12, null]},
              "v": {"const": "x"},
              "maybe": {"type": ["string", "null"]},
              "flag": {"type": "boolean"},
              "nothing": {"type": "null"}
            }, "required": ["color", "n", "v", "maybe", "flag", "nothing"], "additionalProperties": false}
            """
        XCTAssertTrue(try accepts(schema, #"{"color":"green","n":12,"v":"x","maybe":null,"flag":false,"nothing":null}"#))
        XCTAssertTrue(try accepts(schema, #"{"color":"greenish","n":1,"v":"x","maybe":"s","flag":true,"nothing":null}"#))
        XCTAssertTrue(try accepts(schema, #"{"color":"red","n":null,"v":"x","maybe":"","flag":true,"nothing":null}"#))
        XCTAssertFalse(try accepts(schema, #"{"color":"gree","n":1,"v":"x","maybe":null,"flag":true,"nothing":null}"#))
        XCTAssertFalse(try accepts(schema, #"{"color":"red","n":123,"v":"x","maybe":null,"flag":true,"nothing":null}"#))
        XCTAssertFalse(try accepts(schema, #"{"color":"red","n":1,"v":"y","maybe":null,"flag":true,"nothing":null}"#))
        XCTAssertFalse(try accepts(schema, #"{"color":"red","n":1,"v":"x","maybe":3,"flag":true,"nothing":null}"#))
    }

    func testAnyOfOneOfNestedObjectsAndRefs() throws {
        let schema = """
            {"$defs": {
               "point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"], "additionalProperties": false},
               "tree": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}, "required": ["v"], "additionalProperties": false}
             },
             "type": "object",
             "properties": {
               "shape": {"anyOf": [{"$ref": "#/$defs/point"},
                                   {"type": "object", "properties": {"x": {"type": "number"}, "r": {"type": "number"}}, "required": ["x", "r"], "additionalProperties": false}]},
               "id": {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "integer"}]},
               "tree": {"$ref": "#/definitions/tree"}
             },
             "definitions": {"tree": {"$ref": "#/$defs/tree"}},
             "required": ["shape", "id", "tree"], "additionalProperties": false}
            """
        XCTAssertTrue(try accepts(schema, #"{"shape":{"x":1,"y":2},"id":"abc","tree":{"v":1}}"#))
        XCTAssertTrue(try accepts(schema, #"{"shape":{"x":1,"r":2},"id":7,"tree":{"v":1,"kids":[{"v":2,"kids":[]},{"v":3}]}}"#))
        XCTAssertFalse(try accepts(schema, #"{"shape":{"x":1,"z":2},"id":7,"tree":{"v":1}}"#))
        XCTAssertFalse(try accepts(schema, #"{"shape":{"x":1,"y":2},"id":"abcd","tree":{"v":1}}"#))
        XCTAssertFalse(try accepts(schema, #"{"shape":{"x":1,"y":2},"id":1.5,"tree":{"v":1}}"#))
    }

    func testFreeFormObjectsAndJSONObjectMode() throws {
        let c = try XCTUnwrap(compiler.makeConstraint(for: .jsonObject, stopTokenIDs: [Self.eos]))
        XCTAssertTrue(c.accept(text: Array(#"{"a":[1,{"b":null},"x",true,-2.5E3],"c":{}}"#.utf8)))
        XCTAssertTrue(c.canEnd)
        XCTAssertTrue(c.isComplete)
        for bad in [#"[1]"#, #""s""#, #"{"a":}"#, #"{"a":1,}"#, #"{a:1}"#] {
            let d = try XCTUnwrap(compiler.makeConstraint(for: .jsonObject, stopTokenIDs: [Self.eos]))
            XCTAssertFalse(d.accept(text: Array(bad.utf8)) && d.canEnd, bad)
        }
        XCTAssertTrue(try accepts(#"{"type": "object"}"#, #"{"k":[{"z":"q"}]}"#))
        XCTAssertTrue(try accepts(#"{"type":"array"}"#, #"[1,"a",[]]"#))
    }

    func testUnsupportedKeywordsAreErrorsNamingTheKeywordAndPlace() {
        assertRejected(#"{"type": "string", "pattern": "^a"}"#, mentions: ["'pattern'", "#/pattern"])
        assertRejected(#"{"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}"#, mentions: ["'format'", "#/properties/d/format"])
        assertRejected(#"{"type": "integer", "minimum": 0}"#, mentions: ["'minimum'"])
        assertRejected(#"{"allOf": [{"type": "string"}]}"#, mentions: ["'allOf'"])
        assertRejected(#"{"type": "array", "items": {"type": "string"}, "uniqueItems": true}"#, mentions: ["'uniqueItems'"])
        assertRejected(#"{"type": "array", "prefixItems": []}"#, mentions: ["'prefixItems'"])
        assertRejected(#"{"type": "object", "patternProperties": {}}"#, mentions: ["'patternProperties'"])
        assertRejected(#"{"not": {}}"#, mentions: ["'not'"])
        assertRejected(#"{"type": "string", "minLength": 5, "maxLength": 2}"#, mentions: ["minLength 5 > maxLength 2"])
        assertRejected(#"{"type": "array", "minItems": 3, "maxItems": 1}"#, mentions: ["minItems"])
        assertRejected(#"{"type": "object", "properties": {}, "required": ["x"]}"#, mentions: ["'x'"])
        assertRejected(##"{"$ref": "#/$defs/missing"}"##, mentions: ["points to nothing"])
        assertRejected(#"{"$ref": "http://example.com/s.json"}"#, mentions: ["not supported"])
        assertRejected(#"{"type": "decimal"}"#, mentions: ["unknown type 'decimal'"])
        assertRejected(#"{"enum": []}"#, mentions: ["enum"])
        assertRejected(#"{"type": "string", "enum": [1, 2]}"#, mentions: ["no finite JSON value"])
        assertRejected(##"{"$defs": {"a": {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "required": ["a"]}}, "$ref": "#/$defs/a"}"##,
                       mentions: ["no finite JSON value"])
        assertRejected(#"{"type": "object", "properties": "#, mentions: ["invalid JSON"])
    }

    func testAnnotationsAreIgnored() throws {
        XCTAssertTrue(try accepts(#"{"title": "T", "description": "d", "$schema": "x", "type": "string", "default": "a", "examples": ["b"]}"#, #""hi""#))
    }

    func testMaskAllowsOnlyStopWhenCompleteAndStopNeverInside() throws {
        let c = try constraint(#"{"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"], "additionalProperties": false}"#)
        var mask = c.allowedMask()
        XCTAssertEqual(allowedIDs(mask), [9, 10, 13, 32, 123], "whitespace or {")
        XCTAssertTrue(c.accept(text: Array(#"{"a":tru"#.utf8)))
        mask = c.allowedMask()
        XCTAssertEqual(allowedIDs(mask), [101], "only e")
        c.accept(Int(UInt8(ascii: "e")))
        c.accept(Int(UInt8(ascii: "}")))
        XCTAssertTrue(c.isComplete)
        XCTAssertEqual(allowedIDs(c.allowedMask()), [Self.eos])
        // A token outside the mask breaks the constraint; from then on only EOS.
        let d = try constraint(#"{"type": "object"}"#)
        d.accept(Int(UInt8(ascii: "x")))
        XCTAssertTrue(d.isBroken)
        XCTAssertEqual(allowedIDs(d.allowedMask()), [Self.eos])
    }

    func allowedIDs(_ mask: [UInt64]) -> [Int] {
        (0..<(mask.count * 64)).filter { mask[$0 >> 6] & (1 << UInt64($0 & 63)) != 0 }
    }
}
