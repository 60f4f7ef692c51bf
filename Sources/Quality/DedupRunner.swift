import ForgeCore
import Foundation
import GRDB
import Store

public struct DedupConfig: Sendable, Equatable {
    public enum Scope: String, Sendable, CaseIterable { case perType = "per_type", global }
    public var scope: Scope = .perType
    public var exact = true
    public var near = true
    public var nearConfig = NearDuplicateConfig()
    public init() {}

    /// Everything that changes decisions; a change resets the stage's earlier decisions.
    var identity: String {
        let s = nearConfig.shingles
        return "scope=\(scope.rawValue) exact=\(exact) near=\(near) bands=\(nearConfig.bands) rows=\(nearConfig.rows) "
            + "threshold=\(nearConfig.threshold) word=\(s.wordNGram) char=\(s.charNGram) short=\(s.shortQuestionWords)"
    }
}

public struct DedupReport: Codable, Sendable, Equatable {
    public var considered = 0
    public var kept = 0
    public var exactDuplicates = 0
    public var nearDuplicates = 0
    /// Kept samples of earlier runs compared against (incremental dedup).
    public var previouslyKept = 0
    /// Earlier decisions undone because their kept sample is no longer ok, or the settings changed.
    public var reopened = 0
    public var settingsChanged = false
    public var candidatesChecked = 0
    public var seconds = 0.0
    /// Where the time went: load, exact, bands, decide, store.
    public var phaseSeconds: [String: Double] = [:]
    public init() {}
}

/// Exact (normalized-hash, unique index) and near (MinHash LSH + exact Jaccard) dedup of the ok
/// samples, incremental across runs: kept samples' band hashes and normalized hashes stay in the
/// store, so a later run compares only its new samples against them. A duplicate gets status
/// `duplicate` and a reason naming the kept sample ("duplicate of sample 12 (jaccard 0.83) …");
/// the earlier sample (lower id) is always the one kept.
public enum DedupRunner {
    public static func run(database: ForgeDatabase, stage: String, types: [String]?, formats: [String: String] = [:],
                           config: DedupConfig) throws -> DedupReport {
        let started = Date()
        do {
            var report = try database.write { db in try run(db, stage: stage, types: types, formats: formats, config: config) }
            report.seconds = Date().timeIntervalSince(started)
            return report
        } catch let e as DatabaseError {
            throw ForgeError(.database, e.message ?? "\(e)", file: database.path)
        }
    }

    /// Band hashes ↔ BLOB (UInt64 little-endian).
    static func encodeBands<C: Collection>(_ bands: C) -> Data where C.Element == UInt64 {
        var d = Data(capacity: bands.count * 8)
        for b in bands { withUnsafeBytes(of: b.littleEndian) { d.append(contentsOf: $0) } }
        return d
    }

