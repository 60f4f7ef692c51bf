import ForgeCore
import Store

/// One COCO file's records as parsed, before anything touches SQLite: a `COCOSink` that only
/// buffers and does the checks the file alone can answer. The store-dependent checks (image ids
/// listed by another file, categories defined elsewhere) and the writes happen later in
/// `StoreWriter` on the database thread — which is what lets two files parse on two threads.
///
/// Texts stay spans of the memory-mapped file (`COCOText.raw`; the few with escapes or non-ASCII
/// are decoded into `arena`), so the buffers are small (~80 MB for train2017) and nothing is
/// copied twice. Captions and boxes are already the records `AnnotationStore` packs.
struct COCORecordBuffer: COCOSink {
    struct PendingImage { var id: Int64; var seq: Int; var fileName: COCOText; var width, height: Int64 }
    struct PendingCategory { var id: Int64; var name: COCOText; var supercategory: COCOText? }

    let kind: COCOFileKind
    var report: IngestFileReport
    /// id → (width, height) of the images this file lists.
    var imageSizes: [Int64: (Int64, Int64)] = [:]
    var imagesSectionSeen = false
    var annotationsBeforeImages = false
    /// Some annotation references an image id this file does not list: the writer checks those
    /// against the store (another file of the same ingest, or an earlier ingest).
    var referencesOtherImages = false
    var categoryIDsUsed: Set<Int64> = []
    var categoryIDsDefined: Set<Int64> = []
    var images: [PendingImage] = []
    var captions: [CaptionSpan] = []
    var boxes: [StoredBox] = []
    /// Decoded caption texts (`COCOText.decoded`), at addresses that stay put.
    let arena = ByteArena()
    var categories: [PendingCategory] = []

    init(path: String, kind: COCOFileKind, size: Int) {
        self.kind = kind
        report = IngestFileReport(path: path, kind: kind.rawValue, sizeBytes: size)
        imageSizes.reserveCapacity(1 << 17)
        // train2017 proportions per byte of JSON, so the big arrays grow at most once or twice.
        if kind == .captions { captions.reserveCapacity(size / 160) } else { boxes.reserveCapacity(size / 560) }
        images.reserveCapacity(1 << 17)
    }

    mutating func beginSection(_ name: String) throws {
        if name == "images" { imagesSectionSeen = true }
        if name == "annotations" && !imagesSectionSeen { annotationsBeforeImages = true }
    }

    mutating func image(id: Int64, fileName: COCOText, width: Int64, height: Int64, index: Int) throws {
        images.append(PendingImage(id: id, seq: index, fileName: fileName, width: width, height: height))
        imageSizes[id] = (width, height)
        report.images += 1
    }

    mutating func caption(id: Int64, imageID: Int64, text: COCOText, index: Int) throws {
        if !annotationsBeforeImages, imageSizes[imageID] == nil { referencesOtherImages = true }
        let bytes: UnsafeBufferPointer<UInt8>
        switch text {
        case .raw(let p, let n): bytes = UnsafeBufferPointer(start: p, count: n)
        case .decoded(let s): bytes = arena.store(s)
        }
        captions.append(CaptionSpan(id: id, imageID: imageID, seq: Int64(index), text: bytes))
        report.captions += 1
    }

    mutating func box(id: Int64, imageID: Int64, categoryID: Int64, bbox: (Double, Double, Double, Double), isCrowd: Int64, area: Double, index: Int) throws {
        let (x, y, w, h) = bbox
        let size = imageSizes[imageID]
        if size == nil, !annotationsBeforeImages { referencesOtherImages = true }
        if w <= 0 || h <= 0 {
            report.notices["degenerate_box", default: 0] += 1  // kept; contexts drop and count them
        } else if let (W, H) = size, x < 0 || y < 0 || x + w > Double(W) || y + h > Double(H) {
            report.notices["box_outside_image", default: 0] += 1  // kept; contexts clamp to [0, 1]
        }
        boxes.append(StoredBox(id: id, imageID: imageID, categoryID: categoryID, seq: Int64(index),
                               x: x, y: y, w: w, h: h, isCrowd: isCrowd, area: area))
        categoryIDsUsed.insert(categoryID)
        report.boxes += 1
    }

    /// A buffer for the second half of an instances file's annotations (`AnnotationTailParse`):
    /// same images known, nothing recorded yet. None for captions (their texts would live in the
    /// fork's arena) or when annotations came before the images (the checks need every image).
    func forkForAnnotationTail() -> COCORecordBuffer? {
        guard kind == .instances, imagesSectionSeen, !annotationsBeforeImages else { return nil }
        var tail = COCORecordBuffer(path: report.path, kind: kind, size: report.sizeBytes / 2)
        tail.imageSizes = imageSizes
        tail.imagesSectionSeen = true
        tail.images = []
        return tail
    }

    mutating func absorbAnnotationTail(_ tail: COCORecordBuffer, indexOffset: Int) {
        let offset = Int64(indexOffset)
        boxes.reserveCapacity(boxes.count + tail.boxes.count)
        for var b in tail.boxes {
            b.seq += offset
            boxes.append(b)
        }
        report.boxes += tail.report.boxes
        for (k, v) in tail.report.notices { report.notices[k, default: 0] += v }
        categoryIDsUsed.formUnion(tail.categoryIDsUsed)
        if tail.referencesOtherImages { referencesOtherImages = true }
    }

    mutating func category(id: Int64, name: COCOText, supercategory: COCOText?, index: Int) throws {
        categories.append(PendingCategory(id: id, name: name, supercategory: supercategory))
        categoryIDsDefined.insert(id)
        report.categories += 1
    }
}
