import Foundation
import ForgeCore

/// A safetensors checkpoint as Hugging Face saves it: one `.safetensors` file, or shards listed by
/// `model.safetensors.index.json` (`{"metadata": {…}, "weight_map": {tensor name: shard file}}`),
/// presented as one set of tensors.
///
/// `path` may be a `.safetensors` file, an index `.json` file, or a folder holding
/// `model.safetensors.index.json`, `model.safetensors`, or exactly one `*.safetensors` file.
public final class SafeTensorsCheckpoint: TensorSource {
    public let path: String
    public let tensorNames: [String]
    /// The opened files, in shard-name order (one for an unsharded checkpoint).
    public let files: [SafeTensorsFile]
    /// The index file, when the checkpoint is sharded.
    public let indexPath: String?
    /// `__metadata__` of all files merged (later shards win on conflicts, which HF never has).
    public let metadata: [String: String]
    /// Tensor name → the file that holds it.
    private let owner: [String: SafeTensorsFile]

    public init(path: String) throws {
        self.path = path
        let resolved = try SafeTensorsCheckpoint.resolve(path)
        if resolved.hasSuffix(".json") {
            indexPath = resolved
            let (files, owner) = try SafeTensorsCheckpoint.openShards(index: resolved)
            self.files = files
            self.owner = owner
        } else {
            indexPath = nil
            let file = try SafeTensorsFile(path: resolved)
            files = [file]
            var owner: [String: SafeTensorsFile] = [:]
            for name in file.tensorNames { owner[name] = file }
            self.owner = owner
        }
        tensorNames = owner.keys.sorted()
        metadata = files.reduce(into: [:]) { merged, file in merged.merge(file.metadata) { _, new in new } }
    }

    public func info(_ name: String) -> TensorInfo? { owner[name]?.info(name) }

    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let file = owner[name] else { _ = try requireInfo(name); return UnsafeRawBufferPointer(start: nil, count: 0) }
        return try file.rawBytes(name)
    }

    /// The file or index to open for `path` (see the type's documentation).
    static func resolve(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ForgeError(.io, "no such file or folder", file: path)
        }
        guard isDirectory.boolValue else { return path }
        let folder = URL(fileURLWithPath: path)
        for candidate in ["model.safetensors.index.json", "model.safetensors"] {
            let file = folder.appendingPathComponent(candidate).path
            if FileManager.default.fileExists(atPath: file) { return file }
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let indexes = entries.filter { $0.hasSuffix(".safetensors.index.json") }.sorted()
        if indexes.count == 1 { return folder.appendingPathComponent(indexes[0]).path }
        let files = entries.filter { $0.hasSuffix(".safetensors") }.sorted()
        if files.count == 1 { return folder.appendingPathComponent(files[0]).path }
        let found = files.isEmpty ? "none" : files.joined(separator: ", ")
        throw ForgeError(.badInput, "folder has no model.safetensors.index.json, no model.safetensors and not exactly one .safetensors file (found: \(found))",
                         file: path)
    }

    /// Opens every shard named by the index and checks each listed tensor is in its shard.
    private static func openShards(index: String) throws -> ([SafeTensorsFile], [String: SafeTensorsFile]) {
        let text = try MappedFile(path: index)
        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(text.bytes), options: .checkpoint)
        } catch let error as JSONSyntaxError {
            throw ForgeError(.badInput, "not valid JSON: \(error.message)", file: index, location: "byte \(error.offset)")
        }
        guard let weightMap = json.object?["weight_map"]?.object else {
            throw ForgeError(.badInput, "no \"weight_map\" object", file: index, location: "weight_map")
        }
        let folder = URL(fileURLWithPath: index).deletingLastPathComponent()
        var shards: [String: SafeTensorsFile] = [:]
        var owner: [String: SafeTensorsFile] = [:]
        // Keys are unique (duplicates are rejected), so sorting the members orders the tensors.
        for (tensor, value) in weightMap.members.sorted(by: { $0.key < $1.key }) {
            guard let shardName = value.string, !shardName.isEmpty else {
                throw ForgeError(.badInput, "shard must be a file name string", file: index, location: "weight_map['\(tensor)']")
            }
            // Shards live next to the index; refuse anything that would escape that folder.
            guard !shardName.hasPrefix("/"), !shardName.split(separator: "/").contains("..") else {
                throw ForgeError(.badInput, "shard path '\(shardName)' leaves the checkpoint folder", file: index, location: "weight_map['\(tensor)']")
            }
            let shard: SafeTensorsFile
            if let opened = shards[shardName] {
                shard = opened
            } else {
                shard = try SafeTensorsFile(path: folder.appendingPathComponent(shardName).path)
                shards[shardName] = shard
            }
            guard shard.info(tensor) != nil else {
                throw ForgeError(.badInput, "the index maps tensor '\(tensor)' to \(shardName), which does not contain it",
                                 file: index, location: "weight_map['\(tensor)']")
            }
            owner[tensor] = shard
        }
        // A tensor stored in two shards is ambiguous; one a shard holds but the index does not list is
        // still part of the checkpoint (so "every key consumed" checks see it rather than missing it).
        var holder: [String: String] = [:]
        for shardName in shards.keys.sorted() {
            for tensor in shards[shardName]!.tensorNames {
                if let other = holder.updateValue(shardName, forKey: tensor) {
                    throw ForgeError(.badInput, "tensor '\(tensor)' is stored in both \(other) and \(shardName)",
                                     file: index, location: "weight_map['\(tensor)']")
                }
                if owner[tensor] == nil { owner[tensor] = shards[shardName]! }
            }
        }
        let files = shards.keys.sorted().map { shards[$0]! }
        return (files, owner)
    }
}