    static func decodeBands(_ d: Data) -> [UInt64] {
        let bytes = [UInt8](d)
        var out: [UInt64] = []
        out.reserveCapacity(bytes.count / 8)
        var i = 0
        while i + 8 <= bytes.count {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(bytes[i + k]) << (8 * UInt64(k)) }
            out.append(v)
            i += 8
        }
        return out
    }

    static func scopeKey(stage: String, type: String, config: DedupConfig) -> String {
        config.scope == .global ? "\(stage)/*" : "\(stage)/\(type)"
    }

    static func run(_ db: Database, stage: String, types: [String]?, formats: [String: String], config: DedupConfig) throws -> DedupReport {
        var report = DedupReport()
        let like = stage.replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "/%"
        // 1. Settings changed: undo every decision of this stage and start over.
        let previous = try String.fetchOne(db, sql: "SELECT params_hash FROM dedup_state WHERE stage = ?", arguments: [stage])
        if previous != config.identity {
            report.settingsChanged = previous != nil
            try db.execute(sql: """
                UPDATE samples SET status = 'ok', reason = NULL WHERE status = 'duplicate'
                AND id IN (SELECT sample_id FROM dedup_decisions WHERE stage = ? AND decision != 'kept')
                """, arguments: [stage])
            report.reopened += db.changesCount
            try db.execute(sql: "DELETE FROM dedup_decisions WHERE stage = ?", arguments: [stage])
            try db.execute(sql: "DELETE FROM dedup_bands WHERE scope LIKE ? ESCAPE '\\'", arguments: [like])
            try db.execute(sql: "DELETE FROM dedup_exact WHERE scope LIKE ? ESCAPE '\\'", arguments: [like])
            try db.execute(sql: "INSERT INTO dedup_state(stage, params_hash) VALUES (?, ?) ON CONFLICT(stage) DO UPDATE SET params_hash = excluded.params_hash",
                           arguments: [stage, config.identity])
        }
        // 2. Kept samples that are no longer ok (superseded, filtered): forget them, and reopen
        //    the samples that were duplicates of them.
        let gone = try Int64.fetchAll(db, sql: """
            SELECT d.sample_id FROM dedup_decisions d JOIN samples s ON s.id = d.sample_id
            WHERE d.stage = ? AND d.decision = 'kept' AND s.status != 'ok'
            """, arguments: [stage])
        for id in gone {
            try db.execute(sql: "DELETE FROM dedup_bands WHERE sample_id = ? AND scope LIKE ? ESCAPE '\\'", arguments: [id, like])
            try db.execute(sql: "DELETE FROM dedup_exact WHERE sample_id = ? AND scope LIKE ? ESCAPE '\\'", arguments: [id, like])
            try db.execute(sql: """
                UPDATE samples SET status = 'ok', reason = NULL WHERE status = 'duplicate'
                AND id IN (SELECT sample_id FROM dedup_decisions WHERE stage = ? AND duplicate_of = ?)
                """, arguments: [stage, id])
            report.reopened += db.changesCount
            try db.execute(sql: "DELETE FROM dedup_decisions WHERE stage = ? AND (duplicate_of = ? OR sample_id = ?)", arguments: [stage, id, id])
        }
        // Duplicates whose own status changed since (e.g. superseded) need no decision any more.
        try db.execute(sql: """
            DELETE FROM dedup_decisions WHERE stage = ? AND decision != 'kept'
            AND sample_id IN (SELECT id FROM samples WHERE status != 'duplicate')
            """, arguments: [stage])

        // 3. The new samples, oldest first.
        var clock = Date()
        func lap(_ name: String) { report.phaseSeconds[name, default: 0] += Date().timeIntervalSince(clock); clock = Date() }
        let samples = try SampleLoader.load(db, types: types, formats: formats, excludingStage: stage)
        report.considered = samples.count
        lap("load")
        guard !samples.isEmpty else { return report }

        var verdict: [Int64: (kind: String, of: Int64?, jaccard: Double?)] = [:]
        // 4. Exact duplicates: normalized text hash, unique per scope (hashes on all cores; the
        //    scope's earlier owners read once).
        var nearCandidates: [String: [QualitySample]] = [:]
        if config.exact {
            var hashes = [String](repeating: "", count: samples.count)
            hashes.withUnsafeMutableBufferPointer { out in
                let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
                DispatchQueue.concurrentPerform(iterations: workers) { w in
                    var i = w
                    while i < samples.count {
                        out[i] = TextTokens.normalizedHash((samples[i].dedupQuestions + ["\u{1}"] + samples[i].answers).joined(separator: "\n"))
                        i += workers
                    }
                }
            }
            var owners: [String: [String: Int64]] = [:]
            let insertExact = try db.cachedStatement(sql: "INSERT INTO dedup_exact(scope, norm_hash, sample_id) VALUES (?, ?, ?)")
            for (k, s) in samples.enumerated() {
                let scope = scopeKey(stage: stage, type: s.type, config: config)
                if owners[scope] == nil {
                    var m: [String: Int64] = [:]
                    for r in try Row.fetchAll(db, sql: "SELECT norm_hash, sample_id FROM dedup_exact WHERE scope = ?", arguments: [scope]) { m[r[0]] = r[1] }
                    owners[scope] = m
                }
                if let owner = owners[scope]![hashes[k]], owner != s.id {
                    verdict[s.id] = ("exact", owner, 1.0)
                    continue
                }
                if owners[scope]![hashes[k]] == nil {
                    owners[scope]![hashes[k]] = s.id
                    try insertExact.execute(arguments: [scope, hashes[k], s.id])
                }
                nearCandidates[scope, default: []].append(s)
            }
        } else {
            for s in samples { nearCandidates[scopeKey(stage: stage, type: s.type, config: config), default: []].append(s) }
        }
        lap("exact")
        // 5. Near duplicates per scope, against this stage's earlier kept samples too.
        for (scope, items) in nearCandidates.sorted(by: { $0.key < $1.key }) {
            guard config.near else {
                for s in items { verdict[s.id] = ("kept", nil, nil) }
                continue
            }
            let detector = NearDuplicateDetector(config: config.nearConfig)
            var known = 0
            let rows = try Row.fetchCursor(db, sql: "SELECT sample_id, bands FROM dedup_bands WHERE scope = ? ORDER BY sample_id", arguments: [scope])
            while let r = try rows.next() {
                let blob: Data = r[1]
                let bands = Self.decodeBands(blob)
                guard bands.count == config.nearConfig.bands else { continue }
                detector.addKnown(id: r[0], bandHashes: bands)
                known += 1
            }
            report.previouslyKept += known
            let texts = items.map { DedupText(id: $0.id, questions: $0.dedupQuestions, answers: $0.answers) }
            lap("load")
            let bands = detector.bandHashes(texts)
            lap("bands")
            let verdicts = detector.decide(texts, bandHashes: bands) { id in
                guard let row = try? Row.fetchOne(db, sql: "SELECT type, conversations_json FROM samples WHERE id = ?", arguments: [id]),
                      let json: String = row[1], let turns = QualitySample.decodeTurns(json) else { return nil }
                let type: String = row[0]
                let s = QualitySample(id: id, type: type, format: formats[type] ?? SampleLoader.defaultFormat(forType: type), turns: turns)
                return DedupText(id: id, questions: s.dedupQuestions, answers: s.answers)
            }
            report.candidatesChecked += detector.candidatesChecked
            lap("decide")
            let nb = config.nearConfig.bands
            let deleteExact = try db.cachedStatement(sql: "DELETE FROM dedup_exact WHERE scope = ? AND sample_id = ?")
            let insertBands = try db.cachedStatement(sql: "INSERT INTO dedup_bands(scope, sample_id, bands) VALUES (?, ?, ?)")
            for (k, item) in items.enumerated() {
                switch verdicts[k] {
                case .kept:
                    verdict[item.id] = ("kept", nil, nil)
                    try insertBands.execute(arguments: [scope, item.id, Self.encodeBands(bands[(k * nb)..<((k + 1) * nb)])])
                case .duplicate(let of, let j):
                    verdict[item.id] = ("near", of, j)
                    // Only kept samples own a normalized hash: an exact copy of this one is then
                    // caught as a near duplicate of the kept sample instead of a duplicate's copy.
                    try deleteExact.execute(arguments: [scope, item.id])
                }
            }
            lap("store")
        }
        // 6. Store the decisions.
        let insertDecision = try db.cachedStatement(sql: "INSERT INTO dedup_decisions(stage, sample_id, scope, decision, duplicate_of, jaccard) VALUES (?, ?, ?, ?, ?, ?)")
        for s in samples {
            guard let v = verdict[s.id] else { continue }
            let scope = scopeKey(stage: stage, type: s.type, config: config)
            try insertDecision.execute(arguments: [stage, s.id, scope, v.kind, v.of, v.jaccard])
            switch v.kind {
            case "kept": report.kept += 1
            case "exact":
                report.exactDuplicates += 1
                try db.execute(sql: "UPDATE samples SET status = 'duplicate', reason = ? WHERE id = ?",
                               arguments: ["exact duplicate of sample \(v.of!) (same normalized text; the earlier sample is kept) [\(stage)]", s.id])
            default:
                report.nearDuplicates += 1
                try db.execute(sql: "UPDATE samples SET status = 'duplicate', reason = ? WHERE id = ?",
                               arguments: ["duplicate of sample \(v.of!) (jaccard \(String(format: "%.2f", v.jaccard!)); the earlier sample is kept) [\(stage)]", s.id])
            }
        }
        lap("store")
        return report
    }
}
