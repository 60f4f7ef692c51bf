import ForgeCore
import Foundation
import GRDB
import Ingest
import Store
import XCTest

/// `llava-forge ingest` killed (SIGKILL) at points spread over its run: a new database is either
/// absent or complete, never half-written; an existing one keeps exactly its old content.
final class IngestCrashTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static func binaryPath() throws -> String {
        let bundleDir = Bundle(for: IngestCrashTests.self).bundleURL.deletingLastPathComponent().path
        let candidates = [bundleDir + "/llava-forge", repoRoot + "/.build/debug/llava-forge"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ForgeError(.io, "llava-forge binary not found (run `swift build --build-tests` first); looked at \(candidates)")
        }
        return found
    }

    /// A COCO pair of `images` images (5 captions, 7 boxes with polygons each), ids shuffled.
    static func writeSyntheticCOCO(dir: String, images: Int) throws -> (captions: String, instances: String) {
        var rng = SeededRandom(seed: 7, key: "crash")
        // Ids clear of COCOSamples' (images 1-2, annotations 10-102), so the sets can be combined.
        var ids = Array(Array(100...Int64(100 + images * 3)).shuffled(using: &rng).prefix(images))
        ids.shuffle(using: &rng)
        var cap = #"{"info": {"year": 2017},"images": ["#
        var inst = cap
        for (i, id) in ids.enumerated() {
            let rec = #"{"license": 1,"file_name": "\#(String(repeating: "0", count: 12 - String(id).count) + String(id)).jpg","height": 480,"width": 640,"id": \#(id)}"#
            cap += (i > 0 ? "," : "") + rec
            inst += (i > 0 ? "," : "") + rec
        }
        cap += #"],"annotations": ["#
        inst += #"],"annotations": ["#
        var n = 0
        for id in ids {
            for k in 0..<5 {
                cap += (n > 0 ? "," : "") + #"{"image_id": \#(id),"id": \#(n + 1000),"caption": "A caption number \#(k) of image \#(id) with some words."}"#
                n += 1
            }
        }
        n = 0
        for id in ids {
            for _ in 0..<7 {
                let x = Double(rng.next() % 50000) / 100, y = Double(rng.next() % 40000) / 100
                let poly = (0..<16).map { _ in String(Double(rng.next() % 64000) / 100) }.joined(separator: ",")
                inst += (n > 0 ? "," : "") + #"{"segmentation": [[\#(poly)]],"area": 1234.5678,"iscrowd": 0,"image_id": \#(id),"bbox": [\#(x),\#(y),50.25,40.5],"category_id": \#(1 + n % 2),"id": \#(n + 1000)}"#
                n += 1
            }
        }
        cap += "]}"
        inst += #"],"categories": [{"supercategory": "person","id": 1,"name": "person"},{"supercategory": "animal","id": 2,"name": "dog"}]}"#
        let c = dir + "/captions.json", i = dir + "/instances.json"
        try Data(cap.utf8).write(to: URL(fileURLWithPath: c))
        try Data(inst.utf8).write(to: URL(fileURLWithPath: i))
        return (c, i)
    }

    /// Runs `llava-forge ingest`; with `killAfter`, sends SIGKILL after that many seconds.
    /// Returns the exit status (nil when killed before finishing) and the elapsed seconds.
    func runIngest(_ files: (captions: String, instances: String), db: String, killAfter: Double? = nil) throws -> (status: Int32?, seconds: Double) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Self.binaryPath())
        p.arguments = ["ingest", "--captions", files.captions, "--instances", files.instances, "--db", db]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        let start = Date()
        try p.run()
        if let killAfter {
            Thread.sleep(forTimeInterval: killAfter)
            kill(p.processIdentifier, SIGKILL)
        }
        p.waitUntilExit()
        let killed = p.terminationReason == .uncaughtSignal
        return (killed ? nil : p.terminationStatus, Date().timeIntervalSince(start))
    }

    func counts(_ path: String) throws -> [Int] {
        let db = try ForgeDatabase(path: path)
        XCTAssertEqual(try db.integrityCheck(), "ok", path)
        return try db.read { d in
            let (captions, boxes) = try AnnotationStore.counts(d)
            return [try Int.fetchOne(d, sql: "SELECT count(*) FROM images")!, captions, boxes]
        }
    }

    func testKilledIngestNeverLeavesAHalfWrittenDatabase() throws {
        let t = TempDir()
        let files = try Self.writeSyntheticCOCO(dir: t.path, images: 2500)
        let full = [2500, 12500, 17500]

        // A full run first: how long the whole build takes, and what complete looks like.
        let reference = t.path + "/reference.db"
        let run = try runIngest(files, db: reference)
        XCTAssertEqual(run.status, 0)
        XCTAssertEqual(try counts(reference), full)

        // New database: killed at points spread over the run.
        var killedMidway = 0
        let fractions = [0.2, 0.45, 0.7, 0.9]
        for (k, fraction) in fractions.enumerated() {
            let path = t.path + "/new\(k).db"
            let r = try runIngest(files, db: path, killAfter: run.seconds * fraction)
            if FileManager.default.fileExists(atPath: path) {
                XCTAssertEqual(try counts(path), full, "a database at the target is complete (kill at \(fraction))")
            } else {
                killedMidway += 1
                XCTAssertNil(r.status, "only a killed run leaves no database")
            }
        }
        XCTAssertGreaterThan(killedMidway, 0, "at least one kill landed during the load")
        // Rebuilding into a killed build's path clears that build's leftovers.
        if let k = (0..<fractions.count).first(where: { !FileManager.default.fileExists(atPath: t.path + "/new\($0).db") }) {
            let leftovers = { try FileManager.default.contentsOfDirectory(atPath: t.path).filter { $0.hasPrefix("new\(k).db.ingest-") } }
            let before = try leftovers()  // its .tmp, unless the kill came before it was created
            XCTAssertEqual(try runIngest(files, db: t.path + "/new\(k).db").status, 0)
            XCTAssertEqual(try counts(t.path + "/new\(k).db"), full)
            XCTAssertEqual(try leftovers(), [], "stale build files removed (were \(before))")
        }

        // Existing database: a killed re-ingest leaves exactly the old content.
        let existing = t.path + "/existing.db"
        let small = (captions: t.file("c.json", COCOSamples.captions), instances: t.file("i.json", COCOSamples.instances))
        XCTAssertEqual(try runIngest(small, db: existing).status, 0)
        let old = try counts(existing)
        XCTAssertEqual(old, [2, 3, 3])
        let merged = [2502, 12503, 17503]
        for fraction in [0.3, 0.6] {
            let r = try runIngest(files, db: existing, killAfter: run.seconds * fraction)
            let now = try counts(existing)
            // A kill before the commit leaves the old content; one after it (the process was still
            // closing) the whole new content — never anything between.
            if r.status == nil { XCTAssertTrue(now == old || now == merged, "killed at \(fraction): old or complete content, got \(now)") }
            else { XCTAssertEqual(now, merged) }
        }
    }
}
