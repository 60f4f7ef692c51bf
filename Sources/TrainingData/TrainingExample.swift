import ForgeCore
import Foundation

/// One LLaVA turn as stored and exported: `{"from": "human"|"gpt", "value": …}`.
public struct ConversationTurn: Sendable, Equatable {
    public var from: String
    public var value: String
    public init(from: String, value: String) {
        self.from = from
        self.value = value
    }
}

/// One training record before tokenization: an optional image (resolved path) and its turns.
public struct TrainingExample: Sendable, Equatable {
    /// LLaVA's record id (the store's sample id for store data).
    public var id: String
    /// Sample type when known (store data).
    public var type: String?
    /// The image file, nil for a text-only sample.
    public var imagePath: String?
    public var turns: [ConversationTurn]

    public init(id: String, type: String? = nil, imagePath: String?, turns: [ConversationTurn]) {
        self.id = id
        self.type = type
        self.imagePath = imagePath
        self.turns = turns
    }

    /// Checks the turns alternate human/gpt starting with human (LLaVA's data contract).
    static func validateTurns(_ turns: [ConversationTurn], file: String, location: String) throws {
        guard turns.count >= 2 else {
            throw ForgeError(.badInput, "a conversation needs at least one human and one gpt turn, found \(turns.count) turn(s)", file: file, location: location)
        }
        for (i, turn) in turns.enumerated() {
            let expected = i % 2 == 0 ? "human" : "gpt"
            guard TrainingExample.role(turn.from) == expected else {
                throw ForgeError(.badInput, "turn \(i) is from \"\(turn.from)\"; turns alternate human/gpt starting with human",
                                 file: file, location: location + ".conversations[\(i)].from")
            }
        }
    }

    /// LLaVA's role names and their chat aliases.
    static func role(_ from: String) -> String {
        switch from.lowercased() {
        case "human", "user": return "human"
        case "gpt", "assistant": return "gpt"
        default: return from
        }
    }

    /// Turns from a JSON array of `{"from", "value"}` objects.
    static func turns(fromJSON value: Any?, file: String, location: String) throws -> [ConversationTurn] {
        guard let list = value as? [Any] else {
            throw ForgeError(.badInput, "'conversations' must be an array of {\"from\", \"value\"} objects", file: file, location: location + ".conversations")
        }
        var turns: [ConversationTurn] = []
        for (i, item) in list.enumerated() {
            guard let object = item as? [String: Any] else {
                throw ForgeError(.badInput, "not an object", file: file, location: location + ".conversations[\(i)]")
            }
            guard let from = object["from"] as? String else {
                throw ForgeError(.badInput, "missing or not a string", file: file, location: location + ".conversations[\(i)].from")
            }
            guard let text = object["value"] as? String else {
                throw ForgeError(.badInput, "missing or not a string", file: file, location: location + ".conversations[\(i)].value")
            }
            turns.append(ConversationTurn(from: from, value: text))
        }
        try validateTurns(turns, file: file, location: location)
        return turns
    }

    /// A record's image resolved against the image folder; a missing file is an error naming both.
    static func resolveImage(_ name: String, folder: String?, file: String, location: String) throws -> String {
        let path = name.hasPrefix("/") || folder == nil ? name : (folder! as NSString).appendingPathComponent(name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ForgeError(.badInput, "image file \(path) does not exist" + (folder == nil ? " (give the image folder with --images)" : ""),
                             file: file, location: location + ".image")
        }
        return path
    }
}
