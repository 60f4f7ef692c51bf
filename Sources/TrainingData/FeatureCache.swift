import ForgeCore
import Foundation
import Imaging
import Models

/// The frozen tower's selected-layer features, computed once per image and kept on disk.
///
/// Key = SHA-256 of (image bytes' SHA-256 hex, the tower identity). The identity covers the tower's
/// weights (a SHA-256 over its parameter buffer), its config, the preprocessing config and the
/// feature selection (layers, strategy), so any change that alters features misses the cache.
/// One file per image, `<dir>/<key[0..<2]>/<key>.features`:
///
///     "LFFEAT01" | rows UInt32 LE | width UInt32 LE | key (32 bytes) | rows·width Float32 LE | SHA-256 of the floats
///
/// A file that is short, long, of another shape or key, or whose checksum fails is recomputed and
/// rewritten (never trusted). Writes go to a temporary name and are renamed into place.
public final class FeatureCache {
    public let directory: String
    public let towerIdentity: String
    public let rows: Int
    public let width: Int
    /// Tower forward passes this cache made (a warm cache makes none).
    public private(set) var towerCalls = 0
    public private(set) var diskHits = 0
    /// Cache files found damaged and recomputed.
    public private(set) var rejectedFiles = 0
    private var memory: [String: [Float]] = [:]
    static let magic = Array("LFFEAT01".utf8)

    public init(directory: String, towerIdentity: String, rows: Int, width: Int) throws {
        self.directory = directory
        self.towerIdentity = towerIdentity
        self.rows = rows
        self.width = width
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw ForgeError(.io, "cannot create the feature cache folder: \(error.localizedDescription)", file: directory)
        }
    }

    /// The identity of a LLaVA's tower + preprocessing + feature selection.
    public static func towerIdentity(model: LlavaModel, preprocessor: CLIPPreprocessorConfig, padToSquare: Bool) throws -> String {
        var hash = SHA256()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        hash.update(Array(try encoder.encode(model.config.visionConfig)))
        hash.update(Array(try encoder.encode(preprocessor)))
        hash.update("layers=\(model.config.visionFeatureLayers) strategy=\(model.config.visionFeatureSelectStrategy.rawValue) pad=\(padToSquare)")
        let buffer = model.vision.parameters.storage
        let chunk = 1 << 18
        var offset = 0
        while offset < buffer.count {
            let n = min(chunk, buffer.count - offset)
            hash.update(Array(UnsafeRawBufferPointer(start: buffer.pointer + offset, count: n * 4)))
            offset += n
        }
        return Self.hexString(hash.finalize())
    }

    static func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    public func path(forKey key: String) -> String {
        (directory as NSString).appendingPathComponent(String(key.prefix(2)) + "/" + key + ".features")
    }

    /// The cache key of an image's bytes.
    public func key(imageBytes: Data) -> String {
        SHA256.hex(SHA256.hex(Array(imageBytes)) + "\n" + towerIdentity)
    }

    /// Features `[rows, width]` of the image file: from memory, else from a valid cache file, else
    /// `compute(imageBytes)` (the tower), then stored.
    public func features(imagePath: String, compute: (Data) throws -> [Float]) throws -> [Float] {
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: imagePath)) } catch {
            throw ForgeError(.io, "cannot read the image: \(error.localizedDescription)", file: imagePath)
        }
        let key = key(imageBytes: bytes)
        if let found = memory[key] { return found }
        let file = path(forKey: key)
        if let stored = read(file, key: key) {
            diskHits += 1
            memory[key] = stored
            return stored
        }
        towerCalls += 1
        let computed = try compute(bytes)
        guard computed.count == rows * width else {
            throw ForgeError(.badInput, "the tower gave \(computed.count) floats, the cache expects \(rows)×\(width)", file: imagePath)
        }
        try write(computed, key: key, to: file)
        memory[key] = computed
        return computed
    }

    /// A valid file's floats, or nil (absent or damaged — then counted in `rejectedFiles`).
    func read(_ file: String, key: String) -> [Float]? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let floats = rows * width
        let expected = 8 + 8 + 32 + floats * 4 + 32
        let bytes = [UInt8](data)
        func reject() -> [Float]? { rejectedFiles += 1; return nil }
        guard bytes.count == expected, Array(bytes[0..<8]) == Self.magic else { return reject() }
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        guard u32(8) == rows, u32(12) == width, Array(bytes[16..<48]) == Self.keyBytes(key) else { return reject() }
        let payload = Array(bytes[48..<(48 + floats * 4)])
        guard Self.keyBytes(SHA256.hex(payload)) == Array(bytes[(48 + floats * 4)...]) else { return reject() }
        var out = [Float](repeating: 0, count: floats)
        out.withUnsafeMutableBytes { raw in
            payload.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
        for i in out.indices { out[i] = Float(bitPattern: UInt32(littleEndian: out[i].bitPattern)) }
        return out
    }

    func write(_ values: [Float], key: String, to file: String) throws {
        var bytes = Self.magic
        for v in [UInt32(rows), UInt32(width)] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        bytes += Self.keyBytes(key)
        var payload = [UInt8](repeating: 0, count: values.count * 4)
        payload.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        bytes += payload
        bytes += Self.keyBytes(SHA256.hex(payload))
        let folder = (file as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let temporary = file + ".tmp\(getpid())"
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            if FileManager.default.fileExists(atPath: file) { try FileManager.default.removeItem(atPath: file) }
            try FileManager.default.moveItem(atPath: temporary, toPath: file)
        } catch {
            throw ForgeError(.io, "cannot write a feature cache file: \(error.localizedDescription)", file: file)
        }
    }

    static func keyBytes(_ key: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = Array(key.utf8)
        if chars.count % 2 == 1 { chars.append(UInt8(ascii: "0")) }
        for i in stride(from: 0, to: chars.count, by: 2) {
            out.append(UInt8(String(decoding: chars[i..<(i + 2)], as: UTF8.self), radix: 16) ?? 0)
        }
        return Array(out.prefix(32)) + [UInt8](repeating: 0, count: max(0, 32 - out.count))
    }
}

