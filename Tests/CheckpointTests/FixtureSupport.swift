import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// The golden fixtures written by tools/reference/make_checkpoint_fixtures.py.
enum Fixtures {
    static let folder: String = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path

    static func path(_ name: String) -> String { folder + "/" + name }

    static func bytes(_ name: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: path(name))!)
    }

    /// expected.json, decoded once.
    static let manifest: Manifest = {
        let data = FileManager.default.contents(atPath: path("expected.json"))!
        return try! JSONDecoder().decode(Manifest.self, from: data)
    }()

    /// expected.f32: every expected Float32 array, back to back.
    static let expectedValues: [Float] = {
        let data = FileManager.default.contents(atPath: path("expected.f32"))!
        return data.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }()

    static func expected(offset: Int, count: Int) -> [Float] { Array(expectedValues[offset..<(offset + count)]) }
}

struct Manifest: Decodable {
    var gguf: [String: GGUFExpectation]
    var safetensors: [String: SafeTensorsExpectation]
    var writer: WriterExpectation
}

struct GGUFExpectation: Decodable {
    var version: Int
    var alignment: Int
    var data_offset: Int
    var metadata_keys: [String]
    var metadata: [String: MetadataExpectation]
    var tensors: [GGUFTensorExpectation]
}

struct MetadataExpectation: Decodable {
    var type: String
    var value: AnyJSON
    var element: String?
}

struct GGUFTensorExpectation: Decodable {
    var name: String
    var type: String
    var shape: [Int]
    var ne: [Int]
    var absolute_offset: Int
    var byte_count: Int
    var expected_offset: Int?
    var count: Int?
}

struct SafeTensorsExpectation: Decodable {
    var metadata: [String: String]
    var tensors: [SafeTensorsTensorExpectation]
}

struct SafeTensorsTensorExpectation: Decodable {
    var name: String
    var dtype: String
    var shape: [Int]
    var expected_offset: Int?
    var count: Int?
    var ints: [Int]?
}

struct WriterExpectation: Decodable {
    var files: [String: String]
    var tensors: [WriterTensor]
    var metadata: [String: String]
}

struct WriterTensor: Decodable {
    var name: String
    var shape: [Int]
}

/// Any JSON value, with integers kept exact (Int64 or, above its range, UInt64).
indirect enum AnyJSON: Decodable, Equatable {
    case bool(Bool), int(Int64), uint(UInt64), double(Double), string(String), array([AnyJSON]), object([String: AnyJSON]), null

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null; return }
        if let value = try? container.decode(Bool.self) { self = .bool(value); return }
        if let value = try? container.decode(Int64.self) { self = .int(value); return }
        if let value = try? container.decode(UInt64.self) { self = .uint(value); return }
        if let value = try? container.decode(Double.self) { self = .double(value); return }
        if let value = try? container.decode(String.self) { self = .string(value); return }
        if let value = try? container.decode([AnyJSON].self) { self = .array(value); return }
        self = .object(try container.decode([String: AnyJSON].self))
    }
}

/// A scratch folder per test, removed at the end.
final class ScratchFolder {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "llava-forge-ckpt-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }
    @discardableResult
    func write(_ name: String, text: String) -> String { write(name, Array(text.utf8)) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Asserts `body` throws a `ForgeError` whose text contains every one of `fragments`.
func assertForgeError<T>(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a ForgeError containing \(fragments)", file: file, line: line)
    } catch let error as ForgeError {
        for fragment in fragments where !error.description.contains(fragment) {
            XCTFail("error \"\(error.description)\" does not mention \"\(fragment)\"", file: file, line: line)
        }
    } catch {
        XCTFail("expected a ForgeError, got \(error)", file: file, line: line)
    }
}

/// Compares Float arrays bit for bit (signed zeros equal); reports the worst difference.
func assertBitExact(_ actual: [Float], _ expected: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(what): count", file: file, line: line)
    guard actual.count == expected.count else { return }
    var mismatches = 0, worst: Float = 0, firstIndex = -1
    for i in 0..<actual.count where !(actual[i] == expected[i] || actual[i].bitPattern == expected[i].bitPattern) {
        mismatches += 1
        worst = max(worst, abs(actual[i] - expected[i]))
        if firstIndex < 0 { firstIndex = i }
    }
    if mismatches > 0 {
        XCTFail("\(what): \(mismatches) of \(actual.count) values differ (max abs diff \(worst); first at \(firstIndex): \(actual[firstIndex]) vs \(expected[firstIndex]))",
                file: file, line: line)
    }
}

/// Little-endian byte building for hand-made headers.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes.append(contentsOf: Array(s.utf8)) }
    mutating func pad(to alignment: Int) { while bytes.count % alignment != 0 { bytes.append(0) } }
}

/// A hand-built GGUF file (v3 unless told) for error cases: metadata written by the caller, then
/// tensor infos, then data padded to `alignment`.
struct GGUFBuilder {
    var version: UInt32 = 3
    var alignment = 32
    var metadata: [(key: String, write: (inout ByteWriter) -> Void)] = []
    var tensors: [(name: String, ne: [UInt64], type: UInt32, offset: UInt64)] = []
    var data: [UInt8] = []

    mutating func addU32(_ key: String, _ value: UInt32) {
        metadata.append((key, { w in w.u32(4); w.u32(value) }))
    }

    mutating func addString(_ key: String, _ value: String) {
        metadata.append((key, { w in w.u32(8); w.string(value) }))
    }

    func build() -> [UInt8] {
        var w = ByteWriter()
        w.bytes.append(contentsOf: Array("GGUF".utf8))
        w.u32(version)
        w.u64(UInt64(tensors.count))
        w.u64(UInt64(metadata.count))
        for entry in metadata {
            w.string(entry.key)
            entry.write(&w)
        }
        for tensor in tensors {
            w.string(tensor.name)
            w.u32(UInt32(tensor.ne.count))
            for n in tensor.ne { w.u64(n) }
            w.u32(tensor.type)
            w.u64(tensor.offset)
        }
        w.pad(to: alignment)
        w.bytes.append(contentsOf: data)
        return w.bytes
    }
}

/// A hand-built safetensors file: the header text as given (not re-serialized), then `data`.
func safetensorsBytes(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
    var w = ByteWriter()
    let headerBytes = Array(header.utf8)
    w.u64(declaredLength ?? UInt64(headerBytes.count))
    w.bytes.append(contentsOf: headerBytes)
    w.bytes.append(contentsOf: data)
    return w.bytes
}
