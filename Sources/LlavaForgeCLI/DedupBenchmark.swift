import ForgeCore
import Foundation
import GRDB
import Quality
import Store

/// Synthetic LLaVA-shaped samples with planted near-duplicates, for `dedup --synthetic N`.
/// Words follow a Zipf law over a 6000-word vocabulary (common words recur as in real answers,
/// which makes LSH collisions between unrelated samples realistic). Mix and lengths follow
/// LLaVA-Instruct-158K: 37 % conversations (3–5 turns, answers 25–60 words), 15 % descriptions
/// (80–140 words), 48 % reasoning (one 10–18-word question, a 90–150-word answer).
/// 4 % are near copies of an earlier sample (1–3 words replaced), 1 % exact copies.
enum DedupBenchmark {
    struct Generator {
        var rng: SeededRandom
        let vocabulary: [String]
        let cumulative: [Double]

        init(seed: UInt64) {
            rng = SeededRandom(seed: seed)
            var v: [String] = []
            var g = SeededRandom(seed: 99)
            let letters = Array("etaoinshrdlcumwfgypbvkjxqz")
            for _ in 0..<6000 {
                let len = 2 + Int(g.next() % 8)
                v.append(String((0..<len).map { _ in letters[Int(min(g.next() % 26, g.next() % 26))] }))
            }
            vocabulary = v
            var c: [Double] = []
            var total = 0.0
            for r in 1...v.count { total += 1 / Double(r); c.append(total) }
            cumulative = c.map { $0 / total }
        }

        mutating func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        mutating func range(_ lo: Int, _ hi: Int) -> Int { lo + Int(rng.next() % UInt64(hi - lo + 1)) }

        mutating func word() -> String {
            let u = uniform()
            var lo = 0, hi = cumulative.count - 1
            while lo < hi { let mid = (lo + hi) / 2; if cumulative[mid] < u { lo = mid + 1 } else { hi = mid } }
            return vocabulary[lo]
        }

        mutating func sentence(_ n: Int, end: String = ".") -> String {
            var s = ""
            for i in 0..<n { if i > 0 { s += " " }; s += word() }
            return s.prefix(1).uppercased() + s.dropFirst() + end
        }

        mutating func sample(id: Int64) -> DedupText {
            let kind = uniform()
            if kind < 0.37 {
                var q: [String] = [], a: [String] = []
                for _ in 0..<range(3, 5) { q.append(sentence(range(6, 12), end: "?")); a.append(sentence(range(25, 60))) }
                return DedupText(id: id, questions: q, answers: a)
            } else if kind < 0.52 {
                return DedupText(id: id, questions: [], answers: [sentence(range(80, 140))])
            }
            return DedupText(id: id, questions: [sentence(range(10, 18), end: "?")], answers: [sentence(range(90, 150))])
        }

        /// `t` with `k` words of its answers replaced.
        mutating func edited(_ t: DedupText, id: Int64, words k: Int) -> DedupText {
            var answers = t.answers.map { $0.split(separator: " ").map(String.init) }
            for _ in 0..<k {
                let i = Int(rng.next() % UInt64(answers.count))
                answers[i][Int(rng.next() % UInt64(answers[i].count))] = word()
            }
            return DedupText(id: id, questions: t.questions, answers: answers.map { $0.joined(separator: " ") })
        }
    }

