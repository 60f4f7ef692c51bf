import Tokenizers

extension TokenVocabulary {
    /// The vocabulary of `tokenizer` (special tokens excluded from JSON), with `logitCount` ids
    /// (the model's vocabulary size, which may be padded past the tokenizer's).
    public convenience init(tokenizer: Tokenizer, logitCount: Int? = nil) {
        self.init(tokenBytes: tokenizer.tokenBytesTable(), count: logitCount)
    }
}
