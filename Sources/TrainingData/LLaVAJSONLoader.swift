import ForgeCore
import Foundation

/// LLaVA instruction data from a JSON file: a JSON array of `{"id", "image"?, "conversations"}`
/// records (LLaVA's release format, what `llava-forge export` writes) or JSON Lines (one record
/// per line, `export --format jsonl`). Each record is cut out of the file and parsed on its own, so
/// a malformed one is reported by record number and line instead of as "somewhere in the file".
public enum LLaVAJSONLoader {
    public static func load(path: String, imagesFolder: String?) throws -> [TrainingExample] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ForgeError(.io, "cannot read the data file: \(error.localizedDescription)", file: path)
        }
        let bytes = [UInt8](data)
        var examples: [TrainingExample] = []
        for (index, record) in try records(bytes, file: path).enumerated() {
            let location = "record \(index) (line \(record.line))"
            let object: Any
            do { object = try JSONSerialization.jsonObject(with: Data(bytes[record.range]), options: [.fragmentsAllowed]) } catch {
                throw ForgeError(.badInput, "malformed JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error.localizedDescription)",
                                 file: path, location: location)
            }
            examples.append(try example(object, file: path, location: location, imagesFolder: imagesFolder))
        }
        return examples
    }

    static func example(_ object: Any, file: String, location: String, imagesFolder: String?) throws -> TrainingExample {
        guard let record = object as? [String: Any] else {
            throw ForgeError(.badInput, "a record must be a JSON object", file: file, location: location)
        }
        let id: String
        switch record["id"] {
        case let s as String: id = s
        case let n as NSNumber: id = n.stringValue
        case nil: id = location
        default: throw ForgeError(.badInput, "'id' must be a string or a number", file: file, location: location + ".id")
        }
        var imagePath: String?
        if let image = record["image"], !(image is NSNull) {
            guard let name = image as? String else {
                throw ForgeError(.badInput, "'image' must be a file name", file: file, location: location + ".image")
            }
            imagePath = try TrainingExample.resolveImage(name, folder: imagesFolder, file: file, location: location)
        }
        let turns = try TrainingExample.turns(fromJSON: record["conversations"], file: file, location: location)
        return TrainingExample(id: id, type: record["type"] as? String, imagePath: imagePath, turns: turns)
    }

    /// Byte ranges of the top-level records with the line each starts on. A file starting with
    /// `[` is one array (elements split by a string-aware bracket counter); otherwise every
    /// non-blank line is a record.
    static func records(_ bytes: [UInt8], file: String) throws -> [(range: Range<Int>, line: Int)] {
        var i = 0, line = 1
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D {
                if bytes[i] == 0x0A { line += 1 }
                i += 1
            }
        }
        skipSpace()
        guard i < bytes.count else { throw ForgeError(.badInput, "the data file is empty", file: file) }
        var out: [(Range<Int>, Int)] = []
        if bytes[i] != UInt8(ascii: "[") {
            // JSON Lines.
            var start = i, startLine = line
            while i <= bytes.count {
                if i == bytes.count || bytes[i] == 0x0A {
                    let text = bytes[start..<i]
                    if text.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) { out.append((start..<i, startLine)) }
                    line += 1
                    start = i + 1
                    startLine = line
                }
                i += 1
            }
            return out
        }
        i += 1
        while true {
            skipSpace()
            guard i < bytes.count else { throw ForgeError(.badInput, "malformed JSON: the array is not closed", file: file, location: "line \(line)") }
            if bytes[i] == UInt8(ascii: "]") { break }
            let start = i, startLine = line
            var depth = 0, inString = false, escaped = false
            scan: while i < bytes.count {
                let b = bytes[i]
                if b == 0x0A { line += 1 }
                if inString {
                    if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                } else {
                    switch b {
                    case UInt8(ascii: "\""): inString = true
                    case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        if depth == 0 { break scan }
                        depth -= 1
                    case UInt8(ascii: ","): if depth == 0 { break scan }
                    default: break
                    }
                }
                i += 1
            }
            guard i < bytes.count else {
                throw ForgeError(.badInput, "malformed JSON: record \(out.count) is not closed", file: file, location: "record \(out.count) (line \(startLine))")
            }
            out.append((start..<i, startLine))
            if bytes[i] == UInt8(ascii: ",") { i += 1 } else if bytes[i] == UInt8(ascii: "}") {
                throw ForgeError(.badInput, "malformed JSON: unbalanced '}'", file: file, location: "record \(out.count - 1) (line \(startLine))")
            }
        }
        return out
    }
}
