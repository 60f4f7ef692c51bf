import Foundation
import ForgeCore
import Models
import TensorMath

/// LoRA settings (PEFT's `LoraConfig` subset): rank r, alpha (the term is scaled by alpha / r),
/// the projections adapted in every decoder layer, and the seed of lora_A's initialisation.
/// Dropout is 0 (PEFT's `lora_dropout=0`), biases are not adapted.
public struct LoRAOptions: Codable, Sendable, Equatable {
    public var rank: Int
    public var alpha: Double
    public var targets: [LlamaProjection]
    public var seed: UInt64

    /// Defaults: LLaVA's LoRA recipe adapts every linear layer of the LM (r 128, alpha 256 there;
    /// small models usually take r 8–64).
    public init(rank: Int = 8, alpha: Double = 16, targets: [LlamaProjection] = LlamaProjection.allCases, seed: UInt64 = 0) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.seed = seed
    }

    /// alpha / rank.
    public var scaling: Double { alpha / Double(rank) }

    /// Targets from a comma-separated list of module names (`q_proj,v_proj`; `all` = all seven),
    /// as the CLI's `--lora-targets` takes them. Unknown names are a usage error naming them.
    public static func parseTargets(_ text: String) throws -> [LlamaProjection] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if names == ["all"] { return LlamaProjection.allCases }
        var targets: [LlamaProjection] = []
        for name in names {
            guard let target = LlamaProjection(rawValue: name) else {
                throw ForgeError(.usage, "unknown LoRA target '\(name)' (choose from \(LlamaProjection.allCases.map(\.rawValue).joined(separator: ", ")), or all)")
            }
            if !targets.contains(target) { targets.append(target) }
        }
        guard !targets.isEmpty else { throw ForgeError(.usage, "no LoRA target modules given") }
        return targets
    }

    public func validate() throws {
        guard rank > 0 else { throw ForgeError(.usage, "LoRA rank must be positive (got \(rank))") }
        guard alpha > 0, alpha.isFinite else { throw ForgeError(.usage, "LoRA alpha must be positive (got \(alpha))") }
        guard !targets.isEmpty else { throw ForgeError(.usage, "LoRA needs at least one target module") }
    }
}

/// LoRA adapters on a decoder: per layer and target, `lora_A` `[r, in]` and `lora_B` `[out, r]`
/// named as PEFT does (`layers.3.self_attn.q_proj.lora_A.weight` under the decoder's prefix). The
/// weights live in a buffer given at init (the LoRA run's trainable buffer, which may also hold
/// the projector); `gradients` (same layout) receives their gradients in backward. The base
/// weights are only read.
public final class LoRAAdapters: LinearAdapter {
    public let options: LoRAOptions
    public let config: LlamaConfig
    public let parameters: ParameterBuffer
    /// Where `backward` accumulates (a buffer with `parameters`' layout); nil = no adapter gradients.
    public var gradients: ParameterBuffer?
    let scaling: Float
    /// [layer][projection] → (A offset, B offset), nil when not adapted.
    private let offsets: [[LlamaProjection: (a: Int, b: Int)]]

    public static func names(layer: Int, projection: LlamaProjection, prefix: String) -> (a: String, b: String) {
        let module = prefix + LlamaParameterNames.layer(layer, projection.modulePath)
        return (module + ".lora_A.weight", module + ".lora_B.weight")
    }

    /// Declares every adapter tensor of `config` under `prefix` (the decoder's prefix).
    public static func declare(_ config: LlamaConfig, options: LoRAOptions, prefix: String, into layout: inout ParameterLayout) {
        for layer in 0..<config.numHiddenLayers {
            for target in options.targets {
                let (out, input) = target.shape(config), (a, b) = names(layer: layer, projection: target, prefix: prefix)
                layout.add(a, shape: [options.rank, input])
                layout.add(b, shape: [out, options.rank])
            }
        }
    }

