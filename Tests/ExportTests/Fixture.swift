import Foundation
import GRDB
import Store
import XCTest

/// A small database with known contents, in a fresh temporary folder.
///
/// images: 215677, 9, 25 (+ 2 captions, 1 category, 3 boxes)
/// samples (id: type status — request tokens prompt/completion):
///  1 conversation ok (2 pairs, non-ASCII, quotes, tab, backslash)    100/50
///  2 conversation parse_failed "no_question: …"                     110/60
///  3 detail       ok (1 pair)                                        80/40
///  4 reasoning    ok (1 pair, stored with \u escapes and "\/")      120/70
///  5 conversation truncated "finish_reason=length (…)"               90/200
///  6 conversation ok (1 pair)                                       100/30
///  8 conversation parse_failed "no_question: …"                      70/20
///  9 detail       parse_failed "empty_response: …"                   60/10
/// 10 conversation ok (4 pairs)                                      130/90
/// request 7: conversation, failed, no tokens, no sample.
final class Fixture {
    let dir: String
    let db: ForgeDatabase

    init() throws {
        dir = NSTemporaryDirectory() + "export-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        db = try ForgeDatabase(path: dir + "/forge.db")
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func path(_ name: String) -> String { dir + "/" + name }

    static let contextS1 = "A man is riding a bike down the street.\nA person on a bicycle.\n\nperson: [0.1, 0.2, 0.35, 0.9]\nbicycle: [0.12, 0.5, 0.4, 0.95]"

    static let s1: [[String: String]] = [
        ["from": "human", "value": "<image>\nWhat is the man riding?"],
        ["from": "gpt", "value": "He is riding a bike."],
        ["from": "human", "value": "Is it \"sunny\"?"],
        ["from": "gpt", "value": "Yes — café weather, 東京 style.\nTab\there \\ back"],
    ]
    static let s3: [[String: String]] = [
        ["from": "human", "value": "Describe the image.\n<image>"],
        ["from": "gpt", "value": "A red bus on a street."],
    ]
    /// As stored for sample 4 (escaped on purpose): decodes to `s4`.
    static let s4Stored = #"[{"from":"human","value":"<image>\nWhy is the man smiling at the caf\u00e9?"},{"from":"gpt","value":"Because his kite \/ flies \ud83e\ude81."}]"#
    static let s4: [[String: String]] = [
        ["from": "human", "value": "<image>\nWhy is the man smiling at the café?"],
        ["from": "gpt", "value": "Because his kite / flies 🪁."],
    ]
    static let s6: [[String: String]] = [
        ["from": "human", "value": "How many dogs?\n<image>"],
        ["from": "gpt", "value": "Two."],
    ]
    static let s10: [[String: String]] = [
        ["from": "human", "value": "<image>\nQ one?"], ["from": "gpt", "value": "a b c"],
        ["from": "human", "value": "Q two?"], ["from": "gpt", "value": "d e"],
        ["from": "human", "value": "Q three?"], ["from": "gpt", "value": "f"],
        ["from": "human", "value": "Q four?"], ["from": "gpt", "value": "g h i j"],
    ]

    /// Compact, sorted keys: how `Generator` stores turns.
    static func stored(_ turns: [[String: String]]) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(turns), as: UTF8.self)
    }

    func insertImage(_ id: Int, _ fileName: String) throws {
        try db.write { try $0.execute(sql: "INSERT INTO images(id, file_name, width, height) VALUES (?, ?, 640, 480)", arguments: [id, fileName]) }
    }

    /// One request (+ its sample when `status` is given).
    func insert(id: Int, type: String, image: Int, requestStatus: String = "done", status: String?, reason: String? = nil,
                conversations: String? = nil, turns: Int = 0, context: String = "ctx", response: String? = "resp",
                prompt: Int?, completion: Int?, finish: String? = "stop", model: String = "m1") throws {
        try db.write { db in
            try db.execute(sql: """
                INSERT INTO requests(id, cache_key, image_id, type, model, context, body_json, status, response_text,
                                     finish_reason, prompt_tokens, completion_tokens)
                VALUES (?, ?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?)
                """, arguments: [id, "key-\(id)", image, type, model, context, requestStatus, response, finish, prompt, completion])
            if let status {
                try db.execute(sql: """
                    INSERT INTO samples(id, request_id, image_id, type, status, reason, conversations_json, turns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [id, id, image, type, status, reason, conversations, turns])
            }
        }
    }

    /// The standard small data set described above.
    static func standard() throws -> Fixture {
        let f = try Fixture()
        try f.insertImage(215677, "000000215677.jpg")
        try f.insertImage(9, "000000000009.jpg")
        try f.insertImage(25, "000000000025.jpg")
        try f.db.write { db in
            try AnnotationStore.upsert(captions: [StoredCaption(id: 1, imageID: 215677, seq: 0, text: "A man riding a bike."),
                                                  StoredCaption(id: 2, imageID: 9, seq: 1, text: "Dogs.")], db: db)
            try db.execute(sql: "INSERT INTO categories(id, name) VALUES (1, 'person')")
            try AnnotationStore.upsert(boxes: [StoredBox(id: 1, imageID: 215677, categoryID: 1, seq: 0, x: 1, y: 2, w: 3, h: 4),
                                               StoredBox(id: 2, imageID: 215677, categoryID: 1, seq: 1, x: 1, y: 2, w: 3, h: 4),
                                               StoredBox(id: 3, imageID: 9, categoryID: 1, seq: 2, x: 1, y: 2, w: 3, h: 4)], db: db)
        }
        try f.insert(id: 1, type: "conversation", image: 215677, status: "ok", conversations: stored(s1), turns: 2,
                     context: contextS1, response: "Question:\nWhat is the man riding?\n===\nAnswer:\nHe is riding a bike.", prompt: 100, completion: 50)
        try f.insert(id: 2, type: "conversation", image: 9, status: "parse_failed",
                     reason: "no_question: no \"Question:\" label in the response", context: "Two dogs on a couch.",
                     response: "garbage text without labels", prompt: 110, completion: 60)
        try f.insert(id: 3, type: "detail", image: 9, status: "ok", conversations: stored(s3), turns: 1, prompt: 80, completion: 40)
        try f.insert(id: 4, type: "reasoning", image: 25, status: "ok", conversations: s4Stored, turns: 1, prompt: 120, completion: 70)
        try f.insert(id: 5, type: "conversation", image: 25, status: "truncated",
                     reason: "finish_reason=length (the response hit max_tokens)", prompt: 90, completion: 200, finish: "length")
        try f.insert(id: 6, type: "conversation", image: 9, status: "ok", conversations: stored(s6), turns: 1, prompt: 100, completion: 30)
        try f.insert(id: 7, type: "conversation", image: 215677, requestStatus: "failed", status: nil, response: nil,
                     prompt: nil, completion: nil, finish: nil)
        try f.insert(id: 8, type: "conversation", image: 25, status: "parse_failed", reason: "no_question: nothing usable",
                     prompt: 70, completion: 20)
        try f.insert(id: 9, type: "detail", image: 215677, status: "parse_failed", reason: "empty_response: the response is empty",
                     response: "", prompt: 60, completion: 10)
        try f.insert(id: 10, type: "conversation", image: 25, status: "ok", conversations: stored(s10), turns: 4, prompt: 130, completion: 90)
        return f
    }

    func read(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }

    func files() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix("forge.db") }.sorted()
    }
}

/// `{"id", "image", "conversations"}` as Foundation objects, for comparing parsed exports.
func record(_ id: String, _ turns: [[String: String]], type: String? = nil) -> NSDictionary {
    var d: [String: Any] = ["id": id, "image": id + ".jpg", "conversations": turns]
    if let type { d["type"] = type }
    return d as NSDictionary
}

func parseJSON(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
}
