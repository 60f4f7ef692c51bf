import ForgeCore
import Foundation
import GRDB

/// Captions and boxes in the store: one `image_captions` and one `image_boxes` row per image,
/// each holding that image's records packed in (seq, id) order (`AnnotationPack`).
///
/// Why packed rows: train2017 has 1.45 M captions and boxes but 118 K images. As one SQLite row
/// (plus an index entry) per annotation, ingest spent most of its time inserting rows and
/// building the by-image indexes, and `context --all` sorting them back into image order. One
/// row per image keyed by image id is written in id order (appends), needs no secondary index,
/// and is read back already grouped and ordered.
///
/// The old tables' semantics are kept exactly: records are upserted by COCO annotation id (a
/// record whose id is stored replaces it, moving to another image if its image_id changed; of
/// two records with one id in a batch, the later wins), and every image keeps (seq, id) order.
public enum AnnotationStore {
    // MARK: writing

    /// Upserts `captions` (texts must stay valid during the call) and rewrites the packs of the
    /// images they touch. Must run inside the caller's write transaction.
    public static func upsertCaptions(_ captions: [CaptionSpan], db: Database) throws {
        guard !captions.isEmpty else { return }
        let handle = try connection(db)
        let arena = ByteArena()
        var old: [CaptionSpan] = []
        if try hasRows(db, "image_captions") {
            let read = try RawStatement(handle, "SELECT image_id, packed FROM image_captions")
            while try read.nextRow() {
                let imageID = read.int64(0)
                try read.withBlobBytes(1) { blob in
                    try AnnotationPack.forEachCaption(blob, imageID: imageID) { id, seq, text in
                        old.append(CaptionSpan(id: id, imageID: imageID, seq: seq, text: arena.store(text)))
                    }
                }
            }
        }
        try rewritePacks(handle, table: "image_captions", old: old, new: captions,
                         encode: { group, pack in AnnotationPack.appendCaptions(group, to: &pack) })
        withExtendedLifetime(arena) {}
    }

    /// Upserts `boxes` and rewrites the packs of the images they touch. Must run inside the
    /// caller's write transaction.
    public static func upsertBoxes(_ boxes: [StoredBox], db: Database) throws {
        guard !boxes.isEmpty else { return }
        let handle = try connection(db)
        var old: [StoredBox] = []
        if try hasRows(db, "image_boxes") {
            let read = try RawStatement(handle, "SELECT image_id, packed FROM image_boxes")
            while try read.nextRow() {
                let imageID = read.int64(0)
                try read.withBlobBytes(1) { blob in try AnnotationPack.forEachBox(blob, imageID: imageID) { old.append($0) } }
            }
        }
        try rewritePacks(handle, table: "image_boxes", old: old, new: boxes,
                         drawable: { group in Int64(group.reduce(0) { $0 + ($1.isDrawable ? 1 : 0) }) },
                         encode: { group, pack in AnnotationPack.appendBoxes(group, to: &pack) })
    }

    /// Merges `old` and `new` records (`merge`) and writes each touched image's row of `table`:
    /// image_id, count, (boxes) the `drawable` count, and the pack `encode` writes; images left
    /// without records lose their row.
    private static func rewritePacks<R: PackRecord>(
        _ handle: OpaquePointer, table: String, old: [R], new: [R], drawable: ((UnsafeBufferPointer<R>) -> Int64)? = nil,
        encode: (UnsafeBufferPointer<R>, inout [UInt8]) -> Void
    ) throws {
        let drawableColumn = drawable != nil
        let columns = drawableColumn ? "image_id, count, drawable, packed" : "image_id, count, packed"
        let values = drawableColumn ? "?1, ?2, ?3, ?4" : "?1, ?2, ?3"
        let updates = drawableColumn ? "count = excluded.count, drawable = excluded.drawable, packed = excluded.packed"
                                     : "count = excluded.count, packed = excluded.packed"
        let upsert = try RawStatement(handle, "INSERT INTO \(table)(\(columns)) VALUES (\(values)) ON CONFLICT(image_id) DO UPDATE SET \(updates)")
        let delete = try RawStatement(handle, "DELETE FROM \(table) WHERE image_id = ?1")
        var pack: [UInt8] = []
        pack.reserveCapacity(1 << 16)
        try merge(old: old, new: new, write: { imageID, group in
            pack.removeAll(keepingCapacity: true)
            encode(group, &pack)
            upsert.bind(1, imageID)
            upsert.bind(2, Int64(group.count))
            if let drawable { upsert.bind(3, drawable(group)) }
            try pack.withUnsafeBytes { p in
                upsert.bindBlob(drawableColumn ? 4 : 3, bytes: p.baseAddress, count: p.count)
                try upsert.step()
            }
        }, delete: { imageID in
            delete.bind(1, imageID)
            try delete.step()
        })
    }

