import Export
import ForgeCore
import Foundation
import GRDB
import Quality
import Store

/// `parse`: the parse outcome of one type's samples (ok / parse_failed / truncated, failures by
/// reason), and a gate: more than `max_failure_rate` unparsed fails the stage (and stops what
/// follows). Parsing itself happens as responses arrive (the Generator stores response and
/// parsed sample in one transaction).
struct ParseStage: StageExecutor {
    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        if let r = stage.params.double("max_failure_rate"), !(0...1).contains(r) {
            throw pipelineError("max_failure_rate must be between 0 and 1, got \(r)", at: paramMark(stage, "max_failure_rate"), stage: stage.name)
        }
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let type = stage.params.string("type")!
        let rows = try env.database().read { db in
            try Row.fetchAll(db, sql: "SELECT status, coalesce(substr(reason, 1, instr(reason || ':', ':') - 1), ''), count(*) FROM samples WHERE type = ? GROUP BY 1, 2", arguments: [type])
        }
        var byStatus: [String: Int] = [:], reasons: [String: Int] = [:]
        for r in rows {
            let status: String = r[0], reason: String = r[1], n: Int = r[2]
            byStatus[status, default: 0] += n
            if status == "parse_failed" || status == "truncated" { reasons[reason, default: 0] += n }
        }
        let parsedStatuses = ["ok", "filtered", "duplicate"]
        let ok = parsedStatuses.reduce(0) { $0 + (byStatus[$1] ?? 0) }
        let bad = (byStatus["parse_failed"] ?? 0) + (byStatus["truncated"] ?? 0)
        let rate = ok + bad == 0 ? 0 : Double(bad) / Double(ok + bad)
        let line = "\(type): \(ok) parsed, \(byStatus["parse_failed"] ?? 0) parse failures, \(byStatus["truncated"] ?? 0) truncated"
            + (reasons.isEmpty ? "" : " (" + reasons.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
        if let max = stage.params.double("max_failure_rate"), rate > max {
            throw ForgeError(.badInput, "\(line): failure rate \(String(format: "%.1f", rate * 100)) % is above max_failure_rate \(String(format: "%.1f", max * 100)) %", location: "stage '\(stage.name)'")
        }
        return StageOutcome(.done, line)
    }
}

/// `filter`: Quality's filters over the ok samples; rejections stored with reasons.
struct FilterStage: StageExecutor {
    func config(_ stage: StageDefinition) throws -> FilterConfig {
        let p = stage.params
        var c = FilterConfig()
        if let r = p.stringList("rules") { c.rules = r }
        if let v = p.int("min_words") { c.minWords = v }
        if let v = p.int("max_words") { c.maxWords = v }
        if let l = p.string("language") { c.language = l }
        for e in p.map("per_type") ?? [] {
            guard let body = e.node.entries else { throw pipelineError("per_type.\(e.key) must be a mapping {min_words, max_words}", at: e.node.mark, stage: stage.name) }
            for k in body {
                guard case .int(let n) = k.node.value, n >= 0 else {
                    throw pipelineError("per_type.\(e.key).\(k.key) must be a non-negative integer", at: k.node.mark, stage: stage.name)
                }
                switch k.key {
                case "min_words": c.perTypeMinWords[e.key] = n
                case "max_words": c.perTypeMaxWords[e.key] = n
                default: throw pipelineError("unknown key '\(k.key)' in per_type.\(e.key) (known: min_words, max_words)", at: k.keyMark, stage: stage.name)
                }
            }
        }
        if c.minWords > c.maxWords { throw pipelineError("min_words (\(c.minWords)) is above max_words (\(c.maxWords))", at: stage.mark, stage: stage.name) }
        return c
    }

    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws { _ = try config(stage) }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let types = stage.params.stringList("types") ?? env.upstreamTypes(of: stage)
        let r = try QualityFilterRunner.run(database: try env.database(), stage: stage.name, types: types, formats: env.formats(for: types), config: try config(stage))
        let by = r.byFilter.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let json = String(decoding: (try? JSONEncoder().encode(r)) ?? Data(), as: UTF8.self)
        return StageOutcome(.done, "\(r.checked) checked, \(r.rejected) rejected" + (by.isEmpty ? "" : " (\(by))"), detailsJSON: json)
    }
}

