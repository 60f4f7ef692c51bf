import ForgeCore
import Foundation
import GRDB
import Quality
import Store

/// What a stage's fingerprint is made of. Kept with each run so a rerun can say *why*
/// ("prompt file prompts/detail/system.txt changed", "input generate-detail changed").
public struct FingerprintComponents: Codable, Sendable, Equatable {
    public var kind: String
    /// Bumped when a kind's implementation changes what it produces.
    public var version: String
    /// Canonical text of the params that affect the output.
    public var params: String
    /// Input stage → its fingerprint.
    public var inputs: [String: String]
    /// File path → "size:mtime_ns:content hash".
    public var files: [String: String]
    /// Anything else the kind depends on (e.g. the prompt library's fingerprint).
    public var extra: [String: String]

    public var fingerprint: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return SHA256.hex(Array((try? enc.encode(self)) ?? Data()))
    }

    public var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    public static func decode(_ s: String) -> FingerprintComponents? {
        try? JSONDecoder().decode(FingerprintComponents.self, from: Data(s.utf8))
    }

    /// Why `self` differs from `old`, most specific first.
    public func differences(from old: FingerprintComponents) -> [String] {
        var out: [String] = []
        if kind != old.kind || version != old.version { out.append("the \(kind) stage's implementation changed") }
        for (path, d) in files.sorted(by: { $0.key < $1.key }) {
            guard let o = old.files[path] else { out.append("reads a new file \(path)"); continue }
            if o != d {
                let sameContent = o.split(separator: ":").last == d.split(separator: ":").last
                out.append("file \(path) changed" + (sameContent ? " (modified time)" : ""))
            }
        }
        for path in old.files.keys.sorted() where files[path] == nil { out.append("no longer reads \(path)") }
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) where old.extra[k] != v { out.append("\(k) changed") }
        for (name, fp) in inputs.sorted(by: { $0.key < $1.key }) where old.inputs[name] != fp {
            out.append(old.inputs[name] == nil ? "new input \(name)" : "input \(name) changed")
        }
        if params != old.params { out.append("parameters changed") }
        return out
    }
}

/// size + mtime + a 64-bit content hash of a file; the hash is cached in the store by
/// (path, size, mtime) so a 450 MB COCO file is read once, not on every run.
public enum FileDigest {
    public static func digest(path: String, database: ForgeDatabase?) throws -> String {
        let abs = URL(fileURLWithPath: path).standardizedFileURL.path
        var st = stat()
        guard stat(abs, &st) == 0 else { throw ForgeError(.io, "cannot read (does it exist?)", file: path) }
        let size = Int64(st.st_size)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if (st.st_mode & S_IFMT) == S_IFDIR { return "dir:\(mtime)" }
        if let database, let cached = try? database.read({ db in
            try String.fetchOne(db, sql: "SELECT digest FROM pipeline_file_digests WHERE path = ? AND size = ? AND mtime_ns = ?", arguments: [abs, size, mtime])
        }) {
            return "\(size):\(mtime):\(cached)"
        }
        let hash: UInt64
        if size == 0 {
            hash = TextTokens.hash64("", seed: 1)
        } else {
            let file = try MappedFile(path: abs)
            hash = TextTokens.hash64(UnsafeRawBufferPointer(file.bytes), seed: 1)
        }
        let hex = String(hash, radix: 16)
        try? database?.write { db in
            try db.execute(sql: "INSERT INTO pipeline_file_digests(path, size, mtime_ns, digest) VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, digest = excluded.digest",
                           arguments: [abs, size, mtime, hex])
        }
        return "\(size):\(mtime):\(hex)"
    }
}

/// One row of `pipeline_stage_runs`.
public struct StageRunRecord: Sendable {
    public var id: Int64
    public var stage: String
    public var fingerprint: String
    public var components: FingerprintComponents?
    public var status: String
    public var message: String?
    public var seconds: Double?
    public var finishedAt: String?
}

/// Per-stage status, timing and fingerprint in the store.
public struct StageRunStore {
    public let database: ForgeDatabase
    public let pipeline: String

    public func latest(stage: String) throws -> StageRunRecord? {
        try database.read { db in
            guard let r = try Row.fetchOne(db, sql: """
                SELECT id, stage, fingerprint, components_json, status, message, seconds, finished_at FROM pipeline_stage_runs
                WHERE pipeline = ? AND stage = ? ORDER BY id DESC LIMIT 1
                """, arguments: [pipeline, stage]) else { return nil }
            return StageRunRecord(id: r[0], stage: r[1], fingerprint: r[2], components: FingerprintComponents.decode(r[3]),
                                  status: r[4], message: r[5], seconds: r[6], finishedAt: r[7])
        }
    }

    public func begin(stage: StageDefinition, components: FingerprintComponents) throws -> Int64 {
        try database.write { db in
            try db.execute(sql: "INSERT INTO pipeline_stage_runs(pipeline, stage, kind, fingerprint, components_json, status) VALUES (?, ?, ?, ?, ?, 'running')",
                           arguments: [pipeline, stage.name, stage.kind, components.fingerprint, components.json])
            return db.lastInsertedRowID
        }
    }

    public func finish(id: Int64, status: String, message: String?, summary: String?, seconds: Double) throws {
        try database.write { db in
            try db.execute(sql: """
                UPDATE pipeline_stage_runs SET status = ?, message = ?, summary_json = ?, seconds = ?,
                  finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?
                """, arguments: [status, message, summary, seconds, id])
        }
    }
}
