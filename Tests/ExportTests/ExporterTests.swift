@testable import Export
import ForgeCore
import Foundation
import GRDB
import Store
import XCTest

final class ExporterTests: XCTestCase {
    func testLLaVAExportHasOnlyOkSamplesInTypeThenIdOrder() throws {
        let f = try Fixture.standard()
        let n = try LLaVAExporter.export(database: f.db, to: f.path("all.json"), type: nil, format: .llava)
        XCTAssertEqual(n, 5)
        let parsed = try parseJSON(try f.read("all.json")) as! NSArray
        let expected: NSArray = [
            record("000000215677", Fixture.s1),   // conversation, sample 1
            record("000000000009", Fixture.s6),   // conversation, sample 6
            record("000000000025", Fixture.s10),  // conversation, sample 10
            record("000000000009", Fixture.s3),   // detail, sample 3
            record("000000000025", Fixture.s4),   // reasoning, sample 4
        ]
        XCTAssertEqual(parsed, expected)
    }

    func testLLaVALayoutIsPythonIndent2WithKeysInOrder() throws {
        let f = try Fixture.standard()
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("r.json"), type: "reasoning", format: .llava), 1)
        // What `json.dump(data, f, indent=2, ensure_ascii=False)` writes (plus a final newline):
        // \u escapes decoded, "\/" unescaped, non-ASCII kept as UTF-8.
        let expected = #"""
        [
          {
            "id": "000000000025",
            "image": "000000000025.jpg",
            "conversations": [
              {
                "from": "human",
                "value": "<image>\nWhy is the man smiling at the café?"
              },
              {
                "from": "gpt",
                "value": "Because his kite / flies 🪁."
              }
            ]
          }
        ]

        """#
        XCTAssertEqual(try f.read("r.json"), expected)
    }

    func testEscapingRoundTripsAndKeyOrderInEveryRecord() throws {
        let f = try Fixture.standard()
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("c.json"), type: "conversation", format: .llava), 3)
        let text = try f.read("c.json")
        // Quotes, backslash, tab and newline are escaped; non-ASCII is not.
        XCTAssertTrue(text.contains(#""value": "Yes — café weather, 東京 style.\nTab\there \\ back""#), text)
        XCTAssertTrue(text.contains(#""value": "Is it \"sunny\"?""#))
        XCTAssertFalse(text.contains("\\u"))
        // Every record: "id", then "image", then "conversations"; every turn: "from" then "value".
        let records = text.components(separatedBy: "\n  {\n").dropFirst()
        XCTAssertEqual(records.count, 3)
        for r in records {
            let id = r.range(of: "\"id\": ")!, image = r.range(of: "\"image\": ")!, conv = r.range(of: "\"conversations\": ")!
            XCTAssertTrue(id.lowerBound < image.lowerBound && image.lowerBound < conv.lowerBound, r)
            XCTAssertTrue(r.hasPrefix("    \"id\": "), r)
        }
        XCTAssertEqual(text.components(separatedBy: "\"from\": ").count - 1, 2 * (2 + 1 + 4))
        XCTAssertFalse(text.contains("\"value\": \"He is riding a bike.\",\n"))  // value is the last key
        let parsed = try parseJSON(text) as! NSArray
        XCTAssertEqual(parsed.map { ($0 as! NSDictionary)["id"] as! String }, ["000000215677", "000000000009", "000000000025"])
    }

    func testTypeFilterAndUnknownType() throws {
        let f = try Fixture.standard()
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("d.json"), type: "detail", format: .llava), 1)
        XCTAssertEqual(try parseJSON(try f.read("d.json")) as! NSArray, [record("000000000009", Fixture.s3)] as NSArray)
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("none.json"), type: "nope", format: .llava), 0)
        XCTAssertEqual(try f.read("none.json"), "[]\n")
        XCTAssertEqual((try parseJSON(try f.read("none.json")) as! NSArray).count, 0)
    }

    func testJSONLOneObjectPerLineWithType() throws {
        let f = try Fixture.standard()
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("all.jsonl"), type: nil, format: .jsonl), 5)
        let text = try f.read("all.jsonl")
        XCTAssertTrue(text.hasSuffix("}\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(lines.count, 5)
        let objects = try lines.map { try parseJSON(String($0)) as! NSDictionary }
        XCTAssertEqual(objects, [
            record("000000215677", Fixture.s1, type: "conversation"),
            record("000000000009", Fixture.s6, type: "conversation"),
            record("000000000025", Fixture.s10, type: "conversation"),
            record("000000000009", Fixture.s3, type: "detail"),
            record("000000000025", Fixture.s4, type: "reasoning"),
        ])
        XCTAssertEqual(String(lines[4]), #"{"id":"000000000025","image":"000000000025.jpg","conversations":[{"from":"human","value":"<image>\nWhy is the man smiling at the café?"},{"from":"gpt","value":"Because his kite / flies 🪁."}],"type":"reasoning"}"#)
        for line in lines {
            XCTAssertTrue(line.hasPrefix(#"{"id":""#))
            XCTAssertFalse(line.contains("\n"))
        }

        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("d.jsonl"), type: "detail", format: .jsonl), 1)
        let d = try parseJSON(try f.read("d.jsonl").trimmingCharacters(in: .newlines)) as! NSDictionary
        XCTAssertEqual(d["type"] as? String, "detail")
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("e.jsonl"), type: "nope", format: .jsonl), 0)
        XCTAssertEqual(try f.read("e.jsonl"), "")
    }

    func testReplacesExistingFileAtomicallyAndLeavesNoTempFile() throws {
        let f = try Fixture.standard()
        try "old contents".write(toFile: f.path("out.json"), atomically: false, encoding: .utf8)
        XCTAssertEqual(try LLaVAExporter.export(database: f.db, to: f.path("out.json"), type: nil, format: .llava), 5)
        XCTAssertEqual((try parseJSON(try f.read("out.json")) as! NSArray).count, 5)
        XCTAssertEqual(try f.files(), ["out.json"])
    }

    func testFailedExportKeepsOldFileAndRemovesTemp() throws {
        let f = try Fixture.standard()
        try "old contents".write(toFile: f.path("out.json"), atomically: false, encoding: .utf8)
        // An ok sample whose stored conversation is broken stops the export midway (after sample 1).
        try f.insert(id: 11, type: "conversation", image: 9, status: "ok", conversations: "[{\"from\": \"human\"", turns: 1, prompt: 1, completion: 1)
        XCTAssertThrowsError(try LLaVAExporter.export(database: f.db, to: f.path("out.json"), type: nil, format: .llava)) { e in
            let fe = e as? ForgeError
            XCTAssertEqual(fe?.kind, .badInput)
            XCTAssertTrue("\(e)".contains("sample 11"), "\(e)")
        }
        XCTAssertEqual(try f.read("out.json"), "old contents")
        XCTAssertEqual(try f.files(), ["out.json"])
    }

    func testUnwritableDestinationIsAnIOErrorNamingThePath() throws {
        let f = try Fixture.standard()
        let target = f.path("missing-dir/out.json")
        XCTAssertThrowsError(try LLaVAExporter.export(database: f.db, to: target, type: nil, format: .llava)) { e in
            let fe = e as? ForgeError
            XCTAssertEqual(fe?.kind, .io)
            XCTAssertEqual(fe?.file, target)
        }
        // A directory in the way of the destination: rename fails, nothing is left behind.
        try FileManager.default.createDirectory(atPath: f.path("taken/sub"), withIntermediateDirectories: true)
        XCTAssertThrowsError(try LLaVAExporter.export(database: f.db, to: f.path("taken"), type: nil, format: .jsonl)) { e in
            XCTAssertEqual((e as? ForgeError)?.kind, .io)
            XCTAssertEqual((e as? ForgeError)?.file, f.path("taken"))
        }
        XCTAssertEqual(try f.files(), ["taken"])
    }

    func testMissingImageRowIsAClearError() throws {
        let f = try Fixture.standard()
        try f.insert(id: 11, type: "detail", image: 4242, status: "ok", conversations: Fixture.stored(Fixture.s3), turns: 1, prompt: 1, completion: 1)
        XCTAssertThrowsError(try LLaVAExporter.export(database: f.db, to: f.path("x.json"), type: "detail", format: .llava)) { e in
            XCTAssertTrue("\(e)".contains("4242"), "\(e)")
        }
        XCTAssertEqual(try f.files(), [])
    }

    func testReleaseLayoutNamesAndCounts() throws {
        let f = try Fixture.standard()
        let out = f.path("release")
        let files = try LLaVAExporter.exportRelease(database: f.db, to: out)
        XCTAssertEqual(files.map(\.name), ["all", "conversation", "detail", "reasoning"])
        XCTAssertEqual(files.map { ($0.path as NSString).lastPathComponent },
                       ["llava_instruct_5.json", "conversation_3.json", "detail_1.json", "complex_reasoning_1.json"])
        XCTAssertEqual(files.map(\.count), [5, 3, 1, 1])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(),
                       ["complex_reasoning_1.json", "conversation_3.json", "detail_1.json", "llava_instruct_5.json"])
        for file in files {
            XCTAssertEqual((try parseJSON(try String(contentsOfFile: file.path, encoding: .utf8)) as! NSArray).count, file.count)
        }
        let reasoning = try parseJSON(try String(contentsOfFile: out + "/complex_reasoning_1.json", encoding: .utf8)) as! NSArray
        XCTAssertEqual(reasoning, [record("000000000025", Fixture.s4)] as NSArray)
        // The combined file is exactly the single-file export of all types.
        _ = try LLaVAExporter.export(database: f.db, to: f.path("all.json"), type: nil, format: .llava)
        XCTAssertEqual(try String(contentsOfFile: out + "/llava_instruct_5.json", encoding: .utf8), try f.read("all.json"))
    }

    func testReleaseThousandsRuleAndCustomTypeNames() throws {
        let f = try Fixture.standard()
        try f.db.write { db in
            for k in 0..<1000 {
                let id = 100 + k
                try db.execute(sql: """
                    INSERT INTO requests(id, cache_key, image_id, type, model, context, body_json, status) VALUES (?, ?, 9, 'my qa/v2', 'm', 'c', '{}', 'done')
                    """, arguments: [id, "bulk-\(id)"])
                try db.execute(sql: "INSERT INTO samples(id, request_id, image_id, type, status, conversations_json, turns) VALUES (?, ?, 9, 'my qa/v2', 'ok', ?, 1)",
                               arguments: [id, id, Fixture.stored(Fixture.s6)])
            }
        }
        let files = try LLaVAExporter.exportRelease(database: f.db, to: f.path("rel"))
        XCTAssertEqual(files.map { ($0.path as NSString).lastPathComponent },
                       ["llava_instruct_1k.json", "conversation_3.json", "detail_1.json", "my_qa_v2_1k.json", "complex_reasoning_1.json"])
        XCTAssertEqual(files.map(\.count), [1005, 3, 1, 1000, 1])
        XCTAssertEqual(files[3].name, "my qa/v2")

        XCTAssertEqual(LLaVAExporter.countLabel(0), "0")
        XCTAssertEqual(LLaVAExporter.countLabel(999), "999")
        XCTAssertEqual(LLaVAExporter.countLabel(1000), "1k")
        XCTAssertEqual(LLaVAExporter.countLabel(1500), "1k")
        XCTAssertEqual(LLaVAExporter.countLabel(57_999), "57k")
        XCTAssertEqual(LLaVAExporter.countLabel(158_000), "158k")
        XCTAssertEqual(LLaVAExporter.releaseStem(forType: "reasoning"), "complex_reasoning")
        XCTAssertEqual(LLaVAExporter.releaseStem(forType: "conversation"), "conversation")
    }

    func testReleaseRefusesTypesThatShareAFileName() throws {
        let f = try Fixture.standard()
        try f.insert(id: 11, type: "complex_reasoning", image: 9, status: "ok", conversations: Fixture.stored(Fixture.s3), turns: 1, prompt: 1, completion: 1)
        XCTAssertThrowsError(try LLaVAExporter.exportRelease(database: f.db, to: f.path("rel"))) { e in
            XCTAssertTrue("\(e)".contains("complex_reasoning"), "\(e)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: f.path("rel")), [])
    }

    func testSampleIDIsTheBaseNameWithoutExtension() {
        XCTAssertEqual(LLaVAExporter.sampleID(fileName: "000000215677.jpg"), "000000215677")
        XCTAssertEqual(LLaVAExporter.sampleID(fileName: "train2017/000000215677.jpg"), "000000215677")
        XCTAssertEqual(LLaVAExporter.sampleID(fileName: "noext"), "noext")
    }

    func testOrderedJSONParsesAndReemits() throws {
        let v = try JSONParser.parse(#" {"b": [1, -2.5e3, true, false, null, {}], "a": "x\u00e9\ud83d\ude00\"\\\/\b\f\n\r\t\u0001"} "#, options: .export)
        XCTAssertEqual(v, .object([
            "b": .array([.integer(1), .number(try XCTUnwrap(JSONNumber(text: "-2.5e3"))), .bool(true), .bool(false), .null, .object([:])]),
            "a": .string("xé😀\"\\/\u{08}\u{0C}\n\r\t\u{01}"),
        ]))
        var compact = ""
        v.appendCompact(to: &compact)
        XCTAssertEqual(compact, #"{"b":[1,-2.5e3,true,false,null,{}],"a":"xé😀\"\\/\b\f\n\r\t\u0001"}"#)
        XCTAssertEqual(try JSONParser.parse(compact, options: .export), v)
        XCTAssertEqual(JSONValue.array([]).prettyText(), "[]")
        for bad in ["", "[", "[1,]", "{\"a\" 1}", "\"abc", "tru", "01x", "[1] 2", "\"\\x\""] {
            XCTAssertThrowsError(try JSONParser.parse(bad, options: .export), bad)
        }
        // Pretty output agrees with Foundation on what it means.
        let pretty = v.prettyText()
        let back = try parseJSON(pretty) as! NSDictionary
        XCTAssertEqual(back["a"] as? String, "xé😀\"\\/\u{08}\u{0C}\n\r\t\u{01}")
    }
}