    /// `upsertCaptions` for owned strings (small writers and tests).
    public static func upsert(captions: [StoredCaption], db: Database) throws {
        let arena = ByteArena()
        let spans = captions.map { CaptionSpan(id: $0.id, imageID: $0.imageID, seq: $0.seq, text: arena.store($0.text)) }
        try upsertCaptions(spans, db: db)
        withExtendedLifetime(arena) {}
    }

    /// `upsertBoxes`, under the name that reads well beside `upsert(captions:db:)`.
    public static func upsert(boxes: [StoredBox], db: Database) throws { try upsertBoxes(boxes, db: db) }

    /// Old and new records united by id (new wins; later wins within new), grouped by image in
    /// (seq, id) order: `write` gets every image whose records changed, `delete` those left with
    /// none. With no old records every group is new; otherwise only the images a new record
    /// lands in or an old one leaves are rewritten.
    static func merge<R: PackRecord>(old: [R], new: [R], write: (Int64, UnsafeBufferPointer<R>) throws -> Void,
                                     delete: (Int64) throws -> Void) throws {
        let total = old.count + new.count
        @inline(__always) func record(_ i: Int) -> R { i < old.count ? old[i] : new[i - old.count] }

        // The winner of each id: the last occurrence in old-then-new order.
        var winner: [Int64: Int32] = [:]
        winner.reserveCapacity(total)
        for i in 0..<total { winner[record(i).id] = Int32(truncatingIfNeeded: i) }
        let hasDuplicates = winner.count < total
        @inline(__always) func kept(_ i: Int) -> Bool { !hasDuplicates || winner[record(i).id] == Int32(truncatingIfNeeded: i) }

        var affected: Set<Int64>? = nil  // nil: every image (no old records)
        if !old.isEmpty {
            var set = Set<Int64>(new.map(\.imageID))
            for i in old.indices where !kept(i) { set.insert(old[i].imageID) }
            affected = set
        }

        var keys: [PackSortKey] = []
        keys.reserveCapacity(total)
        for i in 0..<total where kept(i) {
            let r = record(i)
            if let affected, !affected.contains(r.imageID) { continue }
            keys.append(PackSortKey(imageID: r.imageID, seq: r.seq, id: r.id, index: i))
        }
        sortByImageSeqID(&keys)

        var group: [R] = []
        group.reserveCapacity(64)
        var written = Set<Int64>()
        var k = 0
        while k < keys.count {
            let imageID = keys[k].imageID
            group.removeAll(keepingCapacity: true)
            while k < keys.count, keys[k].imageID == imageID {
                group.append(record(keys[k].index))
                k += 1
            }
            try group.withUnsafeBufferPointer { try write(imageID, $0) }
            if affected != nil { written.insert(imageID) }
        }
        if let affected {
            for imageID in affected.subtracting(written).sorted() { try delete(imageID) }
        }
    }

    // MARK: reading

    /// One image's captions in (seq, id) order.
    public static func captions(imageID: Int64, db: Database) throws -> [StoredCaption] {
        guard let packed = try Data.fetchOne(db.cachedStatement(sql: "SELECT packed FROM image_captions WHERE image_id = ?"), arguments: [imageID]) else { return [] }
        return try decodeCaptions(packed, imageID: imageID)
    }

    /// One image's boxes in (seq, id) order.
    public static func boxes(imageID: Int64, db: Database) throws -> [StoredBox] {
        guard let packed = try Data.fetchOne(db.cachedStatement(sql: "SELECT packed FROM image_boxes WHERE image_id = ?"), arguments: [imageID]) else { return [] }
        return try decodeBoxes(packed, imageID: imageID)
    }

    /// Every caption, in (image_id, seq, id) order.
    public static func allCaptions(_ db: Database) throws -> [StoredCaption] {
        var out: [StoredCaption] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT image_id, packed FROM image_captions ORDER BY image_id")
        while let row = try rows.next() { out += try decodeCaptions(row[1], imageID: row[0]) }
        return out
    }

