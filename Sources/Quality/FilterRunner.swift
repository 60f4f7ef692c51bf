import ForgeCore
import Foundation
import GRDB
import Store

public struct FilterReport: Codable, Sendable, Equatable {
    public var checked = 0
    public var rejected = 0
    /// Samples this stage had rejected before and re-checked (its rules or inputs changed).
    public var restored = 0
    public var byFilter: [String: Int] = [:]
    public init() {}
}

/// Applies the quality filters to the ok samples and stores every rejection with its reason.
/// A rejected sample gets status `filtered` and reason "filter <name>: <why>" (the first
/// failing filter; all failures are rows in `quality_rejections`). Export skips it.
/// Rerunning a stage first restores what that stage rejected, so changed rules apply cleanly.
public enum QualityFilterRunner {
    public static func run(database: ForgeDatabase, stage: String, types: [String]?, formats: [String: String] = [:],
                           config: FilterConfig) throws -> FilterReport {
        let filters = config.makeFilters()
        do {
            return try database.write { db in
                var report = FilterReport()
                try db.execute(sql: """
                    UPDATE samples SET status = 'ok', reason = NULL
                    WHERE status = 'filtered' AND id IN (SELECT sample_id FROM quality_rejections WHERE stage = ?)
                    """, arguments: [stage])
                report.restored = db.changesCount
                try db.execute(sql: "DELETE FROM quality_rejections WHERE stage = ?", arguments: [stage])
                let samples = try SampleLoader.load(db, types: types, formats: formats, withBoxes: config.rules.contains("count_mismatch"))
                report.checked = samples.count
                for s in samples {
                    var failures: [(String, String)] = []
                    for f in filters { if let why = f.check(s) { failures.append((f.name, why)) } }
                    guard let first = failures.first else { continue }
                    report.rejected += 1
                    for (name, why) in failures {
                        report.byFilter[name, default: 0] += 1
                        try db.execute(sql: "INSERT INTO quality_rejections(sample_id, stage, filter, reason) VALUES (?, ?, ?, ?)",
                                       arguments: [s.id, stage, name, why])
                    }
                    let more = failures.count > 1 ? " (+\(failures.count - 1) more: \(failures.dropFirst().map(\.0).joined(separator: ", ")))" : ""
                    try db.execute(sql: "UPDATE samples SET status = 'filtered', reason = ? WHERE id = ?",
                                   arguments: ["filter \(first.0): \(first.1)\(more)", s.id])
                }
                return report
            }
        } catch let e as DatabaseError {
            throw ForgeError(.database, e.message ?? "\(e)", file: database.path)
        }
    }
}
