import Checkpoints
import ForgeCore
import Foundation
import Models

/// `--vision random:tiny`: a seeded random small ViT (NOT CLIP — no real CLIP weights are
/// reachable offline here), written once as a CLIPVisionModel folder so every later step (the
/// loader, the feature cache's identity, checkpoints) treats it like any tower. Its features carry
/// no meaning; it exists so the whole recipe runs end to end without downloads.
public enum RandomVisionTower {
    public static let name = "random:tiny"

    /// 56-pixel images, 14-pixel patches (16 feature rows), width 64, 2 layers.
    public static let config = CLIPVisionConfig(hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 2,
                                                imageSize: 56, patchSize: 14)

    /// Writes (or reuses) the folder; returns its path. The weights depend only on the fixed seed,
    /// so the folder's bytes are the same on every machine.
    public static func materialise(in folder: String) throws -> String {
        let files = FileManager.default
        let weights = (folder as NSString).appendingPathComponent("model.safetensors")
        let configPath = (folder as NSString).appendingPathComponent("config.json")
        if files.fileExists(atPath: weights), files.fileExists(atPath: configPath) { return folder }
        do { try files.createDirectory(atPath: folder, withIntermediateDirectories: true) } catch {
            throw ForgeError(.io, "cannot create the random tower folder: \(error.localizedDescription)", file: folder)
        }
        var random = SeededRandom(seed: 0, key: "random-tiny-vision-tower")
        var tensors: [(name: String, shape: [Int], data: [Float])] = []
        for (name, shape) in CLIPParameterNames.shapes(config) {
            let count = shape.reduce(1, *)
            var data = [Float](repeating: 0, count: count)
            if name.hasSuffix("norm1.weight") || name.hasSuffix("norm2.weight") || name.hasSuffix("layrnorm.weight") || name.hasSuffix("layernorm.weight") {
                data = [Float](repeating: 1, count: count)
            } else if shape.count >= 2 || name == CLIPParameterNames.classEmbedding {
                let fanIn = shape.count >= 2 ? shape.dropFirst().reduce(1, *) : shape[0]
                let bound = 1 / Float(fanIn).squareRoot()
                for i in 0..<count { data[i] = Float.random(in: -bound..<bound, using: &random) }
            }
            tensors.append(("vision_model." + name, shape, data))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt", "llava_forge": "random:tiny (seeded random ViT, not CLIP)"], to: weights)
        let encoded = try JSONEncoder().encode(config)
        guard var object = try JSONSerialization.jsonObject(with: encoded) as? [String: Any] else {
            throw ForgeError(.config, "CLIPVisionConfig did not encode to an object")
        }
        object["model_type"] = "clip_vision_model"
        object["architectures"] = ["CLIPVisionModel"]
        object["_llava_forge_note"] = "random:tiny — a seeded random ViT, NOT CLIP weights"
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            .write(to: URL(fileURLWithPath: configPath), options: .atomic)
        return folder
    }
}
