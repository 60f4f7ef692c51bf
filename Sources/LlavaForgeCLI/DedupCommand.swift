import ArgumentParser
import ForgeCore
import Foundation
import Quality
import Store

struct Filter: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the quality filters to the ok samples; every rejection is stored with its reason.",
        discussion: """
        Rules: source_leak (mentions captions, "the description given", bounding boxes, coordinates,
        coordinate lists), refusal, format, length, unanswered, language (English asked), count_mismatch
        (a number + category that contradicts the boxes), cut_at_max_tokens (the request ended at
        max_tokens: structured JSON closed early, last field cut), repetition (counting loops, repeated
        phrases or sentences). Rejected samples get status "filtered"
        (see them with: llava-forge inspect --type T --status filtered); export skips them.
        """)

    @OptionGroup var database: DatabaseOption
    @Option(parsing: .upToNextOption, help: "Only these types.") var types: [String] = []
    @Option(parsing: .upToNextOption, help: "Only these rules (default: all).") var rules: [String] = []
    @Option(name: .customLong("min-words"), help: "Fewest answer words.") var minWords = 3
    @Option(name: .customLong("max-words"), help: "Most answer words.") var maxWords = 1000
    @Option(help: "en (reject non-English) or any.") var language = "en"
    @Option(help: "Name the rejections are stored under (a rerun replaces that name's decisions).") var stage = "filter"

    func run() throws {
        try runReportingErrors {
            guard FileManager.default.fileExists(atPath: database.db) else { throw ForgeError(.io, "database does not exist", file: database.db) }
            for r in rules where !FilterConfig.allRules.contains(r) {
                throw ForgeError(.usage, "unknown rule '\(r)' (rules: \(FilterConfig.allRules.joined(separator: ", ")))")
            }
            var cfg = FilterConfig()
            if !rules.isEmpty { cfg.rules = rules }
            cfg.minWords = minWords
            cfg.maxWords = maxWords
            cfg.language = language
            let r = try QualityFilterRunner.run(database: try ForgeDatabase(path: database.db), stage: stage, types: types.isEmpty ? nil : types, config: cfg)
            print("\(r.checked) checked, \(r.rejected) rejected, \(r.restored) earlier rejections re-checked")
            for (k, v) in r.byFilter.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
        }
    }
}

struct Dedup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove exact and near-duplicate samples (MinHash LSH confirmed by exact Jaccard), incrementally.",
        discussion: """
        Exact: normalized text (lowercase, no punctuation, collapsed whitespace) with a unique index.
        Near: word 5-grams of answers, character 4-grams of short questions, 128 MinHash permutations
        as 16 bands × 8 rows; a candidate is a duplicate only if the exact Jaccard of the shingle sets
        is ≥ --threshold. The earlier sample is kept; the duplicate's reason names it
        (llava-forge inspect --type T --status duplicate). Band hashes are stored, so a later run
        compares only new samples against the kept ones.
        --synthetic N benchmarks the detector on N generated samples of realistic length with planted
        near-duplicates (no database needed); add --db and --store to time the stored path too.
        """)

    @Option(help: "The SQLite database file.") var db: String?
    @Option(parsing: .upToNextOption, help: "Only these types.") var types: [String] = []
    @Option(help: "per_type or global.") var scope = "per_type"
    @Option(help: "Exact Jaccard a candidate needs.") var threshold = 0.7
    @Option(help: "Name the decisions are stored under.") var stage = "dedup"
    @Option(help: "Benchmark on this many synthetic samples.") var synthetic: Int?
    @Flag(help: "With --synthetic: also write the samples into --db and run the stored dedup.") var store = false

    func run() throws {
        try runReportingErrors {
            var cfg = DedupConfig()
            guard let s = DedupConfig.Scope(rawValue: scope) else { throw ForgeError(.usage, "--scope must be per_type or global") }
            cfg.scope = s
            cfg.nearConfig.threshold = threshold
            if let n = synthetic {
                try DedupBenchmark.run(samples: n, config: cfg, storePath: store ? (db ?? "dedup-bench.db") : nil)
                return
            }
            guard let db else { throw ForgeError(.usage, "give --db FILE (or --synthetic N for the benchmark)") }
            guard FileManager.default.fileExists(atPath: db) else { throw ForgeError(.io, "database does not exist", file: db) }
            let r = try DedupRunner.run(database: try ForgeDatabase(path: db), stage: stage, types: types.isEmpty ? nil : types, config: cfg)
            print("\(r.considered) new samples: \(r.kept) kept, \(r.exactDuplicates) exact and \(r.nearDuplicates) near duplicates; compared with \(r.previouslyKept) kept earlier; \(r.candidatesChecked) candidate pairs checked in \(String(format: "%.2f", r.seconds)) s")
        }
    }
}
