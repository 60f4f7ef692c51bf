import ForgeCore
import Foundation

/// Which official COCO annotation file a path holds.
public enum COCOFileKind: String, Sendable {
    case captions, instances
}

/// A string as read from the file: a span into the mapped bytes (ASCII, no escapes: bound to
/// SQLite without a copy) or a decoded Swift string.
public enum COCOText {
    case raw(UnsafePointer<UInt8>, Int)
    case decoded(String)

    public var string: String {
        switch self {
        case .raw(let p, let n): return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
        case .decoded(let s): return s
        }
    }
}

/// Receives records in file order. The reader validates shape and types; the sink decides policy.
public protocol COCOSink {
    mutating func beginSection(_ name: String) throws
    mutating func image(id: Int64, fileName: COCOText, width: Int64, height: Int64, index: Int) throws
    mutating func caption(id: Int64, imageID: Int64, text: COCOText, index: Int) throws
    mutating func box(id: Int64, imageID: Int64, categoryID: Int64, bbox: (Double, Double, Double, Double), isCrowd: Int64, area: Double, index: Int) throws
    mutating func category(id: Int64, name: COCOText, supercategory: COCOText?, index: Int) throws

    /// An empty sink in this one's state, to receive the tail of the annotations array parsed on
    /// another thread (`AnnotationTailParse`), or nil when the records must arrive in one sink.
    func forkForAnnotationTail() -> Self?
    /// Takes the records of a fork that parsed the tail of the annotations array, as if they had
    /// arrived here: their indexes start at `indexOffset`.
    mutating func absorbAnnotationTail(_ tail: Self, indexOffset: Int)
}

extension COCOSink {
    public func forkForAnnotationTail() -> Self? { nil }
    public mutating func absorbAnnotationTail(_ tail: Self, indexOffset: Int) {}
}

/// Streams one COCO JSON file (captions_*.json or instances_*.json) into a sink: only the fields
/// the recipe needs are decoded; everything else (info, licenses, segmentation, …) is skipped.
public struct COCOReader {
    public let kind: COCOFileKind
    /// An instances file's annotations array at least this large (bytes) has its second half
    /// parsed on another thread (`AnnotationTailParse`); nil: never.
    public var splitAnnotationsAbove: Int?

    public init(kind: COCOFileKind, splitAnnotationsAbove: Int? = nil) {
        self.kind = kind
        self.splitAnnotationsAbove = splitAnnotationsAbove
    }

    public func read<S: COCOSink>(_ file: MappedFile, into sink: inout S) throws {
        guard let base = file.base, file.count > 0 else {
            throw ForgeError(.badInput, "file is empty, expected a COCO \(kind.rawValue) JSON object", file: file.path)
        }
        var scanner = JSONScanner(base: base, count: file.count, file: file.path)
        guard scanner.peek() == 0x7B else {
            throw scanner.error("expected a JSON object at the top level (a COCO \(kind.rawValue) file)")
        }
        var sawSection = false
        try scanner.forEachMember { sc, key in
            if sc.span(key, equals: "images") {
                sawSection = true
                try sink.beginSection("images")
                try sc.forEachElement(record: "images") { sc, i in
                    try readImage(&sc, index: i, sink: &sink)
                    if i & 4095 == 0 { file.release(upTo: sc.pos) }
                }
            } else if sc.span(key, equals: "annotations") {
                sawSection = true
                try sink.beginSection("annotations")
                if kind == .instances, let threshold = splitAnnotationsAbove, let tailSink = sink.forkForAnnotationTail(),
                   let tail = AnnotationTailParse.start(after: &sc, file: file, reader: self, sink: tailSink, minimumBytes: threshold) {
                    try tail.readHead(&sc, file: file, reader: self, sink: &sink)
                } else {
                    try sc.forEachElement(record: "annotations") { sc, i in
                        try readAnnotation(&sc, index: i, sink: &sink)
                        if i & 4095 == 0 { file.release(upTo: sc.pos) }
                    }
                }
            } else if sc.span(key, equals: "categories") {
                try sink.beginSection("categories")
                try sc.forEachElement(record: "categories") { sc, i in try readCategory(&sc, index: i, sink: &sink) }
            } else {
                try sc.skipValue()
            }
        }
        if let c = scanner.peek() {
            throw scanner.error("unexpected \(scanner.describeByte(c)) after the top-level object")
        }
        guard sawSection else {
            throw ForgeError(.badInput, "no \"images\" or \"annotations\" array: not a COCO \(kind.rawValue) file", file: file.path)
        }
    }

