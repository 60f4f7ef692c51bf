import Checkpoints
import ForgeCore
import TensorMath

/// One model part to fill from a checkpoint: where its tensors go and what they must look like.
struct PartTarget {
    var part: ModelPart
    var buffer: ParameterBuffer
    /// Prefix of the part's slots inside `buffer`.
    var prefix: String
    /// Our names (without prefix) and shapes the config requires.
    var shapes: [(name: String, shape: [Int])]
    /// A tied head: an `lm_head.weight` in the checkpoint is accepted (same shape) and dropped.
    var tiedHead = false
    /// GGUF llama files: Q/K rows to un-permute (heads, kv heads, head dim).
    var ggufRoPE: (heads: Int, kvHeads: Int, headDim: Int)?
}

/// Fills parameter buffers from one `TensorSource`, checking that every checkpoint tensor is used
/// exactly once, none the config needs is missing, and every shape matches the config.
enum WeightLoader {
    static func load(_ source: TensorSource, into targets: [PartTarget], ignoreCLIPTextTower: Bool = false) throws {
        // 1. sanitize every key.
        var assigned: [ModelPart: [String: String]] = [:]  // our name → checkpoint key
        var leftovers: [String] = []
        let wanted = Set(targets.map(\.part))
        for key in source.tensorNames {
            switch CheckpointKeys.sanitize(key, ignoreCLIPTextTower: ignoreCLIPTextTower) {
            case .ignored?:
                continue
            case .parameter(let part, let name)? where wanted.contains(part):
                if let previous = assigned[part]?[name] {
                    throw ForgeError(.badInput, "tensors '\(previous)' and '\(key)' both map to \(part.rawValue) parameter '\(name)' (two key layouts in one checkpoint?)",
                                     file: source.path, location: "tensor '\(key)'")
                }
                assigned[part, default: [:]][name] = key
            default:
                leftovers.append(key)
            }
        }
        // 2. match against what the config declares.
        for target in targets {
            var byName = assigned[target.part] ?? [:]
            var missing: [String] = []
            for (name, shape) in target.shapes {
                guard let key = byName.removeValue(forKey: name) else { missing.append(name); continue }
                let info = try source.requireInfo(key)
                guard info.shape == shape else {
                    throw ForgeError(.badInput, "tensor '\(key)' has shape \(info.shape) in the checkpoint, but the config needs \(shape) for \(target.prefix + name)",
                                     file: source.path, location: "tensor '\(key)'")
                }
                guard info.dtype.isConvertibleToFloat else {
                    throw ForgeError(.badInput, "tensor '\(key)' has dtype \(info.dtype), which cannot be converted to Float32",
                                     file: source.path, location: "tensor '\(key)'")
                }
                let slot = target.buffer.slot(target.prefix + name)
                let destination = UnsafeMutableBufferPointer(start: target.buffer.storage.pointer + slot.offset, count: slot.count)
                try source.floats(key, into: destination)
                if let rope = target.ggufRoPE {
                    let columns = shape.count == 2 ? shape[1] : 1
                    if name.hasSuffix("self_attn.q_proj.weight") || name.hasSuffix("self_attn.q_proj.bias") {
                        CheckpointKeys.unpermuteGGUFRows(destination.baseAddress!, heads: rope.heads, headDim: rope.headDim, columns: columns)
                    } else if name.hasSuffix("self_attn.k_proj.weight") || name.hasSuffix("self_attn.k_proj.bias") {
                        CheckpointKeys.unpermuteGGUFRows(destination.baseAddress!, heads: rope.kvHeads, headDim: rope.headDim, columns: columns)
                    }
                }
            }
            if target.tiedHead, let key = byName.removeValue(forKey: LlamaParameterNames.lmHead) {
                let info = try source.requireInfo(key)
                let expected = target.shapes.first { $0.name == LlamaParameterNames.embedTokens }?.shape ?? []
                guard info.shape == expected else {
                    throw ForgeError(.badInput, "tensor '\(key)' has shape \(info.shape), the tied embedding table is \(expected)",
                                     file: source.path, location: "tensor '\(key)'")
                }
            }
            if !missing.isEmpty {
                let shapes = Dictionary(target.shapes.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
                let listed = missing.prefix(8).map { "\($0) \(shapes[$0]!)" }.joined(separator: ", ")
                throw ForgeError(.badInput, "\(missing.count) \(target.part.rawValue) tensor(s) the config needs are missing: \(listed)\(missing.count > 8 ? ", …" : "")",
                                 file: source.path, location: "tensor '\(missing[0])'")
            }
            leftovers += byName.values
        }
        // 3. nothing may be left unused.
        if !leftovers.isEmpty {
            let sorted = leftovers.sorted()
            throw ForgeError(.badInput, "\(sorted.count) checkpoint tensor(s) are not used by the model: \(sorted.prefix(10).joined(separator: ", "))\(sorted.count > 10 ? ", …" : "")",
                             file: source.path, location: "tensor '\(sorted[0])'")
        }
    }
}
