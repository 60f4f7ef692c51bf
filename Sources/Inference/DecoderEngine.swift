import Models

/// What the generator, prefix cache and scheduler need from a decoder: KV caches and a batched
/// step. `QuantizedLlama` is the fast one; `LlamaModel` (Float32, any checkpoint) conforms too,
/// stepping its sequences one after another.
public protocol DecoderEngine: AnyObject {
    var config: LlamaConfig { get }
    /// Positions the model can attend over (RoPE table / max_position_embeddings).
    var maximumPositions: Int { get }
    func makeCache(capacity: Int) -> KVCache
    /// Appends each sequence's input to its cache; returns each sequence's logits.
    func step(_ sequences: [SequenceStep]) throws -> [[Float]]
    /// The input embedding of token `id` into `out` (`hidden` floats), for prompts with spliced rows.
    func embedToken(_ id: Int, into out: UnsafeMutablePointer<Float>)
}

extension QuantizedLlama: DecoderEngine {
    public var maximumPositions: Int { rotary.positions }
}

extension LlamaModel: DecoderEngine {
    public var maximumPositions: Int { rotary.positions }

    public func makeCache(capacity: Int) -> KVCache { KVCache(config: config, capacity: min(capacity, rotary.positions)) }

    public func step(_ sequences: [SequenceStep]) throws -> [[Float]] {
        try sequences.map { s in
            switch s.input {
            case .tokens(let ids): return try decode(tokens: ids, cache: s.cache, rows: s.rows)
            case .embeddings(let values):
                return try values.withUnsafeBufferPointer {
                    try decode(embeddings: $0.baseAddress!, count: values.count / config.hiddenSize, cache: s.cache, rows: s.rows)
                }
            }
        }
    }
}
