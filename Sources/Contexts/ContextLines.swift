import ForgeCore
import GRDB
import Store

/// `context --all` as bytes: every image's context as one JSON line
/// `{"image_id":N,"type":"T","context":"…","dropped_boxes":D}`, byte-identical to formatting each
/// image with `SymbolicContextFormatter` and escaping it with `JSONText.appendString`.
///
/// Why not `AnnotationSource.forEachImage`: reading captions/boxes `ORDER BY image_id` walks the
/// by-image index and visits a table page per row (rows are stored in annotation-id order), and
/// every row became a `String` twice (read, then context text) before being escaped. Here each
/// table is scanned once in storage order into a byte arena, the small row records are sorted by
/// (image_id, seq, id) in memory (~60 MB for train2017, well under the JSON size), and the JSON
/// line is written straight from those bytes (escaping a concatenation = concatenating escapes).
public enum ContextLines {
    public struct Summary: Sendable, Equatable {
        public var images: Int
        public var droppedBoxes: Int
    }

    private struct CaptionRecord {
        var imageID: Int64, seq: Int64, id: Int64
        var start: Int, count: Int
    }

    private struct BoxRecord {
        var imageID: Int64, seq: Int64, id: Int64, categoryID: Int64
        var x: Double, y: Double, w: Double, h: Double
    }

