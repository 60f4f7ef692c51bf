import ForgeCore
import Foundation
import GRDB
import Store

/// Reads samples (and their images' box counts) from the store for the filters and dedup.
public enum SampleLoader {
    /// The response format of a type when the caller does not know it (LLaVA's three types).
    public static func defaultFormat(forType type: String) -> String {
        switch type {
        case "detail": return "description"
        case "reasoning": return "single_qa"
        default: return "conversation"
        }
    }

    /// Samples with `status`, of `types` (all when nil), ordered by id. Rows whose
    /// conversations_json does not decode are returned with no turns (the format filter rejects them).
    public static func load(_ db: Database, types: [String]?, status: String = "ok", formats: [String: String] = [:],
                            withBoxes: Bool = false, excludingStage stage: String? = nil) throws -> [QualitySample] {
        // The request's finish_reason comes along (the `cut_at_max_tokens` filter reads it).
        var sql = """
            SELECT s.id, s.type, s.image_id, s.conversations_json, r.finish_reason
            FROM samples s LEFT JOIN requests r ON r.id = s.request_id WHERE s.status = ?
            """
        var args: StatementArguments = [status]
        if let types {
            if types.isEmpty { return [] }
            sql += " AND s.type IN (\(types.map { _ in "?" }.joined(separator: ", ")))"
            args += StatementArguments(types)
        }
        if let stage {
            sql += " AND s.id NOT IN (SELECT sample_id FROM dedup_decisions WHERE stage = ?)"
            args += [stage]
        }
        sql += " ORDER BY s.id"
        var ids: [Int64] = [], typeOf: [String] = [], imageOf: [Int64] = [], jsons: [String?] = [], finish: [String?] = []
        let rows = try Row.fetchCursor(db, sql: sql, arguments: args)
        while let row = try rows.next() {
            ids.append(row[0]); typeOf.append(row[1]); imageOf.append(row[2]); jsons.append(row[3]); finish.append(row[4])
        }
        // Decoding the turns is the slow part: all cores.
        var turns = [[QualitySample.Turn]](repeating: [], count: ids.count)
        turns.withUnsafeMutableBufferPointer { out in
            let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, ids.count / 256 + 1))
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < jsons.count {
                    out[i] = jsons[i].flatMap(QualitySample.decodeTurns) ?? []
                    i += workers
                }
            }
        }
        var out: [QualitySample] = []
        out.reserveCapacity(ids.count)
        for k in ids.indices {
            out.append(QualitySample(id: ids[k], type: typeOf[k], format: formats[typeOf[k]] ?? defaultFormat(forType: typeOf[k]), turns: turns[k],
                                     finishReason: finish[k]))
        }
        if withBoxes && !out.isEmpty {
            var counts: [Int64: [String: Int]] = [:]
            var crowd: [Int64: Set<String>] = [:]
            let wanted = Set(imageOf)
            // Drawable boxes (w, h > 0) of known categories, per image: counts by name, crowd names.
            var names: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, name FROM categories") { names[row[0]] = row[1] }
            let packs = try Row.fetchCursor(db, sql: "SELECT image_id, packed FROM image_boxes")
            while let r = try packs.next() {
                let image: Int64 = r[0]
                guard wanted.contains(image) else { continue }
                for b in try AnnotationStore.decodeBoxes(r[1], imageID: image) where b.isDrawable {
                    guard let name = names[b.categoryID] else { continue }
                    if b.isCrowd != 0 { crowd[image, default: []].insert(name) } else { counts[image, default: [:]][name, default: 0] += 1 }
                }
            }
            for k in out.indices {
                out[k].boxCounts = counts[imageOf[k]] ?? [:]
                out[k].crowdCategories = crowd[imageOf[k]] ?? []
            }
        }
        return out
    }
}
