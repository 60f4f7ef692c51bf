import Foundation
import Ingest
import Store

/// A small COCO pair — captions and instances with one dog box per image — written to `dir` and
/// ingested into `db`: the generate-stage tests' common fixture.
public enum TinyCOCO {
    /// Images 1…count; image i is `fileName(i)` with `caption(i)`; caption and box annotation ids
    /// are `firstIDs.captions + i` and `firstIDs.boxes + i`.
    public static func ingest(
        images count: Int, into db: ForgeDatabase, dir: String,
        fileName: (Int) -> String = { String(format: "%012d.jpg", $0) },
        caption: (Int) -> String, firstIDs: (captions: Int, boxes: Int) = (100, 200)
    ) throws {
        var images: [String] = [], captions: [String] = [], boxes: [String] = []
        for i in 1...count {
            images.append(#"{"id": \#(i), "file_name": "\#(fileName(i))", "width": 640, "height": 480}"#)
            captions.append(#"{"image_id": \#(i), "id": \#(firstIDs.captions + i), "caption": "\#(caption(i))"}"#)
            boxes.append(#"{"image_id": \#(i), "id": \#(firstIDs.boxes + i), "category_id": 18, "bbox": [10, 20, 100, 50], "iscrowd": 0, "area": 5000}"#)
        }
        let captionsPath = dir + "/c.json", instancesPath = dir + "/i.json"
        try #"{"images": [\#(images.joined(separator: ","))], "annotations": [\#(captions.joined(separator: ","))]}"#
            .write(toFile: captionsPath, atomically: true, encoding: .utf8)
        try #"{"images": [\#(images.joined(separator: ","))], "annotations": [\#(boxes.joined(separator: ","))], "categories": [{"id": 18, "name": "dog"}]}"#
            .write(toFile: instancesPath, atomically: true, encoding: .utf8)
        _ = try COCOIngestor(database: db).ingest(IngestOptions(captionsPath: captionsPath, instancesPath: instancesPath))
    }
}
