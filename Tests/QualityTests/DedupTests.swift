import Quality
import XCTest

/// Near-duplicate detection quality on planted pairs, and exactness of the Jaccard confirmation.
final class DedupTests: XCTestCase {
    /// A seeded vocabulary of 4000 pseudo-words and ~130-word "answers" drawn from it.
    struct Corpus {
        var state: UInt64
        let vocabulary: [String]
        init(seed: UInt64) {
            state = seed
            var v: [String] = []
            var s: UInt64 = 7
            let letters = Array("abcdefghijklmnopqrstuvwxyz")
            for _ in 0..<4000 {
                var w = ""
                s = s &* 6364136223846793005 &+ 1442695040888963407
                let len = 3 + Int((s >> 33) % 7)
                for _ in 0..<len { s = s &* 6364136223846793005 &+ 1442695040888963407; w.append(letters[Int((s >> 33) % 26)]) }
                v.append(w)
            }
            vocabulary = v
        }
        mutating func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 11 }
        mutating func words(_ n: Int) -> [String] { (0..<n).map { _ in vocabulary[Int(next() % UInt64(vocabulary.count))] } }
        /// `base` with `k` words replaced at random positions.
        mutating func edit(_ base: [String], replacing k: Int) -> [String] {
            var w = base
            for _ in 0..<k { w[Int(next() % UInt64(w.count))] = vocabulary[Int(next() % UInt64(vocabulary.count))] }
            return w
        }
    }

    func testShinglesAndExactJaccard() {
        let sh = Shingler()
        let a = sh.shingles(questions: [], answers: ["one two three four five six"])
        XCTAssertEqual(a.count, 2, "6 words → two word 5-grams")
        XCTAssertEqual(sh.shingles(questions: [], answers: ["One, two; THREE four five six!"]), a, "case and punctuation do not matter")
        // Exact Jaccard equals the set computation.
        var c = Corpus(seed: 3)
        for _ in 0..<50 {
            let base = c.words(60)
            let x = sh.shingles(questions: [], answers: [base.joined(separator: " ")])
            let y = sh.shingles(questions: [], answers: [c.edit(base, replacing: 4).joined(separator: " ")])
            let sx = Set(x), sy = Set(y)
            XCTAssertEqual(Shingler.jaccard(x, y), Double(sx.intersection(sy).count) / Double(sx.union(sy).count), accuracy: 1e-12)
        }
        // Short questions use character 4-grams: a one-word change still leaves most grams shared.
        let q1 = sh.shingles(questions: ["What color is the bus?"], answers: [])
        let q2 = sh.shingles(questions: ["What colour is the bus?"], answers: [])
        XCTAssertGreaterThan(Shingler.jaccard(q1, q2), 0.6)
        XCTAssertGreaterThan(q1.count, 10)
    }

    /// ≥ 95 % of planted near-duplicates at Jaccard ≥ 0.8 are found; ≤ 5 % of pairs at ≤ 0.5 are marked.
    func testRecallAndFalseMarksOnPlantedPairs() {
        var c = Corpus(seed: 42)
        var items: [DedupText] = []
        var nearPairs: [(Int64, Int64, Double)] = []
        var farPairs: [(Int64, Int64, Double)] = []
        let sh = Shingler()
        var id: Int64 = 0
        for k in 0..<500 {
            let base = c.words(110 + k % 60)
            id += 1
            let baseID = id
            items.append(DedupText(id: baseID, questions: [], answers: [base.joined(separator: " ")]))
            // one near variant (1–3 edits ≈ Jaccard 0.8–0.97) and one far variant (≥ 12 edits ≈ ≤ 0.5)
            let near = c.edit(base, replacing: 1 + k % 3)
            let far = c.edit(base, replacing: 14 + k % 10)
            for (words, isNear) in [(near, true), (far, false)] {
                id += 1
                items.append(DedupText(id: id, questions: [], answers: [words.joined(separator: " ")]))
                let j = Shingler.jaccard(sh.shingles(questions: [], answers: [base.joined(separator: " ")]),
                                         sh.shingles(questions: [], answers: [words.joined(separator: " ")]))
                if isNear { nearPairs.append((baseID, id, j)) } else { farPairs.append((baseID, id, j)) }
            }
        }
        let detector = NearDuplicateDetector()
        let verdicts = detector.decide(items, bandHashes: detector.bandHashes(items)) { _ in nil }
        var verdictOf: [Int64: DedupVerdict] = [:]
        for (item, v) in zip(items, verdicts) { verdictOf[item.id] = v }
        let nearEval = nearPairs.filter { $0.2 >= 0.8 }
        let farEval = farPairs.filter { $0.2 <= 0.5 }
        XCTAssertGreaterThan(nearEval.count, 250)
        XCTAssertGreaterThan(farEval.count, 400)
        let found = nearEval.filter { verdictOf[$0.1] == .duplicate(of: $0.0, jaccard: $0.2) }.count
        let falseMarks = farEval.filter { if case .duplicate = verdictOf[$0.1]! { return true }; return false }.count
        let recall = Double(found) / Double(nearEval.count)
        let falseRate = Double(falseMarks) / Double(farEval.count)
        print("planted near pairs (J ≥ 0.8): \(nearEval.count), recall \(recall); far pairs (J ≤ 0.5): \(farEval.count), false marks \(falseRate)")
        XCTAssertGreaterThanOrEqual(recall, 0.95)
        XCTAssertLessThanOrEqual(falseRate, 0.05)
        // Every base text is kept (it came first).
        for p in nearPairs { XCTAssertEqual(verdictOf[p.0], .kept) }
    }

    /// A candidate is marked only when its exact Jaccard reaches the threshold — never on the
    /// MinHash estimate alone.
    func testConfirmationIsExact() {
        var c = Corpus(seed: 9)
        let base = c.words(80)
        let variant = c.edit(base, replacing: 3)
        let a = DedupText(id: 1, questions: [], answers: [base.joined(separator: " ")])
        let b = DedupText(id: 2, questions: [], answers: [variant.joined(separator: " ")])
        let sh = Shingler()
        let j = Shingler.jaccard(sh.shingles(questions: [], answers: a.answers), sh.shingles(questions: [], answers: b.answers))
        XCTAssert(j > 0.5 && j < 1)
        for (threshold, expectDuplicate) in [(j, true), (j.nextUp, false), (j - 0.01, true), (min(1, j + 0.01), false)] {
            var cfg = NearDuplicateConfig()
            cfg.bands = 64; cfg.rows = 2  // candidacy near certain: only the confirmation decides
            cfg.threshold = threshold
            let d = NearDuplicateDetector(config: cfg)
            let v = d.decide([a, b], bandHashes: d.bandHashes([a, b])) { _ in nil }
            XCTAssertEqual(d.candidatesChecked, 1)
            XCTAssertEqual(v[1] == .duplicate(of: 1, jaccard: j), expectDuplicate, "threshold \(threshold) vs jaccard \(j)")
            if !expectDuplicate { XCTAssertEqual(v[1], .kept) }
        }
    }

    func testMinHashAgreementTracksJaccard() {
        var c = Corpus(seed: 5)
        let h = MinHasher(bands: 16, rows: 8)
        let sh = Shingler()
        let base = c.words(150)
        let x = sh.shingles(questions: [], answers: [base.joined(separator: " ")])
        let y = sh.shingles(questions: [], answers: [c.edit(base, replacing: 6).joined(separator: " ")])
        var sx = [UInt64](repeating: 0, count: 128), sy = sx
        x.withUnsafeBufferPointer { p in sx.withUnsafeMutableBufferPointer { h.signature(of: p, into: $0) } }
        y.withUnsafeBufferPointer { p in sy.withUnsafeMutableBufferPointer { h.signature(of: p, into: $0) } }
        let agree = Double(zip(sx, sy).filter { $0 == $1 }.count) / 128
        XCTAssertEqual(agree, Shingler.jaccard(x, y), accuracy: 0.15, "MinHash agreement estimates Jaccard")
        XCTAssertEqual(h.bandHashes(of: x), h.bandHashes(of: x))
    }

    func testNormalizedHash() {
        XCTAssertEqual(TextTokens.normalizedHash("A dog,  on the COUCH!"), TextTokens.normalizedHash("a dog on the couch"))
        XCTAssertNotEqual(TextTokens.normalizedHash("a dog on the couch"), TextTokens.normalizedHash("a cat on the couch"))
        XCTAssertEqual(TextTokens.normalized("  Hello,\n\tWorld!! "), "hello world")
        XCTAssertEqual(TextTokens.normalizedHash("  Hello,\n\tWorld!! "), TextTokens.normalizedHash("hello world"))
        XCTAssertNotEqual(TextTokens.normalizedHash("helloworld"), TextTokens.normalizedHash("hello world"))
        XCTAssertEqual(QualitySample.stripImageToken("<image>\n  What is it?  "), "What is it?")
        XCTAssertEqual(QualitySample.stripImageToken("What is it?\n<image>"), "What is it?")
        XCTAssertEqual(QualitySample.stripImageToken("What <image>is it?"), "What is it?")
    }
}
