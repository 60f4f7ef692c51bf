import Checkpoints
import ForgeCore
import Models
import TensorMath

extension QuantizedLlama {
    /// Opens a GGUF LLaMA-family file keeping its quantized matrices memory-mapped. Tensor names go
    /// through Models' one `sanitize` step; every tensor must be used and every shape must match
    /// the config (errors name the file and tensor).
    public static func load(path: String) throws -> QuantizedLlama {
        _ = BLASRuntime.ensureBestCore()
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        try config.validate(file: path)
        var byName: [String: String] = [:]
        var leftovers: [String] = []
        for key in file.tensorNames {
            switch CheckpointKeys.sanitize(key) {
            case .parameter(.language, let name)?: byName[name] = key
            case .ignored?: continue
            default: leftovers.append(key)
            }
        }
        let shapes = Dictionary(LlamaParameterNames.shapes(config).map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        var used = Set<String>()
        func key(_ name: String) throws -> String {
            guard let key = byName[name] else {
                throw ForgeError(.badInput, "tensor for \(name) is missing", file: path, location: "tensor '\(name)'")
            }
            let info = try file.requireInfo(key)
            if let shape = shapes[name], info.shape != shape {
                throw ForgeError(.badInput, "tensor '\(key)' has shape \(info.shape), the config needs \(shape) for \(name)", file: path, location: "tensor '\(key)'")
            }
            used.insert(key)
            return key
        }
        // llama.cpp permutes Q/K rows for the llama architecture only (see CheckpointKeys.unpermuteGGUFRows).
        let permuted = file.architecture == "llama" || file.architecture == "mistral"
        func order(heads: Int) -> [Int]? {
            guard permuted else { return nil }
            let d = config.headDim, half = d / 2
            var order = [Int](repeating: 0, count: heads * d)
            for h in 0..<heads { for i in 0..<half { for j in 0..<2 { order[h * d + j * half + i] = h * d + 2 * i + j } } }
            return order
        }
        func matrix(_ name: String, heads: Int? = nil, products: Bool = true) throws -> WeightMatrix {
            try WeightMatrix.load(file, tensor: try key(name), rowOrder: heads.flatMap { order(heads: $0) }, products: products)
        }
        func vector(_ name: String, heads: Int? = nil) throws -> FloatBuffer {
            let k = try key(name)
            let info = try file.requireInfo(k)
            let buffer = FloatBuffer(count: info.elementCount)
            try file.floats(k, into: buffer.buffer)
            if let heads, permuted { CheckpointKeys.unpermuteGGUFRows(buffer.pointer, heads: heads, headDim: config.headDim, columns: 1) }
            return buffer
        }
        func optionalVector(_ name: String, _ present: Bool, heads: Int? = nil) throws -> FloatBuffer? {
            present ? try vector(name, heads: heads) : nil
        }
        let c = config
        var layers: [QuantizedLayer] = []
        for i in 0..<c.numHiddenLayers {
            func n(_ suffix: String) -> String { LlamaParameterNames.layer(i, suffix) }
            layers.append(QuantizedLayer(
                inputNorm: try vector(n("input_layernorm.weight")), postNorm: try vector(n("post_attention_layernorm.weight")),
                q: try matrix(n("self_attn.q_proj.weight"), heads: c.numAttentionHeads),
                k: try matrix(n("self_attn.k_proj.weight"), heads: c.numKeyValueHeads),
                v: try matrix(n("self_attn.v_proj.weight")), o: try matrix(n("self_attn.o_proj.weight")),
                gate: try matrix(n("mlp.gate_proj.weight")), up: try matrix(n("mlp.up_proj.weight")), down: try matrix(n("mlp.down_proj.weight")),
                qBias: try optionalVector(n("self_attn.q_proj.bias"), c.attentionBias, heads: c.numAttentionHeads),
                kBias: try optionalVector(n("self_attn.k_proj.bias"), c.attentionBias, heads: c.numKeyValueHeads),
                vBias: try optionalVector(n("self_attn.v_proj.bias"), c.attentionBias),
                oBias: try optionalVector(n("self_attn.o_proj.bias"), c.outputProjectionBias),
                gateBias: try optionalVector(n("mlp.gate_proj.bias"), c.mlpBias),
                upBias: try optionalVector(n("mlp.up_proj.bias"), c.mlpBias),
                downBias: try optionalVector(n("mlp.down_proj.bias"), c.mlpBias)))
        }
        // Tied: the table is also the head's product, so it gets the kernels' copy.
        let embedding = try matrix(LlamaParameterNames.embedTokens, products: c.tieWordEmbeddings)
        let finalNorm = try vector(LlamaParameterNames.finalNorm)
        let head: WeightMatrix
        if c.tieWordEmbeddings {
            head = embedding
            if let k = byName[LlamaParameterNames.lmHead] { used.insert(k) }  // a duplicate of the tied table
        } else {
            head = try matrix(LlamaParameterNames.lmHead)
        }
        leftovers += byName.values.filter { !used.contains($0) }
        if !leftovers.isEmpty {
            let sorted = leftovers.sorted()
            throw ForgeError(.badInput, "\(sorted.count) tensor(s) are not used by the model: \(sorted.prefix(10).joined(separator: ", "))",
                             file: path, location: "tensor '\(sorted[0])'")
        }
        return try QuantizedLlama(config: config, embedding: embedding, head: head, finalNorm: finalNorm, layers: layers)
    }

    /// A float `LlamaModel` with its matrices quantized to `type` in memory (norms and biases stay
    /// Float32): for tests of the kernels inside a whole model, and for GGUF-less checkpoints.
    public static func quantizing(_ model: LlamaModel, to type: GGMLType, embeddingType: GGMLType? = nil) throws -> QuantizedLlama {
        let c = model.config
        let storage = model.parameters.storage.pointer
        func matrix(_ offset: Int, _ rows: Int, _ columns: Int, _ name: String, as kind: GGMLType = type, products: Bool = true) throws -> WeightMatrix {
            try BlockQuantizer.matrix(kind, name: name, values: storage + offset, rows: rows, columns: columns, products: products)
        }
        func vector(_ offset: Int?, _ count: Int) -> FloatBuffer? {
            guard let offset else { return nil }
            let buffer = FloatBuffer(count: count)
            buffer.copy(from: storage + offset, count: count)
            return buffer
        }
        var layers: [QuantizedLayer] = []
        for (i, w) in model.layerOffsets.enumerated() {
            layers.append(QuantizedLayer(
                inputNorm: vector(w.inputNorm, c.hiddenSize)!, postNorm: vector(w.postNorm, c.hiddenSize)!,
                q: try matrix(w.q, c.qWidth, c.hiddenSize, "layers.\(i).q"), k: try matrix(w.k, c.kvWidth, c.hiddenSize, "layers.\(i).k"),
                v: try matrix(w.v, c.kvWidth, c.hiddenSize, "layers.\(i).v"), o: try matrix(w.o, c.hiddenSize, c.qWidth, "layers.\(i).o"),
                gate: try matrix(w.gate, c.intermediateSize, c.hiddenSize, "layers.\(i).gate"),
                up: try matrix(w.up, c.intermediateSize, c.hiddenSize, "layers.\(i).up"),
                down: try matrix(w.down, c.hiddenSize, c.intermediateSize, "layers.\(i).down"),
                qBias: vector(w.qBias, c.qWidth), kBias: vector(w.kBias, c.kvWidth), vBias: vector(w.vBias, c.kvWidth),
                oBias: vector(w.oBias, c.hiddenSize), gateBias: vector(w.gateBias, c.intermediateSize),
                upBias: vector(w.upBias, c.intermediateSize), downBias: vector(w.downBias, c.hiddenSize)))
        }
        let embedding = try matrix(model.embedOffset, c.vocabSize, c.hiddenSize, "embed_tokens", as: embeddingType ?? type,
                                   products: c.tieWordEmbeddings)
        let head = c.tieWordEmbeddings ? embedding : try matrix(model.headOffset, c.vocabSize, c.hiddenSize, "lm_head")
        return try QuantizedLlama(config: c, embedding: embedding, head: head, finalNorm: vector(model.finalNormOffset, c.hiddenSize)!, layers: layers)
    }
}
