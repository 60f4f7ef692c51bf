import Contexts
import ForgeCore
import Foundation
import GRDB
import Ingest
import Store

func paramMark(_ stage: StageDefinition, _ key: String) -> SourceMark { stage.params.node(key)?.mark ?? stage.mark }

/// `ingest`: COCO captions/instances JSON → the store (idempotent upserts, one transaction).
/// Fingerprint: the files' size, mtime and content hash.
struct IngestStage: StageExecutor {
    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        let p = stage.params
        guard p.has("captions") || p.has("instances") else {
            throw pipelineError("an ingest stage needs 'captions' and/or 'instances'", at: stage.mark, stage: stage.name)
        }
        for key in ["captions", "instances"] {
            if let f = p.string(key), !FileManager.default.fileExists(atPath: f) {
                throw pipelineError("\(key) file '\(f)' does not exist", at: paramMark(stage, key), stage: stage.name)
            }
        }
        if let d = p.string("images") {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: d, isDirectory: &isDir), isDir.boolValue else {
                throw pipelineError("images folder '\(d)' does not exist", at: paramMark(stage, "images"), stage: stage.name)
            }
        }
    }

    func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String]) {
        (["captions", "instances"].compactMap { stage.params.string($0) }, [:])
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let p = stage.params
        let reports = try COCOIngestor(database: try env.database()).ingest(IngestOptions(
            captionsPath: p.string("captions"), instancesPath: p.string("instances"), imagesDir: p.string("images"), strict: p.bool("strict") ?? false))
        var parts: [String] = []
        for r in reports {
            parts.append("\((r.path as NSString).lastPathComponent): \(r.images) images, \(r.captions) captions, \(r.boxes) boxes")
            for (reason, n) in r.skipped.sorted(by: { $0.key < $1.key }) { log("skipped \(n) (\(reason))") }
        }
        let json = String(decoding: (try? JSONEncoder().encode(reports)) ?? Data(), as: UTF8.self)
        return StageOutcome(.done, parts.joined(separator: "; "), detailsJSON: json)
    }
}

/// `contexts`: the symbolic context of every image for every type's context kind, counted
/// (images without captions, degenerate boxes dropped). The generate stages format the same
/// contexts with the same formatter; this stage checks and reports them up front.
struct ContextsStage: StageExecutor {
    func types(_ stage: StageDefinition, _ env: PipelineEnvironment) throws -> [String] {
        try stage.params.stringList("types") ?? env.library().availableTypes()
    }

    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        for t in try types(stage, env) {
            do { _ = try env.spec(t) } catch let e as ForgeError {
                throw pipelineError("type '\(t)': \(e.description)", at: paramMark(stage, "types"), stage: stage.name)
            }
        }
    }

    func fingerprintInputs(_ stage: StageDefinition, in env: PipelineEnvironment) throws -> (files: [String], extra: [String: String]) {
        var extra: [String: String] = [:]
        for t in try types(stage, env) { extra["context kind of \(t)"] = try env.spec(t).context.rawValue }
        return ([], extra)
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let kinds = Set(try types(stage, env).map { try env.spec($0).context })
        var images = 0, withCaptions = 0, withBoxes = 0, dropped = 0, chars = 0
        try AnnotationSource(database: try env.database()).forEachImage(includeBoxes: kinds.contains(.captionsAndBoxes)) { a in
            images += 1
            if !a.captions.isEmpty { withCaptions += 1 }
            if !a.boxes.isEmpty { withBoxes += 1 }
            for k in kinds {
                let c = SymbolicContextFormatter.format(a, kind: k)
                chars += c.text.count
                if k == .captionsAndBoxes { dropped += c.droppedBoxes }
            }
        }
        guard withCaptions > 0 else {
            throw ForgeError(.badInput, "no image has captions: nothing to build contexts from (did the ingest stage read a captions file?)", file: env.pipeline.database)
        }
        let summary = "\(images) images, \(withCaptions) with captions, \(withBoxes) with boxes; \(dropped) degenerate boxes dropped; kinds: \(kinds.map(\.rawValue).sorted().joined(separator: ", "))"
        return StageOutcome(.done, summary, detailsJSON: "{\"images\": \(images), \"with_captions\": \(withCaptions), \"with_boxes\": \(withBoxes), \"dropped_boxes\": \(dropped), \"characters\": \(chars)}")
    }
}

/// `sample-images`: per type, a seeded choice of images with a target count, as LLaVA sampled
/// its 58K/23K/77K. Each type orders the usable images by SeededRandom(seed, "sample/<type>/<id>")
/// (stable when images are added) and takes the first `count`; `reuse: T` draws from T's choice
/// instead (in T's order), `exclude: [T…]` leaves out the images those types chose.
struct SampleImagesStage: StageExecutor {
    struct TypeRule { var type: String; var count: Int; var reuse: String?; var exclude: [String]; var requireBoxes: Bool; var mark: SourceMark }

