import ForgeCore
import GRDB
import Store

/// `context --all` as bytes: every image's context as one JSON line
/// `{"image_id":N,"type":"T","context":"…","dropped_boxes":D}`, byte-identical to formatting each
/// image with `SymbolicContextFormatter` and escaping it with `JSONText.appendString`.
///
/// Why not `AnnotationSource.forEachImage`: that builds a `String` per caption and an
/// `ImageAnnotations` per image, then formats and escapes them again. Here `images`,
/// `image_captions` and `image_boxes` (all keyed by image id, so scanned in key order with no
/// sort) are merged, and each JSON line is written straight from the packed bytes (escaping a
/// concatenation = concatenating escapes).
public enum ContextLines {
    public struct Summary: Sendable, Equatable {
        public var images: Int
        public var droppedBoxes: Int
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

            var typeEscaped: [UInt8] = []
            appendEscaped(Array(type.utf8), to: &typeEscaped)

            var out: [UInt8] = []
            out.reserveCapacity(chunkBytes + (1 << 16))
            var summary = Summary(images: 0, droppedBoxes: 0)
            let images = try RawStatement(handle, "SELECT id, width, height FROM images ORDER BY id")
            var captions = try PackedTableCursor(handle, table: "image_captions")
            var boxes = try PackedTableCursor(handle, table: "image_boxes", enabled: includeBoxes)
            do {
                while try images.nextRow() {
                    let id = images.int64(0)
                    let W = Double(images.int64(1)), H = Double(images.int64(2))
                    appendASCII("{\"image_id\":", to: &out)
                    appendDecimal(id, to: &out)
                    appendASCII(",\"type\":\"", to: &out)
                    out.append(contentsOf: typeEscaped)
                    appendASCII("\",\"context\":\"", to: &out)

                    var captionCount = 0
                    try captions.pack(of: id) { blob in
                        try AnnotationPack.forEachCaption(blob, imageID: id) { _, _, text in
                            if captionCount > 0 { appendASCII("\\n", to: &out) }
                            appendStrippedCaption(text, to: &out)
                            captionCount += 1
                        }
                    }

                    var dropped = 0
                    var wroteBox = false
                    try boxes.pack(of: id) { blob in
                        try AnnotationPack.forEachBox(blob, imageID: id) { b in
                            guard b.isDrawable else { dropped += 1; return }
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
            } catch var e as ForgeError where e.file == nil && e.kind == .database {
                e.file = database.path
                throw e
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
    private static func appendEscaped(_ bytes: [UInt8], to out: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { appendEscaped($0, to: &out) }
    }

    /// The same, copying each run of bytes that need no escape in one append (not byte by byte:
    /// this writes every caption of `context --all`).
    private static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var runStart = 0
        for i in 0..<bytes.count {
            let b = bytes[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C { continue }
            if i > runStart { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<i])) }
            runStart = i + 1
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
        if runStart < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...])) }
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
