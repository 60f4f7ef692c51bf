import ForgeCore
import Foundation
import GRDB
import Store

/// Which stored samples a run trains on.
public enum SampleSelection: Sendable, Equatable {
    /// Every `ok` sample (of these types; nil = all types).
    case types([String]?)
    /// A mix with ratios (`conversation=0.4,detail=0.3,reasoning=0.3`): the largest set whose
    /// per-type counts follow the ratios, each type's samples drawn by a seeded shuffle.
    case mix([(type: String, ratio: Double)])

    public static func == (a: SampleSelection, b: SampleSelection) -> Bool {
        switch (a, b) {
        case (.types(let x), .types(let y)): return x == y
        case (.mix(let x), .mix(let y)): return x.map(\.type) == y.map(\.type) && x.map(\.ratio) == y.map(\.ratio)
        default: return false
        }
    }

    /// Parses `type=ratio,type=ratio`.
    public static func parseMix(_ text: String) throws -> SampleSelection {
        var parts: [(type: String, ratio: Double)] = []
        for item in text.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2, !pair[0].isEmpty, let ratio = Double(pair[1]), ratio > 0, ratio.isFinite else {
                throw ForgeError(.usage, "--mix takes type=ratio pairs with positive ratios, e.g. conversation=0.5,detail=0.5; got \"\(item)\"")
            }
            guard !parts.contains(where: { $0.type == pair[0] }) else { throw ForgeError(.usage, "--mix names \(pair[0]) twice") }
            parts.append((pair[0], ratio))
        }
        guard !parts.isEmpty else { throw ForgeError(.usage, "--mix is empty") }
        return .mix(parts)
    }
}

/// Training examples from the SQLite store: samples with status `ok` (filtered, duplicate,
/// superseded and failed ones never train), images resolved against `imagesFolder` or the
/// store's remembered `image_root`. Order: by sample id (the batcher shuffles later).
public enum StoreExampleLoader {
    public static func load(databasePath: String, selection: SampleSelection, imagesFolder: String?, seed: UInt64) throws -> [TrainingExample] {
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw ForgeError(.io, "no such database", file: databasePath)
        }
        let database = try ForgeDatabase(path: databasePath)
        typealias StoredSample = (id: Int64, type: String, imageID: Int64, fileName: String?, json: String?)
        func fetch() throws -> ([StoredSample], String?) {
            do {
                return try database.read { db in
                    let fetched = try Row.fetchAll(db, sql: """
                        SELECT s.id, s.type, s.image_id, i.file_name, s.conversations_json
                        FROM samples s LEFT JOIN images i ON i.id = s.image_id
                        WHERE s.status = 'ok' ORDER BY s.id
                        """).map { row -> StoredSample in (id: row[0], type: row[1], imageID: row[2], fileName: row[3], json: row[4]) }
                    let root = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'image_root'")
                    return (fetched, root)
                }
            } catch let error as DatabaseError {
                throw ForgeError(.database, error.message ?? "\(error)", file: databasePath)
            }
        }
        let (rows, root) = try fetch()
        let folder = imagesFolder ?? root
        var byType: [String: [TrainingExample]] = [:]
        for row in rows {
            let location = "samples.id = \(row.id)"
            guard let fileName = row.fileName else {
                throw ForgeError(.badInput, "sample \(row.id) refers to image \(row.imageID), which is not in the images table", file: databasePath, location: location)
            }
            guard let json = row.json, let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) else {
                throw ForgeError(.badInput, "conversations_json is missing or not JSON", file: databasePath, location: location)
            }
            let turns = try TrainingExample.turns(fromJSON: object, file: databasePath, location: location)
            let image = try TrainingExample.resolveImage(fileName, folder: folder, file: databasePath, location: location)
            byType[row.type, default: []].append(TrainingExample(id: String(row.id), type: row.type, imagePath: image, turns: turns))
        }
        switch selection {
        case .types(let types):
            let wanted = types ?? byType.keys.sorted()
            if let types {
                for t in types where byType[t] == nil {
                    throw ForgeError(.badInput, "no ok samples of type \"\(t)\" (types with ok samples: \(byType.keys.sorted().joined(separator: ", ")))", file: databasePath)
                }
            }
            return wanted.flatMap { byType[$0] ?? [] }.sorted { Int($0.id)! < Int($1.id)! }
        case .mix(let parts):
            let total = parts.reduce(0) { $0 + $1.ratio }
            var scale = Double.infinity
            for (type, ratio) in parts {
                guard let available = byType[type]?.count, available > 0 else {
                    throw ForgeError(.badInput, "no ok samples of type \"\(type)\" for --mix", file: databasePath)
                }
                scale = min(scale, Double(available) / (ratio / total))
            }
            var chosen: [TrainingExample] = []
            for (type, ratio) in parts {
                var pool = byType[type]!
                var random = SeededRandom(seed: seed, key: "mix/\(type)")
                pool.shuffle(using: &random)
                chosen += pool.prefix(max(1, Int((scale * ratio / total).rounded(.down))))
            }
            return chosen.sorted { Int($0.id)! < Int($1.id)! }
        }
    }
}