    // MARK: records

    private func text(_ sc: inout JSONScanner, _ record: RecordPath) throws -> COCOText {
        let span = try sc.readStringSpan(record: record)
        if span.isASCII && !span.hasEscapes { return .raw(sc.base + span.start, span.count) }
        return .decoded(try sc.decode(span, record: record))
    }

    private func missing(_ sc: JSONScanner, _ field: String, _ record: RecordPath, at start: Int) -> ForgeError {
        sc.error("missing required field \"\(field)\"", at: start, record: record)
    }

    private func readImage<S: COCOSink>(_ sc: inout JSONScanner, index: Int, sink: inout S) throws {
        let record = RecordPath(section: "images", index: index)
        let start = sc.pos
        var id: Int64?, width: Int64?, height: Int64?
        var fileName: COCOText?
        try sc.forEachMember(record: record) { sc, key in
            if sc.span(key, equals: "id") { id = try sc.readInt(record: record.field("id")) }
            else if sc.span(key, equals: "file_name") { fileName = try text(&sc, record.field("file_name")) }
            else if sc.span(key, equals: "width") { width = try sc.readInt(record: record.field("width")) }
            else if sc.span(key, equals: "height") { height = try sc.readInt(record: record.field("height")) }
            else { try sc.skipValue(record: record) }
        }
        guard let id else { throw missing(sc, "id", record, at: start) }
        guard let fileName else { throw missing(sc, "file_name", record, at: start) }
        guard let width else { throw missing(sc, "width", record, at: start) }
        guard let height else { throw missing(sc, "height", record, at: start) }
        guard width > 0, height > 0 else {
            throw sc.error("image \(id) has non-positive size \(width)x\(height)", at: start, record: record)
        }
        try sink.image(id: id, fileName: fileName, width: width, height: height, index: index)
    }

    /// One element of "annotations": a caption or a box, by the file's kind.
    @inline(__always)
    func readAnnotation<S: COCOSink>(_ sc: inout JSONScanner, index: Int, sink: inout S) throws {
        if kind == .captions { try readCaption(&sc, index: index, sink: &sink) } else { try readBox(&sc, index: index, sink: &sink) }
    }

    private func readCaption<S: COCOSink>(_ sc: inout JSONScanner, index: Int, sink: inout S) throws {
        let record = RecordPath(section: "annotations", index: index)
        let start = sc.pos
        var id: Int64?, imageID: Int64?
        var caption: COCOText?
        var sawBBox = false
        try sc.forEachMember(record: record) { sc, key in
            if sc.span(key, equals: "caption") { caption = try text(&sc, record.field("caption")) }
            else if sc.span(key, equals: "image_id") { imageID = try sc.readInt(record: record.field("image_id")) }
            else if sc.span(key, equals: "id") { id = try sc.readInt(record: record.field("id")) }
            else {
                if sc.span(key, equals: "bbox") { sawBBox = true }
                try sc.skipValue(record: record)
            }
        }
        guard let caption else {
            if sawBBox { throw sc.error("annotation has a \"bbox\" but no \"caption\": this looks like an instances file; pass it with --instances", at: start, record: record) }
            throw missing(sc, "caption", record, at: start)
        }
        guard let imageID else { throw missing(sc, "image_id", record, at: start) }
        guard let id else { throw missing(sc, "id", record, at: start) }
        try sink.caption(id: id, imageID: imageID, text: caption, index: index)
    }