    /// Writes all lines through `emit` in chunks of about `chunkBytes` (each chunk ends on a line).
    public static func writeAll(database: ForgeDatabase, type: String, kind: ContextKind, chunkBytes: Int = 1 << 20,
                                emit: ([UInt8]) throws -> Void) throws -> Summary {
        try database.read { db in
            guard let handle = db.sqliteConnection else { throw ForgeError(.database, "no connection", file: database.path) }
            let includeBoxes = kind == .captionsAndBoxes

            // Category names, already JSON-escaped (as bytes inside the string literal).
            var categoryBytes: [Int64: [UInt8]] = [:]
            let cats = try RawStatement(handle, "SELECT id, name FROM categories")
            while try cats.nextRow() {
                var escaped: [UInt8] = []
                appendEscaped(Array(cats.text(1).utf8), to: &escaped)
                categoryBytes[cats.int64(0)] = escaped
            }
            let unknownCategory: [UInt8] = [UInt8(ascii: "?")]

            // Captions: one storage-order scan into an arena, then sorted records.
            var arena: [UInt8] = []
            var captions: [CaptionRecord] = []
            let capStmt = try RawStatement(handle, "SELECT image_id, seq, id, caption FROM captions")
            while try capStmt.nextRow() {
                let start = arena.count
                capStmt.withTextBytes(3) { arena.append(contentsOf: $0) }
                captions.append(CaptionRecord(imageID: capStmt.int64(0), seq: capStmt.int64(1), id: capStmt.int64(2),
                                              start: start, count: arena.count - start))
            }
            captions.sort { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }

            var boxes: [BoxRecord] = []
            if includeBoxes {
                let boxStmt = try RawStatement(handle, "SELECT image_id, seq, id, category_id, x, y, w, h FROM boxes")
                while try boxStmt.nextRow() {
                    boxes.append(BoxRecord(imageID: boxStmt.int64(0), seq: boxStmt.int64(1), id: boxStmt.int64(2),
                                           categoryID: boxStmt.int64(3), x: boxStmt.double(4), y: boxStmt.double(5),
                                           w: boxStmt.double(6), h: boxStmt.double(7)))
                }
                boxes.sort { ($0.imageID, $0.seq, $0.id) < ($1.imageID, $1.seq, $1.id) }
            }

            var typeEscaped: [UInt8] = []
            appendEscaped(Array(type.utf8), to: &typeEscaped)

            var out: [UInt8] = []
            out.reserveCapacity(chunkBytes + (1 << 16))
            var summary = Summary(images: 0, droppedBoxes: 0)
            var ci = 0, bi = 0
            let images = try RawStatement(handle, "SELECT id, width, height FROM images ORDER BY id")
            try arena.withUnsafeBufferPointer { arenaBytes in
                while try images.nextRow() {
                    let id = images.int64(0)
                    let W = Double(images.int64(1)), H = Double(images.int64(2))
                    appendASCII("{\"image_id\":", to: &out)
                    appendDecimal(id, to: &out)
                    appendASCII(",\"type\":\"", to: &out)
                    out.append(contentsOf: typeEscaped)
                    appendASCII("\",\"context\":\"", to: &out)

                    while ci < captions.count, captions[ci].imageID < id { ci += 1 }  // captions of unknown images
                    var captionCount = 0
                    while ci < captions.count, captions[ci].imageID == id {
                        let c = captions[ci]
                        if captionCount > 0 { appendASCII("\\n", to: &out) }
                        appendStrippedCaption(UnsafeBufferPointer(rebasing: arenaBytes[c.start..<(c.start + c.count)]), to: &out)
                        captionCount += 1
                        ci += 1
                    }

                    var dropped = 0
                    if includeBoxes {
                        while bi < boxes.count, boxes[bi].imageID < id { bi += 1 }
                        var wroteBox = false
                        while bi < boxes.count, boxes[bi].imageID == id {
                            let b = boxes[bi]
                            bi += 1
                            guard b.w > 0, b.h > 0 else { dropped += 1; continue }
                            if !wroteBox {
                                if captionCount > 0 { appendASCII("\\n\\n", to: &out) }
                                wroteBox = true
                            } else {
                                appendASCII("\\n", to: &out)
                            }
                            out.append(contentsOf: categoryBytes[b.categoryID] ?? unknownCategory)
                            appendASCII(": [", to: &out)
                            appendCoordinate(SymbolicContextFormatter.clamp01(b.x / W), to: &out)
                            appendASCII(", ", to: &out)
                            appendCoordinate(SymbolicContextFormatter.clamp01(b.y / H), to: &out)
                            appendASCII(", ", to: &out)
                            appendCoordinate(SymbolicContextFormatter.clamp01((b.x + b.w) / W), to: &out)
                            appendASCII(", ", to: &out)
                            appendCoordinate(SymbolicContextFormatter.clamp01((b.y + b.h) / H), to: &out)
                            out.append(UInt8(ascii: "]"))
                        }
                    }
                    appendASCII("\",\"dropped_boxes\":", to: &out)
                    appendDecimal(Int64(dropped), to: &out)
                    appendASCII("}\n", to: &out)
                    summary.images += 1
                    summary.droppedBoxes += dropped
                    if out.count >= chunkBytes {
                        try emit(out)
                        out.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !out.isEmpty { try emit(out) }
            return summary
        }
    }

    @inline(__always) private static func appendASCII(_ s: StaticString, to out: inout [UInt8]) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// What `"\(v)"` writes for an integer.
    private static func appendDecimal(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(contentsOf: String(v).utf8); return }  // never for COCO ids; keep it simple
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = v, count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(truncatingIfNeeded: 0x30 + n % 10)
                n /= 10
                count += 1
            } while n > 0
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }

    /// `PythonText.strip` then JSON escaping. Fast path: printable-ASCII ends and pure ASCII
    /// (strip is the identity, bytes are the text); otherwise through `String` exactly as the
    /// per-image path does (invalid UTF-8 repaired the same way by `String(decoding:)`).
    private static func appendStrippedCaption(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        if let first = bytes.first, let last = bytes.last,
           (0x21..<0x80).contains(first), (0x21..<0x80).contains(last), !bytes.contains(where: { $0 >= 0x80 }) {
            appendEscaped(bytes, to: &out)
            return
        }
        let stripped = PythonText.strip(String(decoding: bytes, as: UTF8.self))
        appendEscaped(Array(stripped.utf8), to: &out)
    }

    /// `JSONText.appendString`'s escaping, without the quotes.
    private static func appendEscaped<C: Collection>(_ bytes: C, to out: inout [UInt8]) where C.Element == UInt8 {
        for b in bytes {
            if b >= 0x20 && b != 0x22 && b != 0x5C { out.append(b); continue }
            out.append(UInt8(ascii: "\\"))
            switch b {
            case 0x22: out.append(0x22)
            case 0x5C: out.append(0x5C)
            case 0x0A: out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "f"))
            default:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(b >> 4)], hex[Int(b & 15)]])
            }
        }
    }

    /// `PythonFloat.roundedRepr(v)` as bytes; the exact-thousandths path for v in [0, 1].
    @inline(__always) private static func appendCoordinate(_ v: Double, to out: inout [UInt8]) {
        guard v >= 0, v <= 1 else { out.append(contentsOf: PythonFloat.roundedRepr(v).utf8); return }
        let k = PythonFloat.roundedThousandths(v)
        if k >= 1000 { appendASCII("1.0", to: &out); return }
        if k == 0 { appendASCII("0.0", to: &out); return }
        out.append(UInt8(ascii: "0")); out.append(UInt8(ascii: "."))
        out.append(UInt8(truncatingIfNeeded: 0x30 + k / 100))
        if k % 100 != 0 { out.append(UInt8(truncatingIfNeeded: 0x30 + (k / 10) % 10)) }
        if k % 10 != 0 { out.append(UInt8(truncatingIfNeeded: 0x30 + k % 10)) }
    }
}
