import ForgeCore
import Foundation
import GRDB
import Parsing
import Prompts

/// Parses a stored response into the sample row of its request: the same rules for live calls
/// and Batch API imports. Deterministic per image (seeded by purpose, type and image id).
struct SampleWriter {
    enum Outcome { case ok, parseFailed, truncated }

    /// The reason stored with an ok sample whose structured response ended at max_tokens.
    static let closedAtBudgetReason = "closed at max_tokens (last field cut): finish_reason=length, the JSON was closed early"

    let spec: SampleTypeSpec
    let seed: UInt64
    /// The requests asked for JSON (`response_format`): responses are parsed as JSON.
    let structured: Bool
    private let encoder = JSONEncoder.llava

    init(spec: SampleTypeSpec, seed: UInt64, structured: Bool = false) {
        self.spec = spec
        self.seed = seed
        self.structured = structured
    }

    /// Writes (or replaces) the sample of `requestID`.
    func store(requestID: Int64, imageID: Int64, response: String, finishReason: String?, db: Database) throws -> Outcome {
        let format = ResponseFormat(rawValue: spec.format) ?? .conversation
        var placement = SeededRandom(seed: seed, key: "image-placement/\(spec.name)/\(imageID)")
        var instruction: String?
        if !spec.instructions.isEmpty {
            var pick = SeededRandom(seed: seed, key: "instruction/\(spec.name)/\(imageID)")
            instruction = spec.instructions[Int(pick.next() % UInt64(spec.instructions.count))]
        }
        let built = structured
            ? ConversationBuilder.buildFromJSON(format: format, response: response, instruction: instruction, rng: &placement)
            : ConversationBuilder.build(format: format, response: response, instruction: instruction, rng: &placement)
        var status = "ok", reason: String?
        var conversations: String?
        var turns = 0
        switch built {
        case .success(let t):
            conversations = String(decoding: try encoder.encode(t), as: UTF8.self)
            turns = t.count / 2
        case .failure(let f):
            status = "parse_failed"
            reason = f.description
        }
        if finishReason == "length" {
            if structured && status == "ok" {
                // Complete JSON that still ended at the budget: the server closed the value early
                // (token-budget-aware closing), so it parses but its last field was cut. It counts
                // as parsed; the quality filter `cut_at_max_tokens` keeps it out of the data set.
                reason = Self.closedAtBudgetReason
            } else {
                status = "truncated"
                reason = "finish_reason=length (the response hit max_tokens)" + (reason.map { "; " + $0 } ?? "")
            }
        }
        try db.cachedStatement(sql: """
            INSERT INTO samples(request_id, image_id, type, status, reason, conversations_json, turns) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(request_id) DO UPDATE SET status = excluded.status, reason = excluded.reason,
              conversations_json = excluded.conversations_json, turns = excluded.turns
            """).execute(arguments: [requestID, imageID, spec.name, status, reason, conversations, turns])
        return status == "ok" ? .ok : (status == "truncated" ? .truncated : .parseFailed)
    }

    /// Makes sure an answered request has its sample (e.g. after an older parser or a crash
    /// between the two writes of an import).
    func ensure(requestID: Int64, imageID: Int64, db: Database) throws {
        guard try Int.fetchOne(db, sql: "SELECT 1 FROM samples WHERE request_id = ?", arguments: [requestID]) == nil else { return }
        guard let row = try Row.fetchOne(db, sql: "SELECT response_text, finish_reason FROM requests WHERE id = ?", arguments: [requestID]) else { return }
        _ = try store(requestID: requestID, imageID: imageID, response: row[0] ?? "", finishReason: row[1], db: db)
    }
}

extension JSONEncoder {
    /// Turn arrays as LLaVA writes them: {"from": …, "value": …}, key order fixed.
    static var llava: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
