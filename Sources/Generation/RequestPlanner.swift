import Contexts
import ForgeCore
import Foundation
import GRDB
import LLMClient
import Prompts
import Store

/// Chooses the images of a type (seeded order), builds each one's request and journals it as
/// `pending` keyed by the hash of its exact body — shared by live runs and Batch API exports.
struct RequestPlanner {
    let database: ForgeDatabase
    let spec: SampleTypeSpec
    let options: GenerateOptions
    /// The JSON-schema form of the requests when `options.structuredOutput` is on.
    let structured: StructuredRequest?

    init(database: ForgeDatabase, spec: SampleTypeSpec, options: GenerateOptions) throws {
        self.database = database
        self.spec = spec
        self.options = options
        structured = options.structuredOutput ? try StructuredRequest(spec: spec) : nil
    }

    struct Plan {
        var total: Int
        var toSend: [Generator.Job]
        var exported = 0
    }

    /// Chooses the images (seeded order), builds each request and journals it as `pending`.
    func plan(runID: Int64) throws -> Plan {
        let source = AnnotationSource(database: database)
        var candidates: [ImageAnnotations] = []
        if let ids = options.imageIDs {
            for id in ids {
                guard let a = try source.annotations(imageID: id) else {
                    throw ForgeError(.badInput, "no image with id \(id) in the database", file: database.path)
                }
                candidates.append(a)
            }
        } else {
            let order = try imageOrder()
            // Only the first `limit` usable images are needed: read them in order, in one read
            // transaction with prepared statements (not one transaction per image).
            candidates = try database.read { db in try usableAnnotations(order: order, limit: options.limit, db: db) }
        }
        let chosen = candidates.prefix(options.limit)
        var plan = Plan(total: 0, toSend: [])
        let samples = SampleWriter(spec: spec, seed: options.seed, structured: options.structuredOutput)
        let template = RequestBodyTemplate(build: chatRequest(context:))
        var templateID: Int64?
        try database.write { db in
            for ann in chosen {
                let ctx = SymbolicContextFormatter.format(ann, kind: spec.context)
                let (body, key) = template.bodyAndKey(context: ctx.text)
                // Templated bodies are stored as context + template id (see `v_request_templates`).
                if templateID == nil, let parts = template.verifiedParts {
                    templateID = try StoredRequestBody.templateID(prefix: parts.prefix, suffix: parts.suffix, db: db)
                }
                let stored = templateID != nil && template.verifiedParts != nil
                try db.cachedStatement(sql: """
                    INSERT INTO requests(cache_key, run_id, image_id, type, model, context, body_json, template_id, status)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') ON CONFLICT(cache_key) DO NOTHING
                    """).execute(arguments: [key, runID, ann.imageID, spec.name, options.model, ctx.text,
                                            stored ? "" : String(decoding: body, as: UTF8.self), stored ? templateID : nil])
                guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, status FROM requests WHERE cache_key = ?"), arguments: [key]) else { continue }
                plan.total += 1
                let status: String = row[1]
                switch status {
                case "done":
                    // Answered before (maybe under an older parser): make sure its sample exists.
                    try samples.ensure(requestID: row[0], imageID: ann.imageID, db: db)
                case "exported" where !options.includeExported:
                    plan.exported += 1
                default:
                    plan.toSend.append(Generator.Job(requestID: row[0], imageID: ann.imageID, context: ctx.text))
                }
            }
        }
        return plan
    }

    /// The request for one context: system message, seed examples, the context; sampling from
    /// the type (or the overrides).
    func chatRequest(context: String) -> ChatRequest {
        let messages = structured?.messages(forContext: context) ?? spec.messages(forContext: context)
        return ChatRequest(
            model: options.model,
            messages: messages.map { ChatMessage(role: $0.role, content: $0.content) },
            params: SamplingParams(
                temperature: options.temperature ?? spec.temperature,
                topP: options.topP,
                maxTokens: options.maxTokens ?? spec.maxTokens,
                seed: nil, stop: nil),
            responseFormat: structured?.responseFormat)
    }

    /// All image ids, shuffled deterministically by the seed and the type (so each type draws
    /// its own images, as LLaVA sampled per type) — stable when images are added later.
    /// `AnnotationSource.annotations(imageID:)` for each id of `order` (the same reader),
    /// keeping those with captions, until `limit` are found.
    private func usableAnnotations(order: [Int64], limit: Int, db: Database) throws -> [ImageAnnotations] {
        var out: [ImageAnnotations] = []
        out.reserveCapacity(min(limit, order.count))
        let reader = try AnnotationReader(db)
        for id in order where out.count < limit {
            guard let a = try reader.annotations(imageID: id), !a.captions.isEmpty else { continue }
            out.append(a)
        }
        return out
    }

    private func imageOrder() throws -> [Int64] {
        let ids = try database.read { db in try Int64.fetchAll(db, sql: "SELECT id FROM images") }
        var keyed: [(key: UInt64, id: Int64)] = []
        keyed.reserveCapacity(ids.count)
        for id in ids {
            var r = SeededRandom(seed: options.seed, key: "order/\(spec.name)/\(id)")
            keyed.append((r.next(), id))
        }
        keyed.sort { a, b in a.key != b.key ? a.key < b.key : a.id < b.id }
        return keyed.map { $0.id }
    }

}
