import ForgeCore
import Foundation
import Store

/// A scratch folder per test, removed at the end.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "llava-forge-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String, _ contents: String) -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(contents.utf8))
        return p
    }
    func file(_ name: String, bytes: [UInt8]) -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum COCOSamples {
    static let images = """
    [{"license": 1, "file_name": "000000000001.jpg", "coco_url": "http://x", "height": 480, "width": 640, "date_captured": "2013-11-14 11:18:45", "flickr_url": "", "id": 1},
     {"license": 1, "file_name": "000000000002.jpg", "height": 100, "width": 200, "id": 2}]
    """
    static let captions = """
    {"info": {"description": "test", "year": 2017}, "licenses": [{"url": "u", "id": 1, "name": "n"}], "images": \(images),
     "annotations": [{"image_id": 1, "id": 10, "caption": "A man riding a horse."}, {"image_id": 2, "id": 11, "caption": "Caf\\u00e9 \\"x\\""},
                     {"image_id": 1, "id": 12, "caption": "Second."}]}
    """
    static let instances = """
    {"info": {}, "licenses": [], "images": \(images),
     "annotations": [{"segmentation": [[1.0, 2.0, 3.0, 4.0]], "area": 100.5, "iscrowd": 0, "image_id": 1, "bbox": [10.5, 20.25, 300, 200], "category_id": 1, "id": 100},
                     {"segmentation": {"counts": [1, 2], "size": [480, 640]}, "area": 10, "iscrowd": 1, "image_id": 2, "bbox": [0, 0, 50, 40], "category_id": 18, "id": 101},
                     {"segmentation": [[0, 0]], "area": 5, "iscrowd": 0, "image_id": 1, "bbox": [600, 400, 80, 100], "category_id": 18, "id": 102}],
     "categories": [{"supercategory": "person", "id": 1, "name": "person"}, {"supercategory": "animal", "id": 18, "name": "dog"}]}
    """
}