    func rules(_ stage: StageDefinition) throws -> [TypeRule] {
        guard let entries = stage.params.map("types") else { return [] }
        var out: [TypeRule] = []
        for e in entries {
            guard let body = e.node.entries else {
                throw pipelineError("type '\(e.key)' needs a mapping {count: N, reuse: TYPE, exclude: [TYPES], require_boxes: BOOL}", at: e.node.mark, stage: stage.name)
            }
            var rule = TypeRule(type: e.key, count: -1, reuse: nil, exclude: [], requireBoxes: false, mark: e.keyMark)
            for k in body {
                switch (k.key, k.node.value) {
                case ("count", .int(let n)) where n >= 0: rule.count = n
                case ("reuse", .string(let s)): rule.reuse = s
                case ("exclude", .string(let s)): rule.exclude = [s]
                case ("exclude", .list(let l)) where l.allSatisfy({ $0.string != nil }): rule.exclude = l.compactMap(\.string)
                case ("require_boxes", .bool(let b)): rule.requireBoxes = b
                case ("count", _), ("reuse", _), ("exclude", _), ("require_boxes", _):
                    let expected = ["count": "a non-negative integer", "reuse": "a type name", "exclude": "a list of type names", "require_boxes": "true or false"][k.key]!
                    throw pipelineError("types.\(e.key).\(k.key) must be \(expected), got \(k.node.value.typeName) (\(k.node.value.display))", at: k.node.mark, stage: stage.name)
                default:
                    throw pipelineError("unknown key '\(k.key)' in types.\(e.key) (known: count, reuse, exclude, require_boxes)", at: k.keyMark, stage: stage.name)
                }
            }
            guard rule.count >= 0 else { throw pipelineError("types.\(e.key) needs 'count'", at: e.keyMark, stage: stage.name) }
            out.append(rule)
        }
        return out
    }

    /// Types in an order where every reuse/exclude reference comes first; a cycle is an error.
    func ordered(_ rules: [TypeRule], stage: StageDefinition) throws -> [TypeRule] {
        let names = Set(rules.map(\.type))
        for r in rules {
            for ref in [r.reuse].compactMap({ $0 }) + r.exclude {
                guard names.contains(ref) else { throw pipelineError("types.\(r.type) refers to '\(ref)', which this stage does not sample (types: \(names.sorted().joined(separator: ", ")))", at: r.mark, stage: stage.name) }
                if ref == r.type { throw pipelineError("types.\(r.type) cannot reuse or exclude itself", at: r.mark, stage: stage.name) }
            }
        }
        var done: [TypeRule] = []
        var left = rules
        while !left.isEmpty {
            guard let k = left.firstIndex(where: { r in ([r.reuse].compactMap { $0 } + r.exclude).allSatisfy { ref in done.contains { $0.type == ref } } }) else {
                throw pipelineError("the reuse/exclude references between types form a cycle (\(left.map(\.type).joined(separator: ", ")))", at: left[0].mark, stage: stage.name)
            }
            done.append(left.remove(at: k))
        }
        return done
    }

    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        _ = try ordered(try rules(stage), stage: stage)
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let seed = UInt64(bitPattern: Int64(stage.params.int("seed") ?? 0))
        let order = try ordered(try rules(stage), stage: stage)
        let db = try env.database()
        let (captioned, boxed) = try db.read { d -> ([Int64], Set<Int64>) in
            let c = try Int64.fetchAll(d, sql: "SELECT id FROM images WHERE id IN (SELECT image_id FROM image_captions WHERE count > 0) ORDER BY id")
            let b = Set(try Int64.fetchAll(d, sql: "SELECT image_id FROM image_boxes WHERE drawable > 0"))
            return (c, b)
        }
        var chosen: [String: [Int64]] = [:]
        var parts: [String] = []
        for r in order {
            var pool: [Int64]
            if let reuse = r.reuse {
                pool = chosen[reuse] ?? []
            } else {
                var keyed = captioned.map { id -> (UInt64, Int64) in
                    var g = SeededRandom(seed: seed, key: "sample/\(r.type)/\(id)")
                    return (g.next(), id)
                }
                keyed.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
                pool = keyed.map(\.1)
            }
            if r.requireBoxes { pool = pool.filter(boxed.contains) }
            let excluded = Set(r.exclude.flatMap { chosen[$0] ?? [] })
            if !excluded.isEmpty { pool = pool.filter { !excluded.contains($0) } }
            let pick = Array(pool.prefix(r.count))
            chosen[r.type] = pick
            parts.append("\(r.type) \(pick.count)" + (pick.count < r.count ? " (of \(r.count) wanted: only \(pool.count) usable images)" : ""))
            if pick.count < r.count { log("\(r.type): wanted \(r.count) images, only \(pick.count) are usable") }
        }
        try db.write { d in
            try d.execute(sql: "DELETE FROM pipeline_image_choices WHERE stage = ?", arguments: [stage.name])
            for (type, ids) in chosen {
                for (rank, id) in ids.enumerated() {
                    try d.execute(sql: "INSERT INTO pipeline_image_choices(stage, type, image_id, rank) VALUES (?, ?, ?, ?)", arguments: [stage.name, type, id, rank])
                }
            }
        }
        let overlap = order.count > 1 ? ", \(Set(chosen.values.flatMap { $0 }).count) distinct images" : ""
        return StageOutcome(.done, parts.joined(separator: ", ") + overlap)
    }

    /// The images a sample-images stage chose for `type`, in rank order (nil: it has no such type).
    static func choices(stage: String, type: String, database: ForgeDatabase) throws -> [Int64] {
        try database.read { d in
            try Int64.fetchAll(d, sql: "SELECT image_id FROM pipeline_image_choices WHERE stage = ? AND type = ? ORDER BY rank", arguments: [stage, type])
        }
    }

    static func declaredTypes(_ stage: StageDefinition) -> [String] { stage.params.map("types")?.map(\.key) ?? [] }
}
