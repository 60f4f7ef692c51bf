import XCTest
import ForgeCore
import Imaging
import Inference
import Tokenizers
@testable import Serving

/// `ChatCompletionRequest.parse`: every field OpenAI clients send, and each kind of bad input as
/// a 400 that names the field.
final class RequestParsingTests: XCTestCase {
    let limits = ChatCompletionRequest.Limits(maxTokens: 100)

    func parse(_ json: String) throws -> ChatCompletionRequest { try ChatCompletionRequest.parse(Array(json.utf8), limits: limits) }

    func assertRejected(_ json: String, param: String?, code: String? = nil, contains: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try parse(json)
            XCTFail("accepted: \(json.prefix(120))", file: file, line: line)
        } catch let e as APIError {
            XCTAssertEqual(e.status, 400, e.description, file: file, line: line)
            XCTAssertEqual(e.param, param, e.description, file: file, line: line)
            if let code { XCTAssertEqual(e.code, code, e.description, file: file, line: line) }
            if let contains { XCTAssertTrue(e.message.contains(contains), e.message, file: file, line: line) }
            // The body is OpenAI's error shape.
            let body = try! JSONSerialization.jsonObject(with: Data(e.body.utf8)) as! [String: Any]
            let error = body["error"] as! [String: Any]
            XCTAssertEqual(error["message"] as? String, e.message, file: file, line: line)
            XCTAssertEqual(error["type"] as? String, "invalid_request_error", file: file, line: line)
            XCTAssertEqual(error["param"] as? String, param, file: file, line: line)
            XCTAssertTrue(error.keys.contains("code"), file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testAFullRequest() throws {
        let r = try parse("""
            {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
              {"role": "assistant", "content": null}, {"role": "developer", "content": "x"}],
             "temperature": 0.5, "top_p": 0.9, "max_tokens": 40, "max_completion_tokens": 30, "stop": ["\\n\\n", "END"],
             "seed": 7, "n": 1, "stream": true, "stream_options": {"include_usage": true}, "top_k": 5,
             "presence_penalty": 0, "user": "u", "some_future_field": {"any": [1, 2]}}
            """)
        XCTAssertEqual(r.model, "m")
        XCTAssertEqual(r.turns.map(\.role), [.system, .user, .assistant, .system])
        XCTAssertEqual(r.turns[1].parts, [.text("Hi"), .text("there")])
        XCTAssertEqual(r.turns[2].parts, [.text("")])
        XCTAssertEqual(r.temperature, 0.5)
        XCTAssertEqual(r.topP, 0.9)
        XCTAssertEqual(r.maxTokens, 30, "the smaller of max_tokens and max_completion_tokens")
        XCTAssertEqual(r.stop, ["\n\n", "END"])
        XCTAssertEqual(r.seed, 7)
        XCTAssertTrue(r.stream)
        XCTAssertTrue(r.includeUsage)
        XCTAssertEqual(r.topK, 5)
        XCTAssertEqual(r.sampling.seed, 7)
        XCTAssertEqual(r.sampling.temperature, 0.5)
        XCTAssertEqual(r.responseFormat, .text)
    }

    func testDefaultsAndStopAsAString() throws {
        let r = try parse(#"{"messages": [{"role": "user", "content": "Hi"}], "stop": "@@"}"#)
        XCTAssertNil(r.model)
        XCTAssertEqual(r.temperature, 1)
        XCTAssertEqual(r.topP, 1)
        XCTAssertNil(r.maxTokens)
        XCTAssertFalse(r.stream)
        XCTAssertEqual(r.stop, ["@@"])
        XCTAssertNil(r.seed)
    }

    func testResponseFormats() throws {
        XCTAssertEqual(try parse(#"{"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_object"}}"#).responseFormat, .jsonObject)
        let schema = try parse("""
            {"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_schema",
             "json_schema": {"name": "qa", "strict": true, "schema": {"type": "object", "properties": {"q": {"type": "string"}, "a": {"type": "string"}}}}}}
            """).responseFormat
        // The schema keeps its key order (the order the model is to write the properties in).
        XCTAssertEqual(schema, .jsonSchema(name: "qa", schema: #"{"type":"object","properties":{"q":{"type":"string"},"a":{"type":"string"}}}"#, strict: true))
        assertRejected(#"{"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "xml"}}"#, param: "response_format.type")
        assertRejected(#"{"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_schema"}}"#, param: "response_format.json_schema")
        assertRejected(#"{"messages": [{"role": "user", "content": "Hi"}], "response_format": "json"}"#, param: "response_format")
    }

    func testImagesFromDataURLs() throws {
        let url = try ServingFixtures.dataURL(ServingFixtures.photo)
        let r = try parse(chatBody([["role": "user", "content": [["type": "image_url", "image_url": ["url": url]], ["type": "text", "text": "What?"]]]]))
        guard case .image(let image) = r.turns[0].parts[0] else { return XCTFail("no image part") }
        XCTAssertEqual(image, try ImageDecoder.decode(path: ServingFixtures.photo))
        XCTAssertEqual(r.turns[0].parts[1], .text("What?"))
    }

    func testBadInputNamesTheField() throws {
        let user = #"[{"role": "user", "content": "Hi"}]"#
        assertRejected("{not json", param: nil, code: "invalid_json", contains: "not valid JSON")
        assertRejected("[1, 2]", param: nil, contains: "JSON object")
        assertRejected("{}", param: "messages")
        assertRejected(#"{"messages": "hello"}"#, param: "messages", contains: "must be an array")
        assertRejected(#"{"messages": []}"#, param: "messages", contains: "empty")
        assertRejected(#"{"messages": [42]}"#, param: "messages[0]")
        assertRejected(#"{"messages": [{"content": "Hi"}]}"#, param: "messages[0].role")
        assertRejected(#"{"messages": [{"role": "wizard", "content": "Hi"}]}"#, param: "messages[0].role")
        assertRejected(#"{"messages": [{"role": "tool", "content": "Hi"}]}"#, param: "messages[0].role")
        assertRejected(#"{"messages": [{"role": "user", "content": 5}]}"#, param: "messages[0].content")
        assertRejected(#"{"messages": [{"role": "user"}]}"#, param: "messages[0].content")
        assertRejected(#"{"messages": [{"role": "user", "content": [{"type": "audio"}]}]}"#, param: "messages[0].content[0].type")
        assertRejected(#"{"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}"#, param: "messages[0].content[0].text")
        assertRejected(#"{"messages": \#(user), "temperature": "hot"}"#, param: "temperature", contains: "must be a number, got string")
        assertRejected(#"{"messages": \#(user), "temperature": 3}"#, param: "temperature")
        assertRejected(#"{"messages": \#(user), "top_p": 0}"#, param: "top_p")
        assertRejected(#"{"messages": \#(user), "stream": 1}"#, param: "stream", contains: "boolean")
        assertRejected(#"{"messages": \#(user), "stream_options": {"include_usage": "yes"}}"#, param: "stream_options.include_usage")
        assertRejected(#"{"messages": \#(user), "max_tokens": 1.5}"#, param: "max_tokens", contains: "integer")
        assertRejected(#"{"messages": \#(user), "max_tokens": 0}"#, param: "max_tokens")
        assertRejected(#"{"messages": \#(user), "max_tokens": 101}"#, param: "max_tokens", contains: "at most 100")
        assertRejected(#"{"messages": \#(user), "n": 2}"#, param: "n")
        assertRejected(#"{"messages": \#(user), "seed": "x"}"#, param: "seed")
        assertRejected(#"{"messages": \#(user), "stop": 5}"#, param: "stop")
        assertRejected(#"{"messages": \#(user), "stop": ["a", 5]}"#, param: "stop[1]")
        assertRejected(#"{"messages": \#(user), "model": 3}"#, param: "model")
        assertRejected(#"{"messages": \#(user), "logprobs": true}"#, param: "logprobs")
        assertRejected(#"{"messages": \#(user), "tools": [{"type": "function"}]}"#, param: "tools")
    }

    func testBadImagesNameTheirPart() throws {
        func body(_ url: String) -> String {
            chatBody([["role": "user", "content": [["type": "text", "text": "look"], ["type": "image_url", "image_url": ["url": url]]]]])
        }
        let param = "messages[0].content[1].image_url.url"
        assertRejected(body("https://example.com/cat.jpg"), param: param, code: "invalid_image_url", contains: "only data: URLs")
        assertRejected(body("data:image/png,rawbytes"), param: param, code: "invalid_image_url", contains: "base64")
        assertRejected(body("data:image/png;base64,@@@@"), param: param, code: "invalid_base64")
        assertRejected(body("data:image/png;base64," + Data("hello, not an image".utf8).base64EncodedString()), param: param, code: "invalid_image",
                       contains: "cannot be decoded")
        // A truncated JPEG: valid base64, broken bytes.
        let jpeg = try Data(contentsOf: URL(fileURLWithPath: ServingFixtures.photo))
        assertRejected(body("data:image/jpeg;base64," + jpeg.prefix(300).base64EncodedString()), param: param, code: "invalid_image")
        assertRejected(chatBody([["role": "user", "content": [["type": "image_url", "image_url": 7]]]]), param: "messages[0].content[0].image_url")
    }

    func testJSONParserEdgeCases() throws {
        let parsed = try JSONParser.parse(Array(#"{"a": "\u00e9\ud83d\ude00\n", "b": [true, null, -1.5e2, 12]}"#.utf8), options: .requestBody)
        XCTAssertEqual(parsed, .object(["a": .string("é😀\n"), "b": .array([.bool(true), .null, .number(try XCTUnwrap(JSONNumber(text: "-1.5e2"))), .integer(12)])]))
        XCTAssertEqual(parsed["b"]?[2]?.double, -150)
        XCTAssertEqual(parsed["b"]?[3]?.int, 12)
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "\"\\ud800\"", "01", "{\"a\": tru}", "1 2", String(repeating: "[", count: 100)] {
            XCTAssertThrowsError(try JSONParser.parse(Array(bad.utf8), options: .requestBody), bad)
        }
        XCTAssertThrowsError(try JSONParser.parse([0x22, 0xFF, 0x22], options: .requestBody), "invalid UTF-8")
    }
}
