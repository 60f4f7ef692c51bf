import ForgeCore

#if _endian(big)
#error("AnnotationPack writes box records as host-order words: little-endian hosts only")
#endif

/// A COCO caption as the store keeps it, with its text as owned Swift string.
public struct StoredCaption: Sendable, Equatable {
    /// COCO annotation id (unique among captions).
    public var id: Int64
    public var imageID: Int64
    /// Position in the file it came from: captions of an image are kept in (seq, id) order.
    public var seq: Int64
    public var text: String

    public init(id: Int64, imageID: Int64, seq: Int64, text: String) {
        self.id = id; self.imageID = imageID; self.seq = seq; self.text = text
    }
}

/// A caption whose UTF-8 text lives in memory the caller keeps alive (a mapped COCO file, a
/// `ByteArena`, a SQLite blob being read): what ingest writes without copying the text.
public struct CaptionSpan {
    public var id: Int64
    public var imageID: Int64
    public var seq: Int64
    public var text: UnsafeBufferPointer<UInt8>

    public init(id: Int64, imageID: Int64, seq: Int64, text: UnsafeBufferPointer<UInt8>) {
        self.id = id; self.imageID = imageID; self.seq = seq; self.text = text
    }
}

/// A COCO instance annotation as the store keeps it: `[x, y, w, h]` in pixels, as in the file.
public struct StoredBox: Sendable, Equatable {
    /// COCO annotation id (unique among boxes).
    public var id: Int64
    public var imageID: Int64
    public var categoryID: Int64
    /// Position in the file it came from: boxes of an image are kept in (seq, id) order.
    public var seq: Int64
    public var isCrowd: Int64
    public var x, y, w, h: Double
    public var area: Double

    public init(id: Int64, imageID: Int64, categoryID: Int64, seq: Int64, x: Double, y: Double, w: Double, h: Double,
                isCrowd: Int64 = 0, area: Double = 0) {
        self.id = id; self.imageID = imageID; self.categoryID = categoryID; self.seq = seq
        self.isCrowd = isCrowd; self.x = x; self.y = y; self.w = w; self.h = h; self.area = area
    }

    /// Contexts show only boxes with a positive width and height; the others are dropped (and counted).
    @inline(__always) public var isDrawable: Bool { w > 0 && h > 0 }
}

/// The packed form of one image's captions or boxes: the `packed` BLOB of `image_captions` and
/// `image_boxes` (one row per image instead of one row per annotation; see `ForgeSchema`).
/// Little-endian, records in (seq, id) order — the order contexts list them in:
///
///     captions: u8 version (1) · u32 count · count × (i64 id · i64 seq · u32 n · n bytes of UTF-8)
///     boxes:    u8 version (1) · u32 count · count × (i64 id · i64 seq · i64 category_id · i64 iscrowd
///                                                     · f64 x · f64 y · f64 w · f64 h · f64 area)
///
/// Doubles are stored as their bit patterns, so a stored box is exactly the parsed one. Every
/// reader goes through `forEachCaption` / `forEachBox`, which check every length against the blob
/// (a damaged row is a `ForgeError`, never a read outside it).
public enum AnnotationPack {
    public static let version: UInt8 = 1
    static let headerBytes = 5
    static let captionHeaderBytes = 20
    public static let boxRecordBytes = 72

    // MARK: encoding

