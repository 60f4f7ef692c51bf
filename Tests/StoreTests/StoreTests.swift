import ForgeCore
import GRDB
import Store
import XCTest

final class StoreTests: XCTestCase {
    func testMigratesAndUsesWAL() throws {
        let dir = NSTemporaryDirectory() + "store-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try ForgeDatabase(path: dir + "/sub/x.db")
        let mode = try db.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
        XCTAssertEqual(mode, "wal")
        let tables = try db.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") }
        for t in ["categories", "image_boxes", "image_captions", "images", "ingests", "meta", "requests", "runs", "samples"] {
            XCTAssertTrue(tables.contains(t), "missing table \(t)")
        }
        XCTAssertFalse(tables.contains("captions") || tables.contains("boxes"), "the per-annotation tables are converted and dropped")
        let applied = try db.read { try ForgeSchema.migrator.appliedMigrations($0) }
        XCTAssertEqual(applied.first, "v1")
        XCTAssertEqual(applied, ForgeSchema.migrator.migrations, "every registered migration is applied, in order")
        // Reopening an existing database keeps its data and does not re-run migrations.
        try db.write { try $0.execute(sql: "INSERT INTO images(id, file_name, width, height) VALUES (1, 'a.jpg', 2, 3)") }
        let again = try ForgeDatabase(path: dir + "/sub/x.db")
        XCTAssertEqual(try again.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM images") }, 1)
        XCTAssertEqual(try again.integrityCheck(), "ok")
    }

    func testNotADatabaseIsAClearError() throws {
        let dir = NSTemporaryDirectory() + "store-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/junk.db", contents: Data(repeating: 0x41, count: 4096))
        XCTAssertThrowsError(try ForgeDatabase(path: dir + "/junk.db")) { e in
            XCTAssertTrue("\(e)".contains("junk.db"), "\(e)")
        }
    }

    func testSHA256KnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(String(repeating: "a", count: 1000)), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testSeededRandomIsStableAndKeyed() {
        var a = SeededRandom(seed: 7, key: "x/1"), b = SeededRandom(seed: 7, key: "x/1"), c = SeededRandom(seed: 7, key: "x/2")
        let va = (0..<4).map { _ in a.next() }
        XCTAssertEqual(va, (0..<4).map { _ in b.next() })
        XCTAssertNotEqual(va, (0..<4).map { _ in c.next() })
    }
}
