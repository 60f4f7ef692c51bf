import ForgeCore
import Foundation
import GRDB
@testable import Ingest
import Store
import XCTest

/// The fast paths of ingest: a new database built beside the target and moved into place,
/// the second file parsed on its own thread, and the exact short-decimal number parse.
final class BulkIngestTests: XCTestCase {
    /// Everything ingest writes, as text: equal dumps = equal stores.
    static func dump(_ db: ForgeDatabase) throws -> String {
        try db.read { d in
            var text = ""
            for table in ["images", "categories"] {
                text += "\(table): " + (try Row.fetchAll(d, sql: "SELECT * FROM \(table) ORDER BY id").description) + "\n"
            }
            text += "captions: \(try AnnotationStore.allCaptions(d))\nboxes: \(try AnnotationStore.allBoxes(d))\n"
            for table in ["image_captions", "image_boxes"] {
                text += "\(table): " + (try Row.fetchAll(d, sql: "SELECT * FROM \(table) ORDER BY image_id").description) + "\n"
            }
            text += "ingests: " + (try Row.fetchAll(d, sql: "SELECT path, kind, size_bytes, images, captions, boxes, categories, skipped_json FROM ingests ORDER BY id").description) + "\n"
            text += "schema: " + (try String.fetchAll(d, sql: "SELECT coalesce(sql, name) FROM sqlite_master ORDER BY name").joined(separator: ";")) + "\n"
            return text
        }
    }

    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".ingest-") }
    }

    func testNewDatabaseBuildEqualsInPlaceIngest() throws {
        let t = TempDir()
        let opts = IngestOptions(captionsPath: t.file("c.json", COCOSamples.captions), instancesPath: t.file("i.json", COCOSamples.instances))
        let inPlace = try ForgeDatabase(path: t.path + "/old.db")
        let want = try COCOIngestor(database: inPlace).ingest(opts)

        let path = t.path + "/sub/new.db"
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        let seen = PhaseLog()
        var timed = opts
        timed.onPhase = { name, seconds in seen.add(name, seconds) }
        let got = try COCOIngestor.ingest(databaseAt: path, timed)
        let phases = seen.names
        XCTAssertTrue(seen.allNonNegative)
        XCTAssertEqual(got.map(\.captions), want.map(\.captions))
        XCTAssertEqual(got.map(\.boxes), want.map(\.boxes))
        XCTAssertEqual(got.map(\.notices), want.map(\.notices))
        for phase in ["create database", "captions: parse", "instances: parse", "captions: write captions", "instances: write boxes", "commit", "publish"] {
            XCTAssertTrue(phases.contains(phase), "phase \(phase) reported: \(phases)")
        }
        XCTAssertEqual(try leftovers(t.path + "/sub"), [], "the build file is gone once published")

        let built = try ForgeDatabase(path: path)
        XCTAssertEqual(try Self.dump(built), try Self.dump(inPlace))
        XCTAssertEqual(try built.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }, "wal")
        XCTAssertEqual(try built.integrityCheck(), "ok")
        XCTAssertEqual(try built.read { try ForgeSchema.migrator.appliedMigrations($0) }, ForgeSchema.migrator.migrations)

        // The path exists now: the next ingest goes in place, upserting — idempotent.
        let before = try Self.dump(built)
        _ = try COCOIngestor.ingest(databaseAt: path, opts)
        let after = try Self.dump(built)
        XCTAssertEqual(after.components(separatedBy: "ingests:")[0], before.components(separatedBy: "ingests:")[0])
        XCTAssertEqual(try built.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM ingests") }, 4)
    }

    func testNewDatabaseBuildFailureLeavesNoDatabase() throws {
        let t = TempDir()
        let good = t.file("c.json", COCOSamples.captions)
        let bad = t.file("bad.json", j("{'images': [{'id': 9, 'file_name': 'n.jpg', 'width': 10, 'height': 10}], 'annotations': [{'image_id': 9, 'id': 1, 'category_id': 99, 'bbox': [1, 2, 3, 4]}], 'categories': []}"))
        let path = t.path + "/x.db"
        XCTAssertThrowsError(try COCOIngestor.ingest(databaseAt: path, IngestOptions(captionsPath: good, instancesPath: bad))) { e in
            XCTAssertTrue("\(e)".contains("bad.json") && "\(e)".contains("category_id 99"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "no half-built database at the target")
        XCTAssertEqual(try leftovers(t.path), [])
        XCTAssertThrowsError(try COCOIngestor.ingest(databaseAt: path, IngestOptions(captionsPath: t.path + "/missing.json"))) { e in
            XCTAssertTrue("\(e)".contains("missing.json"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try leftovers(t.path), [])
    }

    /// A build killed mid-load leaves `<db>.ingest-<pid>.tmp`; the next build removes it once that
    /// process is gone, and never touches the build file of a process still running.
    func testStaleBuildFilesAreRemoved() throws {
        let t = TempDir()
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let deadPID = finished.processIdentifier
        let stale = t.file("x.db.ingest-\(deadPID).tmp", "half a database")
        _ = t.file("x.db.ingest-\(deadPID).tmp-journal", "x")
        let live = t.file("x.db.ingest-1.tmp", "pid 1 is alive")  // init: running, not ours
        _ = try COCOIngestor.ingest(databaseAt: t.path + "/x.db", IngestOptions(captionsPath: t.file("c.json", COCOSamples.captions)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale + "-journal"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: live))
        XCTAssertEqual(try ForgeDatabase(path: t.path + "/x.db").read { try AnnotationStore.counts($0).captions }, 3)
    }

    func testParallelAndSerialParseGiveTheSameStore() throws {
        let t = TempDir()
        // Instances first in the options order does not matter: captions are always written first.
        let caps = t.file("c.json", COCOSamples.captions)
        // An instances file whose annotation 102 references image 2 listed only in the captions file.
        let inst = t.file("i.json", COCOSamples.instances.replacingOccurrences(of: #""id": 2}]"#, with: #""id": 3}]"#))
        var dumps: [String] = []
        var reports: [[IngestFileReport]] = []
        for parallel in [false, true] {
            let db = try ForgeDatabase(path: t.path + "/p\(parallel).db")
            reports.append(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: caps, instancesPath: inst, parallelParse: parallel)))
            dumps.append(try Self.dump(db).replacingOccurrences(of: "/p\(parallel).db", with: ""))
        }
        XCTAssertEqual(dumps[0], dumps[1])
        XCTAssertEqual(reports[0].map(\.skipped), reports[1].map(\.skipped))
        XCTAssertEqual(reports[1][1].boxes, 3, "box of image 2 kept: the captions file of the same ingest lists it")
        XCTAssertEqual(reports[1][1].images, 2)
        // A parse error in either file is reported with its file, whichever thread parsed it.
        let bad = t.file("bad.json", "{\"images\": [}")
        for parallel in [false, true] {
            let db = try ForgeDatabase(path: t.path + "/e\(parallel).db")
            XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: caps, instancesPath: bad, parallelParse: parallel))) { e in
                XCTAssertTrue("\(e)".contains("bad.json"), "\(e)")
            }
            XCTAssertEqual(try db.read { try AnnotationStore.counts($0).captions }, 0)
        }
    }

    /// The annotations array parsed by two threads (`AnnotationTailParse`) gives the store the
    /// one-thread parse gives — also when the guessed boundary is inside a record, and with the
    /// same error (record index, line) when a record of the second half is bad.
    func testSplitAnnotationParseEqualsOneThread() throws {
        let t = TempDir()
        let files = try IngestCrashTests.writeSyntheticCOCO(dir: t.path, images: 300)
        func ingest(_ instances: String, split: Int?, name: String) throws -> String {
            let db = try ForgeDatabase(path: t.path + "/\(name).db")
            _ = try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: files.captions, instancesPath: instances, splitAnnotationsAbove: split))
            return try Self.dump(db).replacingOccurrences(of: "/\(name).db", with: "")
        }
        let before = AnnotationTailStats.absorbed
        let serial = try ingest(files.instances, split: nil, name: "serial")
        XCTAssertEqual(AnnotationTailStats.absorbed, before)
        XCTAssertEqual(try ingest(files.instances, split: 1024, name: "split"), serial)
        XCTAssertEqual(AnnotationTailStats.absorbed, before + 1, "the helper's half was confirmed and absorbed")

        // Every record boundary past the middle hidden in strings: the first `},{` after the
        // middle is then inside a record (a misread start), so the helper's work is dropped.
        let text = try String(contentsOfFile: files.instances, encoding: .utf8)
        let middle = text.utf8.count / 2
        let head = String(text.utf8.prefix(middle))!, rest = String(text.utf8.dropFirst(middle))!
        let decoy = rest.replacingOccurrences(of: #""iscrowd": 0,"#, with: #""note": "},{\"x\": 1}", "iscrowd": 0,"#)
        let decoyPath = t.file("decoy.json", head + decoy)
        let decoySerial = try ingest(decoyPath, split: nil, name: "decoy-serial")
        XCTAssertEqual(try ingest(decoyPath, split: 1024, name: "decoy-split"), decoySerial)

        // A bad record late in the file: the same error either way.
        let lastBox = try XCTUnwrap(rest.range(of: #""bbox": ["#, options: .backwards))
        let bad = t.file("bad.json", head + rest.replacingCharacters(in: lastBox, with: #""bbox": "oops", "x": ["#))
        var messages: [String] = []
        for split in [nil, 1024] as [Int?] {
            let db = try ForgeDatabase(path: t.path + "/bad\(split ?? 0).db")
            XCTAssertThrowsError(try COCOIngestor(database: db).ingest(IngestOptions(instancesPath: bad, splitAnnotationsAbove: split))) { messages.append("\($0)") }
        }
        XCTAssertEqual(messages.count, 2)
        XCTAssertEqual(messages.first, messages.last)
        XCTAssertTrue(messages[0].contains("annotations[2099].bbox") && messages[0].contains("line 1"), messages[0])
    }

    func testBoundaryGuessFindsTheNextRecordStart() {
        let text = Array(#"{"a": [1, {"b": 2}], "c": 3}, {"d": 4}  ,\#n {"e": 5}"#.utf8)
        text.withUnsafeBufferPointer { p in
            let base = p.baseAddress!
            XCTAssertEqual(AnnotationTailParse<COCORecordBuffer>.boundary(in: base, from: 0, to: p.count), 30, "skips `}]` and `}, \"`")
            XCTAssertEqual(AnnotationTailParse<COCORecordBuffer>.boundary(in: base, from: 31, to: p.count), 43, "whitespace around the comma")
            XCTAssertNil(AnnotationTailParse<COCORecordBuffer>.boundary(in: base, from: 44, to: p.count))
            XCTAssertNil(AnnotationTailParse<COCORecordBuffer>.boundary(in: base, from: 0, to: 29), "stops at `to`")
        }
    }

    // MARK: skipping

    /// `skipValue` (8-byte words between quotes and brackets) ends exactly after the value, for
    /// values of every length and alignment, with brackets and escaped quotes inside strings.
    func testSkipValueEndsExactlyAfterTheValue() throws {
        var rng = SeededRandom(seed: 9, key: "skip")
        func value(_ depth: Int) -> String {
            switch rng.next() % (depth > 3 ? 3 : 6) {
            case 0: return String(Double(rng.next() % 100_000) / 100)
            case 1: return ["\"plain\"", "\"[not] {a} bracket\"", "\"esc \\\" quote ] \\\\\"", "\"\"", "true", "null"][Int(rng.next() % 6)]
            case 2: return "[" + String(repeating: "1234.56,", count: Int(rng.next() % 40)) + "7]"
            case 3, 4: return "[" + (0..<Int(rng.next() % 12)).map { _ in value(depth + 1) }.joined(separator: ",") + "]"
            default: return "{" + (0..<Int(rng.next() % 5)).map { k in "\"k\(k)]\": " + value(depth + 1) }.joined(separator: ", ") + "}"
            }
        }
        for n in 0..<400 {
            let v = String(repeating: " ", count: n % 17) + value(0)
            let bytes = Array((v + ",[\"after\"]").utf8)
            try bytes.withUnsafeBufferPointer { p in
                var s = JSONScanner(base: p.baseAddress!, count: p.count, file: "s.json")
                try s.skipValue()
                XCTAssertEqual(s.pos, v.utf8.count, "value \(n): \(v)")
            }
            // Cut anywhere inside a container: an error, never a read past the end.
            if v.contains("[") || v.contains("{") {
                let cut = Array(v.utf8.prefix(v.utf8.count - 1))
                try cut.withUnsafeBufferPointer { p in
                    var s = JSONScanner(base: p.baseAddress!, count: p.count, file: "s.json")
                    XCTAssertThrowsError(try s.skipValue(), "cut value \(n)")
                }
            }
        }
    }

    // MARK: numbers

    static func strtodValue(_ text: String) -> Double {
        text.withCString { strtod($0, nil) }
    }

    func scannerValue(_ text: String) throws -> Double {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { p in
            var s = JSONScanner(base: p.baseAddress!, count: p.count, file: "n.json")
            return try s.readNumber()
        }
    }

    /// The fast path must return strtod's double, bit for bit, on every input it accepts.
    func testShortDecimalsParseExactlyLikeStrtod() throws {
        var rng = SeededRandom(seed: 42, key: "numbers")
        func digits(_ n: Int) -> String { String((0..<n).map { _ in Character(UnicodeScalar(UInt8(0x30 + rng.next() % 10))) }) }
        var cases = ["0.0", "-0.0", "0.5", "473.07", "0.1", "0.2", "0.3", "1e22", "1e23", "9007199254740993.0",
                     "9007199254740992.5", "123456789012345678.9", "1.7976931348623157e308", "4.9e-324", "2.2250738585072014e-308",
                     "0.000000000000000000001", "1E5", "1e+2", "1e-2", "-12.5e-3", "640.0", "0.30000000000000004",
                     "2765.1486500000005", "5e-22", "5e-23", "89255.99999999999", "0.0165", "3.3"]
        for _ in 0..<20_000 {
            let intDigits = Int(rng.next() % 6) + 1
            let fracDigits = Int(rng.next() % 8)
            // Always a fraction or an exponent: plain integers take the integer path (where "-0"
            // is 0.0, as Python's json reads it: an int).
            var s = (rng.next() % 4 == 0 ? "-" : "") + String(Int(digits(intDigits))!)
            let exponent = rng.next() % 5 == 0
            if fracDigits > 0 || !exponent { s += "." + digits(max(fracDigits, 1)) }
            if exponent { s += "e" + (rng.next() % 2 == 0 ? "-" : "") + String(rng.next() % 30) }
            cases.append(s)
        }
        for _ in 0..<20_000 {  // COCO-shaped: pixel values with at most 2 decimals
            cases.append(String(rng.next() % 641) + "." + digits(Int(rng.next() % 2) + 1))
        }
        var fast = 0
        for text in cases {
            let want = Self.strtodValue(text)
            let got = try scannerValue(text)
            XCTAssertEqual(got.bitPattern, want.bitPattern, "\(text): \(got) vs strtod \(want)")
            let direct = text.withCString { p in
                p.withMemoryRebound(to: UInt8.self, capacity: text.utf8.count) { JSONScanner.exactShortDecimal($0, count: text.utf8.count) }
            }
            if let direct {
                fast += 1
                XCTAssertEqual(direct.bitPattern, want.bitPattern, "fast path on \(text)")
            }
        }
        XCTAssertGreaterThan(fast, 35_000, "the fast path takes the common short decimals")
        XCTAssertNil(JSONScanner.exactShortDecimal(Array("123456789012345678.9".utf8), count: 20), "19+ digits go to strtod")
        XCTAssertNil(JSONScanner.exactShortDecimal(Array("1e23".utf8), count: 4), "10^23 is not exact")
        // Malformed tokens still fail with the file named.
        for bad in ["1.2.3", "1e", "--1", "1-2", "1e+", "-"] {
            XCTAssertThrowsError(try scannerValue(bad), bad) { e in XCTAssertTrue("\(e)".contains("n.json"), "\(e)") }
        }
    }
}

/// Phases reported through `IngestOptions.onPhase` (from any thread).
final class PhaseLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, Double)] = []
    func add(_ name: String, _ seconds: Double) { lock.lock(); entries.append((name, seconds)); lock.unlock() }
    var names: [String] { lock.lock(); defer { lock.unlock() }; return entries.map(\.0) }
    var allNonNegative: Bool { lock.lock(); defer { lock.unlock() }; return entries.allSatisfy { $0.1 >= 0 } }
}
