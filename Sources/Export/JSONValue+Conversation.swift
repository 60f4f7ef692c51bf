import ForgeCore

extension JSONParseOptions {
    /// Stored conversations_json: every member is kept (so an export re-emits exactly what was
    /// stored); lone surrogates become U+FFFD.
    static let export = JSONParseOptions(duplicateKeys: .keepAll, loneSurrogates: .replace)
}

extension JSONValue {
    /// The turns of a LLaVA conversation: (from, value) for each object with string "from" and "value".
    var turns: [(from: String, value: String)] {
        guard case .array(let items) = self else { return [] }
        var out: [(from: String, value: String)] = []
        out.reserveCapacity(items.count)
        for item in items {
            guard case .object(let members) = item else { continue }
            var from: String?, value: String?
            for (k, v) in members {
                if k == "from", case .string(let s) = v { from = s }
                if k == "value", case .string(let s) = v { value = s }
            }
            if let from, let value { out.append((from, value)) }
        }
        return out
    }
}
