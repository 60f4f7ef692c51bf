import ForgeCore

/// Token embedding lookup: rows of a `[vocab, dim]` table.
public enum Embedding {
    /// Throws unless every id is in 0..<vocab. `forward`/`backward` treat a bad id as a programming
    /// error (precondition); call this first where ids come from outside (a tokenizer that does not
    /// match the model, a request), so bad input is an error message rather than a crash.
    public static func validate(tokenIDs: UnsafeBufferPointer<Int>, vocab: Int, source: String? = nil) throws {
        for (position, id) in tokenIDs.enumerated() where id < 0 || id >= vocab {
            throw ForgeError(.badInput, "token id \(id) is outside the model's vocabulary 0..<\(vocab)", file: source,
                             location: "token \(position)")
        }
    }

    /// out `[tokens, dim]` = table `[vocab, dim]` rows at `tokenIDs` (`[tokens]`, each in 0..<vocab).
    public static func forward(
        out: UnsafeMutablePointer<Float>,
        tokenIDs: UnsafeBufferPointer<Int>,
        table: UnsafePointer<Float>,
        vocab: Int, dim: Int
    ) {
        for (row, id) in tokenIDs.enumerated() {
            precondition(id >= 0 && id < vocab, "Embedding: token id \(id) outside 0..<\(vocab)")
            (out + row * dim).update(from: table + id * dim, count: dim)
        }
    }

    /// dtable rows at `tokenIDs` += dout rows (repeated ids accumulate).
    public static func backward(
        dtable: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>,
        tokenIDs: UnsafeBufferPointer<Int>,
        vocab: Int, dim: Int
    ) {
        for (row, id) in tokenIDs.enumerated() {
            precondition(id >= 0 && id < vocab, "Embedding: token id \(id) outside 0..<\(vocab)")
            let target = dtable + id * dim, source = dout + row * dim
            for i in 0..<dim { target[i] += source[i] }
        }
    }
}