    private func readBox<S: COCOSink>(_ sc: inout JSONScanner, index: Int, sink: inout S) throws {
        let record = RecordPath(section: "annotations", index: index)
        let start = sc.pos
        var id: Int64?, imageID: Int64?, categoryID: Int64?
        var bbox: (Double, Double, Double, Double)?
        var isCrowd: Int64 = 0
        var area = 0.0
        var sawCaption = false
        try sc.forEachMember(record: record) { sc, key in
            if sc.span(key, equals: "segmentation") { try sc.skipValue(record: record.field("segmentation")) }
            else if sc.span(key, equals: "bbox") { bbox = try readBBox(&sc, record.field("bbox")) }
            else if sc.span(key, equals: "image_id") { imageID = try sc.readInt(record: record.field("image_id")) }
            else if sc.span(key, equals: "category_id") { categoryID = try sc.readInt(record: record.field("category_id")) }
            else if sc.span(key, equals: "id") { id = try sc.readInt(record: record.field("id")) }
            else if sc.span(key, equals: "iscrowd") {
                if sc.peek() == 0x74 || sc.peek() == 0x66 { isCrowd = try sc.readBool(record: record.field("iscrowd")) ? 1 : 0 }
                else { isCrowd = try sc.readInt(record: record.field("iscrowd")) }
            }
            else if sc.span(key, equals: "area") { area = try sc.readNumber(record: record.field("area")) }
            else {
                if sc.span(key, equals: "caption") { sawCaption = true }
                try sc.skipValue(record: record)
            }
        }
        guard let bbox else {
            if sawCaption { throw sc.error("annotation has a \"caption\" but no \"bbox\": this looks like a captions file; pass it with --captions", at: start, record: record) }
            throw missing(sc, "bbox", record, at: start)
        }
        guard let imageID else { throw missing(sc, "image_id", record, at: start) }
        guard let categoryID else { throw missing(sc, "category_id", record, at: start) }
        guard let id else { throw missing(sc, "id", record, at: start) }
        try sink.box(id: id, imageID: imageID, categoryID: categoryID, bbox: bbox, isCrowd: isCrowd, area: area, index: index)
    }

    private func readBBox(_ sc: inout JSONScanner, _ record: RecordPath) throws -> (Double, Double, Double, Double) {
        var v: (Double, Double, Double, Double) = (0, 0, 0, 0)  // a tuple, not an array: no allocation per box
        var count = 0
        let start = sc.pos
        try sc.forEachElement(record: record) { sc, _ in
            let x = try sc.readNumber(record: record)
            switch count {
            case 0: v.0 = x
            case 1: v.1 = x
            case 2: v.2 = x
            case 3: v.3 = x
            default: break
            }
            count += 1
        }
        guard count == 4 else { throw sc.error("bbox must have 4 numbers [x, y, w, h], found \(count)", at: start, record: record) }
        return v
    }

    private func readCategory<S: COCOSink>(_ sc: inout JSONScanner, index: Int, sink: inout S) throws {
        let record = RecordPath(section: "categories", index: index)
        let start = sc.pos
        var id: Int64?
        var name: COCOText?, superName: COCOText?
        try sc.forEachMember(record: record) { sc, key in
            if sc.span(key, equals: "id") { id = try sc.readInt(record: record.field("id")) }
            else if sc.span(key, equals: "name") { name = try text(&sc, record.field("name")) }
            else if sc.span(key, equals: "supercategory") { superName = try text(&sc, record.field("supercategory")) }
            else { try sc.skipValue(record: record) }
        }
        guard let id else { throw missing(sc, "id", record, at: start) }
        guard let name else { throw missing(sc, "name", record, at: start) }
        try sink.category(id: id, name: name, supercategory: superName, index: index)
    }
}