    /// Appends the pack of `captions` (already in (seq, id) order) to `out`.
    public static func appendCaptions<C: Collection>(_ captions: C, to out: inout [UInt8]) where C.Element == CaptionSpan {
        var size = headerBytes
        for c in captions { size += captionHeaderBytes + c.text.count }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: size))
        out.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress! + start
            p.storeBytes(of: version, as: UInt8.self)
            p.storeBytes(of: UInt32(truncatingIfNeeded: captions.count).littleEndian, toByteOffset: 1, as: UInt32.self)
            var at = headerBytes
            for c in captions {
                p.storeBytes(of: UInt64(bitPattern: c.id).littleEndian, toByteOffset: at, as: UInt64.self)
                p.storeBytes(of: UInt64(bitPattern: c.seq).littleEndian, toByteOffset: at + 8, as: UInt64.self)
                p.storeBytes(of: UInt32(truncatingIfNeeded: c.text.count).littleEndian, toByteOffset: at + 16, as: UInt32.self)
                at += captionHeaderBytes
                if let src = c.text.baseAddress, c.text.count > 0 { (p + at).copyMemory(from: src, byteCount: c.text.count) }
                at += c.text.count
            }
        }
    }

    /// Appends the pack of `boxes` (already in (seq, id) order) to `out`.
    public static func appendBoxes<C: Collection>(_ boxes: C, to out: inout [UInt8]) where C.Element == StoredBox {
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: headerBytes + boxes.count * boxRecordBytes))
        out.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress! + start
            p.storeBytes(of: version, as: UInt8.self)
            p.storeBytes(of: UInt32(truncatingIfNeeded: boxes.count).littleEndian, toByteOffset: 1, as: UInt32.self)
            var at = headerBytes
            for b in boxes {
                let words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (
                    UInt64(bitPattern: b.id), UInt64(bitPattern: b.seq), UInt64(bitPattern: b.categoryID), UInt64(bitPattern: b.isCrowd),
                    b.x.bitPattern, b.y.bitPattern, b.w.bitPattern, b.h.bitPattern, b.area.bitPattern)
                withUnsafeBytes(of: words) { (p + at).copyMemory(from: $0.baseAddress!, byteCount: boxRecordBytes) }  // little-endian host
                at += boxRecordBytes
            }
        }
    }

    // MARK: decoding

    /// Calls `body(id, seq, text)` for each caption of a pack, in stored order. `text` points into
    /// `blob`: valid only inside `body`. `imageID` is for the error message.
    @inline(__always)
    public static func forEachCaption(_ blob: UnsafeRawBufferPointer, imageID: Int64,
                                      _ body: (_ id: Int64, _ seq: Int64, _ text: UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let count = try header(blob, imageID: imageID, table: "image_captions")
        guard count > 0, let base = blob.baseAddress else { return }
        var at = headerBytes
        for k in 0..<count {
            guard blob.count - at >= captionHeaderBytes else { throw corrupt("image_captions", imageID, "caption \(k) of \(count) is cut off") }
            let id = Int64(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self)))
            let seq = Int64(bitPattern: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at + 8, as: UInt64.self)))
            let n = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: at + 16, as: UInt32.self)))
            at += captionHeaderBytes
            guard blob.count - at >= n else { throw corrupt("image_captions", imageID, "caption \(k) of \(count) claims \(n) bytes, \(blob.count - at) left") }
            try body(id, seq, UnsafeBufferPointer(start: (base + at).assumingMemoryBound(to: UInt8.self), count: n))
            at += n
        }
        guard at == blob.count else { throw corrupt("image_captions", imageID, "\(blob.count - at) bytes after the last caption") }
    }

    /// Calls `body` for each box of a pack, in stored order (`imageID` fills `StoredBox.imageID`).
    @inline(__always)
    public static func forEachBox(_ blob: UnsafeRawBufferPointer, imageID: Int64, _ body: (StoredBox) throws -> Void) throws {
        let count = try header(blob, imageID: imageID, table: "image_boxes")
        guard blob.count == headerBytes + count * boxRecordBytes else {
            throw corrupt("image_boxes", imageID, "\(blob.count) bytes for \(count) boxes (expected \(headerBytes + count * boxRecordBytes))")
        }
        guard count > 0, let base = blob.baseAddress else { return }
        var at = headerBytes
        @inline(__always) func word(_ k: Int) -> UInt64 { UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at + 8 * k, as: UInt64.self)) }
        for _ in 0..<count {
            try body(StoredBox(id: Int64(bitPattern: word(0)), imageID: imageID, categoryID: Int64(bitPattern: word(2)),
                               seq: Int64(bitPattern: word(1)),
                               x: Double(bitPattern: word(4)), y: Double(bitPattern: word(5)),
                               w: Double(bitPattern: word(6)), h: Double(bitPattern: word(7)),
                               isCrowd: Int64(bitPattern: word(3)), area: Double(bitPattern: word(8))))
            at += boxRecordBytes
        }
    }

    /// The record count of a pack, after checking its version.
    @inline(__always)
    static func header(_ blob: UnsafeRawBufferPointer, imageID: Int64, table: String) throws -> Int {
        guard blob.count >= headerBytes, let base = blob.baseAddress else {
            throw corrupt(table, imageID, "\(blob.count) bytes, shorter than the \(headerBytes)-byte header")
        }
        let v = base.load(as: UInt8.self)
        guard v == version else { throw corrupt(table, imageID, "pack format version \(v), this build reads version \(version)") }
        return Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 1, as: UInt32.self)))
    }

    static func corrupt(_ table: String, _ imageID: Int64, _ why: String) -> ForgeError {
        ForgeError(.database, "stored annotations are damaged: \(why)", location: "\(table), image_id \(imageID)")
    }
}

/// Bytes that must stay at one address while records point at them (decoded caption texts
/// during ingest, texts read back from packs while merging). Grows in chunks; never moves.
public final class ByteArena {
    private var chunks: [UnsafeMutableRawBufferPointer] = []
    private var used = 0
    private let chunkBytes: Int

    public init(chunkBytes: Int = 1 << 20) { self.chunkBytes = chunkBytes }

    deinit { for c in chunks { c.deallocate() } }

    /// A copy of `bytes` that lives as long as the arena.
    public func store(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        let n = bytes.count
        if n == 0 { return UnsafeBufferPointer(start: nil, count: 0) }
        if chunks.isEmpty || chunks[chunks.count - 1].count - used < n {
            chunks.append(.allocate(byteCount: max(chunkBytes, n), alignment: 8))
            used = 0
        }
        let dst = chunks[chunks.count - 1].baseAddress! + used
        dst.copyMemory(from: bytes.baseAddress!, byteCount: n)
        used += n
        return UnsafeBufferPointer(start: dst.assumingMemoryBound(to: UInt8.self), count: n)
    }

    public func store(_ s: String) -> UnsafeBufferPointer<UInt8> {
        var s = s
        return s.withUTF8 { store($0) }
    }
}
