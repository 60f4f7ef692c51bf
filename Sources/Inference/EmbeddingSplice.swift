import ForgeCore
import Models

/// Input embedding rows that replace the token embeddings at some prompt positions: a LLaVA
/// image's projected features, spliced where the prompt holds its image placeholder tokens.
public struct EmbeddingSplice: Sendable, Equatable {
    /// Prompt positions, strictly increasing.
    public var positions: [Int]
    /// `[positions.count, hidden]`: row r goes to `positions[r]`.
    public var rows: [Float]

    public init(positions: [Int], rows: [Float]) {
        self.positions = positions
        self.rows = rows
    }
}

extension GenerationRequest {
    /// The prompt tokens the prefix cache may key on: everything before the first spliced
    /// position. KV after an image depends on the image's features, which the token ids (all the
    /// same placeholder) do not show, so it is never shared between requests.
    var cacheablePrompt: [Int] {
        guard let first = embeddingSplice?.positions.first else { return prompt }
        return Array(prompt[..<first])
    }

    /// Throws unless the splice fits the prompt and the engine: positions inside the prompt and
    /// increasing, `positions.count × hidden` floats.
    func validateSplice(hidden: Int) throws {
        guard let splice = embeddingSplice else { return }
        guard splice.rows.count == splice.positions.count * hidden else {
            throw ForgeError(.usage, "embedding splice: \(splice.rows.count) floats for \(splice.positions.count) positions of width \(hidden)")
        }
        var previous = -1
        for p in splice.positions {
            guard p > previous, p < prompt.count else {
                throw ForgeError(.usage, "embedding splice: position \(p) is not increasing or lies outside the \(prompt.count)-token prompt")
            }
            previous = p
        }
    }

    /// Token ids that must be inside the vocabulary (spliced positions hold placeholders).
    var embeddedTokenIDs: [Int] {
        guard let splice = embeddingSplice else { return prompt }
        let spliced = Set(splice.positions)
        return prompt.indices.filter { !spliced.contains($0) }.map { prompt[$0] }
    }

    /// The prefill step's input for `prompt[start...]`: the ids, or — when a spliced position lies
    /// in that range — embeddings `[T, hidden]` with the spliced rows in place.
    func prefillStep(from start: Int, engine: DecoderEngine, cache: KVCache) -> SequenceStep {
        let tail = Array(prompt[start...])
        guard let splice = embeddingSplice, let last = splice.positions.last, last >= start else {
            return SequenceStep(tokens: tail, cache: cache)
        }
        let hidden = engine.config.hiddenSize
        var values = [Float](repeating: 0, count: tail.count * hidden)
        let spliced = Set(splice.positions)
        values.withUnsafeMutableBufferPointer { out in
            for (i, id) in tail.enumerated() where !spliced.contains(start + i) {
                engine.embedToken(id, into: out.baseAddress! + i * hidden)
            }
            splice.rows.withUnsafeBufferPointer { rows in
                for (r, p) in splice.positions.enumerated() where p >= start {
                    (out.baseAddress! + (p - start) * hidden).update(from: rows.baseAddress! + r * hidden, count: hidden)
                }
            }
        }
        return SequenceStep(embeddings: values, cache: cache)
    }
}

extension QuantizedLlama {
    public func embedToken(_ id: Int, into out: UnsafeMutablePointer<Float>) { embedding.row(id, into: out) }
}

extension LlamaModel {
    public func embedToken(_ id: Int, into out: UnsafeMutablePointer<Float>) {
        out.update(from: embeddingTable + id * config.hiddenSize, count: config.hiddenSize)
    }
}