/// `dedup`: exact + near duplicates (Quality.DedupRunner), incremental across runs.
struct DedupStage: StageExecutor {
    func config(_ stage: StageDefinition) throws -> DedupConfig {
        let p = stage.params
        var c = DedupConfig()
        if let s = p.string("scope") { c.scope = DedupConfig.Scope(rawValue: s)! }
        if let b = p.bool("exact") { c.exact = b }
        if let b = p.bool("near") { c.near = b }
        if let t = p.double("threshold") {
            guard t > 0 && t <= 1 else { throw pipelineError("threshold must be in (0, 1], got \(t)", at: paramMark(stage, "threshold"), stage: stage.name) }
            c.nearConfig.threshold = t
        }
        for (key, apply) in [("bands", { (n: Int) in c.nearConfig.bands = n }), ("rows", { c.nearConfig.rows = $0 }),
                             ("word_ngram", { c.nearConfig.shingles.wordNGram = $0 }), ("char_ngram", { c.nearConfig.shingles.charNGram = $0 }),
                             ("short_question_words", { c.nearConfig.shingles.shortQuestionWords = $0 })] as [(String, (Int) -> Void)] {
            if let n = p.int(key) {
                guard n >= (key == "short_question_words" ? 0 : 1), n <= 512 else { throw pipelineError("\(key) must be between 1 and 512, got \(n)", at: paramMark(stage, key), stage: stage.name) }
                apply(n)
            }
        }
        return c
    }

    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws { _ = try config(stage) }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let types = stage.params.stringList("types") ?? env.upstreamTypes(of: stage)
        let r = try DedupRunner.run(database: try env.database(), stage: stage.name, types: types, formats: env.formats(for: types), config: try config(stage))
        let json = String(decoding: (try? JSONEncoder().encode(r)) ?? Data(), as: UTF8.self)
        var line = "\(r.considered) new samples: \(r.kept) kept, \(r.exactDuplicates) exact and \(r.nearDuplicates) near duplicates (compared with \(r.previouslyKept) kept earlier)"
        if r.reopened > 0 { line += "; \(r.reopened) earlier decisions reopened" }
        if r.settingsChanged { line += "; settings changed, decided afresh" }
        return StageOutcome(.done, line + String(format: " in %.2f s", r.seconds), detailsJSON: json)
    }
}

/// `export`: LLaVA's release layout (`out_dir`) or one file (`out`).
struct ExportStage: StageExecutor {
    func validate(_ stage: StageDefinition, in env: PipelineEnvironment) throws {
        let p = stage.params
        guard p.has("out") || p.has("out_dir") else { throw pipelineError("an export stage needs 'out' (a file) or 'out_dir' (a folder)", at: stage.mark, stage: stage.name) }
        if (p.has("type") || p.has("format")) && !p.has("out") {
            throw pipelineError("'type' and 'format' apply to 'out' (one file)", at: paramMark(stage, p.has("type") ? "type" : "format"), stage: stage.name)
        }
    }

    func outputsMissing(_ stage: StageDefinition, in env: PipelineEnvironment) -> String? {
        if let out = stage.params.string("out"), !FileManager.default.fileExists(atPath: out) { return "output \(out) is missing" }
        if let dir = stage.params.string("out_dir") {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            if !names.contains(where: { $0.hasPrefix("llava_instruct_") && $0.hasSuffix(".json") }) { return "output folder \(dir) has no llava_instruct_*.json" }
        }
        return nil
    }

    func run(_ stage: StageDefinition, in env: PipelineEnvironment, log: @escaping @Sendable (String) -> Void) throws -> StageOutcome {
        let p = stage.params
        let db = try env.database()
        var parts: [String] = []
        if let out = p.string("out") {
            let n = try LLaVAExporter.export(database: db, to: out, type: p.string("type"), format: ExportFormat(rawValue: p.string("format") ?? "llava")!)
            parts.append("\(out): \(n) samples")
        }
        if let dir = p.string("out_dir") {
            // Release files of an earlier export with other counts in their names would linger
            // beside the new ones: remove exactly those (<stem>_<N>.json of our stems).
            let types = try db.read { try String.fetchAll($0, sql: "SELECT DISTINCT type FROM samples") }
            let stems = Set(["llava_instruct"] + types.map(LLaVAExporter.releaseStem))
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                guard let r = name.range(of: #"_[0-9]+k?\.json$"#, options: .regularExpression), stems.contains(String(name[..<r.lowerBound])) else { continue }
                try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(name))
            }
            for f in try LLaVAExporter.exportRelease(database: db, to: dir) { parts.append("\((f.path as NSString).lastPathComponent) \(f.count)") }
        }
        return StageOutcome(.done, parts.joined(separator: ", "))
    }
}