    public init(config: LlamaConfig, options: LoRAOptions, parameters: ParameterBuffer, prefix: String) throws {
        try options.validate()
        self.options = options
        self.config = config
        self.parameters = parameters
        scaling = Float(options.scaling)
        var table: [[LlamaProjection: (a: Int, b: Int)]] = []
        for layer in 0..<config.numHiddenLayers {
            var row: [LlamaProjection: (a: Int, b: Int)] = [:]
            for target in options.targets {
                let (out, input) = target.shape(config), (a, b) = LoRAAdapters.names(layer: layer, projection: target, prefix: prefix)
                guard let slotA = parameters.layout.slot(a), slotA.shape == [options.rank, input],
                      let slotB = parameters.layout.slot(b), slotB.shape == [out, options.rank] else {
                    throw ForgeError(.badInput, "LoRA buffer lacks \(a) [\(options.rank), \(input)] / \(b) [\(out), \(options.rank)]")
                }
                row[target] = (slotA.offset, slotB.offset)
            }
            table.append(row)
        }
        offsets = table
    }

    /// PEFT's initialisation: lora_A ~ U(−1/√in, 1/√in) (kaiming-uniform with a = √5), lora_B = 0,
    /// so training starts from the base model's function. Seeded per tensor by name.
    public func initialize(prefix: String) {
        let p = parameters.storage.pointer
        for layer in 0..<config.numHiddenLayers {
            for target in options.targets {
                guard let o = offsets[layer][target] else { continue }
                let (out, input) = target.shape(config), (nameA, _) = LoRAAdapters.names(layer: layer, projection: target, prefix: prefix)
                var random = SeededRandom(seed: options.seed, key: nameA)
                let bound = 1 / Double(input).squareRoot()
                for i in 0..<(options.rank * input) {
                    let unit = Double(random.next() >> 11) / Double(1 << 53)
                    p[o.a + i] = Float((2 * unit - 1) * bound)
                }
                (p + o.b).update(repeating: 0, count: out * options.rank)
            }
        }
    }

    public func forward(layer: Int, projection: LlamaProjection, out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, rows: Int) {
        guard let o = offsets[layer][projection] else { return }
        let (outFeatures, inFeatures) = projection.shape(config), p = parameters.storage.pointer
        LoRA.forward(out: out, input: input, a: p + o.a, b: p + o.b, rows: rows, inFeatures: inFeatures, outFeatures: outFeatures,
                     rank: options.rank, scaling: scaling)
    }

    public func backward(layer: Int, projection: LlamaProjection, dinput: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                         input: UnsafePointer<Float>, rows: Int) {
        guard let o = offsets[layer][projection] else { return }
        let (outFeatures, inFeatures) = projection.shape(config), p = parameters.storage.pointer
        guard let gradients else {
            // No adapter gradients wanted: only the input gradient of the term.
            if let dinput {
                let scratchA = FloatBuffer(count: options.rank * inFeatures), scratchB = FloatBuffer(count: outFeatures * options.rank)
                withExtendedLifetime((scratchA, scratchB)) {
                    LoRA.backward(dinput: dinput, da: scratchA.pointer, db: scratchB.pointer, dout: dout, input: input, a: p + o.a, b: p + o.b,
                                  rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, rank: options.rank, scaling: scaling)
                }
            }
            return
        }
        precondition(gradients.totalCount == parameters.totalCount, "LoRAAdapters: gradient buffer layout differs")
        let g = gradients.storage.pointer
        LoRA.backward(dinput: dinput, da: g + o.a, db: g + o.b, dout: dout, input: input, a: p + o.a, b: p + o.b,
                      rows: rows, inFeatures: inFeatures, outFeatures: outFeatures, rank: options.rank, scaling: scaling)
    }

    /// W += scaling · B·A for every adapted projection, into `weights` (a buffer with the decoder's
    /// layout under `decoderPrefix`, e.g. a copy of the LLaVA's trainable buffer).
    public func merge(into weights: ParameterBuffer, decoderPrefix: String) {
        let p = parameters.storage.pointer
        for layer in 0..<config.numHiddenLayers {
            for target in options.targets {
                guard let o = offsets[layer][target] else { continue }
                let (out, input) = target.shape(config)
                let weight = weights.pointer(decoderPrefix + LlamaParameterNames.layer(layer, target.modulePath + ".weight"))
                LoRA.merge(weight: weight, a: p + o.a, b: p + o.b, inFeatures: input, outFeatures: out, rank: options.rank, scaling: scaling)
            }
        }
    }
}