    static func run(samples n: Int, config: DedupConfig, storePath: String?) throws {
        guard n > 0 else { throw ForgeError(.usage, "--synthetic must be ≥ 1") }
        var gen = Generator(seed: 2024)
        var items: [DedupText] = []
        items.reserveCapacity(n)
        var planted: [(copy: Int64, original: Int64)] = []
        var exactPlanted = 0
        let t0 = Date()
        for i in 0..<n {
            let id = Int64(i + 1)
            let u = gen.uniform()
            if i > 100 && u < 0.04 {
                let orig = items[Int(gen.rng.next() % UInt64(items.count))]
                items.append(gen.edited(orig, id: id, words: gen.range(1, 3)))
                planted.append((id, orig.id))
            } else if i > 100 && u < 0.05 {
                var copy = items[Int(gen.rng.next() % UInt64(items.count))]
                copy.id = id
                items.append(copy)
                exactPlanted += 1
            } else {
                items.append(gen.sample(id: id))
            }
        }
        let words = items.reduce(0) { $0 + $1.answers.reduce(0) { $0 + $1.split(separator: " ").count } + $1.questions.reduce(0) { $0 + $1.split(separator: " ").count } }
        print(String(format: "generated %d samples (%.0f words each on average; %d planted near copies, %d exact copies) in %.1f s",
                     n, Double(words) / Double(n), planted.count, exactPlanted, Date().timeIntervalSince(t0)))
        print("cores: \(ProcessInfo.processInfo.activeProcessorCount)")

        // In memory: shingles + MinHash + bands on all cores, then LSH + exact confirmation.
        let detector = NearDuplicateDetector(config: config.nearConfig)
        let t1 = Date()
        let bands = detector.bandHashes(items)
        let t2 = Date()
        let verdicts = detector.decide(items, bandHashes: bands) { _ in nil }
        let t3 = Date()
        var verdictOf: [Int64: DedupVerdict] = [:]
        for (item, v) in zip(items, verdicts) { verdictOf[item.id] = v }
        let sh = detector.shingler
        var evaluated = 0, found = 0
        var textOf: [Int64: DedupText] = [:]
        for t in items { textOf[t.id] = t }
        for p in planted {
            let a = textOf[p.original]!, b = textOf[p.copy]!
            let j = Shingler.jaccard(sh.shingles(questions: a.questions, answers: a.answers), sh.shingles(questions: b.questions, answers: b.answers))
            guard j >= 0.8 else { continue }
            evaluated += 1
            if case .duplicate = verdictOf[p.copy]! { found += 1 }
        }
        let marked = verdicts.filter { if case .duplicate = $0 { return true }; return false }.count
        print(String(format: "near-dup detection: shingles + MinHash (128 perms) + bands %.2f s, LSH lookup + exact Jaccard %.2f s, total %.2f s",
                     t2.timeIntervalSince(t1), t3.timeIntervalSince(t2), t3.timeIntervalSince(t1)))
        print(String(format: "  %d marked duplicate; %d candidate pairs checked, %d confirmed; recall on planted pairs with Jaccard ≥ 0.8: %d/%d = %.3f",
                     marked, detector.candidatesChecked, detector.confirmed, found, evaluated, evaluated == 0 ? 0 : Double(found) / Double(evaluated)))

        guard let storePath else { return }
        // The stored path: the same samples as rows, then DedupRunner (what the pipeline stage runs).
        try? FileManager.default.removeItem(atPath: storePath)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: storePath + suffix) }
        let database = try ForgeDatabase(path: storePath)
        let t4 = Date()
        try database.write { db in
            for t in items {
                var turns: [[String: String]] = []
                let kind = t.questions.isEmpty ? "detail" : (t.questions.count == 1 ? "reasoning" : "conversation")
                if t.questions.isEmpty {
                    turns = [["from": "human", "value": "<image>\nDescribe the image in detail."], ["from": "gpt", "value": t.answers[0]]]
                } else {
                    for (k, q) in t.questions.enumerated() {
                        turns.append(["from": "human", "value": k == 0 ? "<image>\n" + q : q])
                        turns.append(["from": "gpt", "value": t.answers[k]])
                    }
                }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: turns), as: UTF8.self)
                try db.execute(sql: "INSERT INTO requests(cache_key, image_id, type, model, context, body_json, status) VALUES (?, ?, ?, 'bench', '', '{}', 'done')",
                               arguments: ["bench-\(t.id)", t.id, kind])
                try db.execute(sql: "INSERT INTO samples(request_id, image_id, type, status, conversations_json, turns) VALUES (?, ?, ?, 'ok', ?, ?)",
                               arguments: [db.lastInsertedRowID, t.id, kind, json, max(1, t.questions.count)])
            }
        }
        let t5 = Date()
        var cfg = config
        cfg.scope = .global
        let r = try DedupRunner.run(database: database, stage: "bench", types: nil, config: cfg)
        print(String(format: "stored path: wrote %d samples in %.1f s; DedupRunner (exact + near, global scope, bands persisted) %.2f s: %d kept, %d exact, %d near",
                     n, t5.timeIntervalSince(t4), r.seconds, r.kept, r.exactDuplicates, r.nearDuplicates))
        print("  phases: " + r.phaseSeconds.sorted { $0.key < $1.key }.map { "\($0.key) " + String(format: "%.2f s", $0.value) }.joined(separator: ", "))
        let t6 = Date()
        let again = try DedupRunner.run(database: database, stage: "bench", types: nil, config: cfg)
        print(String(format: "  incremental rerun: %d new samples considered in %.2f s", again.considered, Date().timeIntervalSince(t6)))
    }
}