    /// Every box, in (image_id, seq, id) order.
    public static func allBoxes(_ db: Database) throws -> [StoredBox] {
        var out: [StoredBox] = []
        let rows = try Row.fetchCursor(db, sql: "SELECT image_id, packed FROM image_boxes ORDER BY image_id")
        while let row = try rows.next() { out += try decodeBoxes(row[1], imageID: row[0]) }
        return out
    }

    /// How many captions and boxes are stored (what `count(*)` of the old tables gave).
    public static func counts(_ db: Database) throws -> (captions: Int, boxes: Int) {
        let c = try Int.fetchOne(db, sql: "SELECT coalesce(sum(count), 0) FROM image_captions") ?? 0
        let b = try Int.fetchOne(db, sql: "SELECT coalesce(sum(count), 0) FROM image_boxes") ?? 0
        return (c, b)
    }

    public static func decodeCaptions(_ packed: Data, imageID: Int64) throws -> [StoredCaption] {
        var out: [StoredCaption] = []
        try packed.withUnsafeBytes { blob in
            try AnnotationPack.forEachCaption(blob, imageID: imageID) { id, seq, text in
                out.append(StoredCaption(id: id, imageID: imageID, seq: seq, text: String(decoding: text, as: UTF8.self)))
            }
        }
        return out
    }

    public static func decodeBoxes(_ packed: Data, imageID: Int64) throws -> [StoredBox] {
        var out: [StoredBox] = []
        try packed.withUnsafeBytes { blob in try AnnotationPack.forEachBox(blob, imageID: imageID) { out.append($0) } }
        return out
    }

    // MARK: helpers

    static func connection(_ db: Database) throws -> OpaquePointer {
        guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection") }
        return handle
    }

    static func hasRows(_ db: Database, _ table: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM \(table))") ?? false
    }
}

extension AnnotationStore {
    /// Sorts keys by (imageID, seq, id): a stable LSD radix sort on imageID (only the bytes in
    /// which the ids differ: three passes for COCO's ids), then an insertion sort inside each
    /// image, which is one compare per key when the keys came in file order (seq ascending) —
    /// a general comparison sort of 1.45 M keys was the largest part of writing the packs.
    static func sortByImageSeqID(_ keys: inout [PackSortKey]) {
        guard keys.count > 1 else { return }
        @inline(__always) func radix(_ k: PackSortKey) -> UInt64 { UInt64(bitPattern: k.imageID) ^ (1 << 63) }  // signed order
        var lo = UInt64.max, hi = UInt64.min
        for k in keys { let r = radix(k); lo = min(lo, r); hi = max(hi, r) }
        let differing = lo ^ hi
        let passes = differing == 0 ? 0 : (64 - differing.leadingZeroBitCount + 7) / 8
        if passes > 0 {
            var other = keys
            var counts = [Int](repeating: 0, count: 256)
            for pass in 0..<passes {
                let shift = UInt64(pass * 8)
                for i in 0..<256 { counts[i] = 0 }
                for k in keys { counts[Int((radix(k) >> shift) & 0xFF)] += 1 }
                var total = 0
                for i in 0..<256 { let c = counts[i]; counts[i] = total; total += c }
                for k in keys {
                    let b = Int((radix(k) >> shift) & 0xFF)
                    other[counts[b]] = k
                    counts[b] += 1
                }
                swap(&keys, &other)
            }
        }
        @inline(__always) func less(_ a: PackSortKey, _ b: PackSortKey) -> Bool { a.seq != b.seq ? a.seq < b.seq : a.id < b.id }
        keys.withUnsafeMutableBufferPointer { k in
            var start = 0
            while start < k.count {
                var end = start + 1
                while end < k.count, k[end].imageID == k[start].imageID { end += 1 }
                if end - start > 64 {  // a big image out of order: no quadratic insertion sort
                    k[start..<end].sort(by: less)
                } else if end - start > 1 {
                    for i in (start + 1)..<end {
                        let x = k[i]
                        var j = i
                        while j > start, less(x, k[j - 1]) { k[j] = k[j - 1]; j -= 1 }
                        k[j] = x
                    }
                }
                start = end
            }
        }
    }
}

/// What `AnnotationStore.merge` needs of a record.
protocol PackRecord {
    var id: Int64 { get }
    var imageID: Int64 { get }
    var seq: Int64 { get }
}

extension CaptionSpan: PackRecord {}
extension StoredBox: PackRecord {}

/// A record's place in image order, sorted instead of the (larger) records themselves.
struct PackSortKey {
    var imageID: Int64
    var seq: Int64
    var id: Int64
    var index: Int
}
