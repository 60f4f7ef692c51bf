import Foundation

/// Text and JSON renderings of a `CheckpointSummary`.
extension CheckpointSummary {
    /// Tensors sharing a name pattern (layer numbers replaced by `N`), dtype and shape.
    public struct TensorGroup: Equatable {
        public var pattern: String
        public var dtype: String
        public var shape: [Int]
        public var count: Int
    }

    /// Above this many tensors, the text table groups repeated layers unless asked for all.
    public static let groupingThreshold = 40

    /// Groups in first-appearance order; `blk.12.attn_q.weight` and `model.layers.3.mlp…` become `….N.…`.
    public var tensorGroups: [TensorGroup] {
        var groups: [TensorGroup] = []
        var index: [String: Int] = [:]
        for tensor in tensors {
            let pattern = Self.layerPattern(tensor.name)
            let key = "\(pattern)|\(tensor.dtype)|\(tensor.shape)"
            if let i = index[key] {
                groups[i].count += 1
            } else {
                index[key] = groups.count
                groups.append(TensorGroup(pattern: pattern, dtype: tensor.dtype, shape: tensor.shape, count: 1))
            }
        }
        return groups
    }

    /// Dot-separated all-digit components replaced by `N`.
    static func layerPattern(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false)
            .map { part in !part.isEmpty && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) ? "N" : String(part) }
            .joined(separator: ".")
    }

    public func renderText(allTensors: Bool) -> String {
        var lines: [String] = []
        let formatName: String
        switch format {
        case "gguf": formatName = "GGUF" + (formatVersion.map { " v\($0)" } ?? "")
        case "safetensors": formatName = "safetensors"
        default: formatName = "Hugging Face folder"
        }
        lines.append("\(path)  (\(formatName), \(Self.bytes(totalBytes)))")
        var archLine = architecture ?? "unknown"
        if !architectures.isEmpty { archLine += "  [\(architectures.joined(separator: ", "))]" }
        if let name { archLine += "  \"\(name)\"" }
        lines.append(Self.field("architecture", archLine))
        var rows: [String] = []
        for (key, value) in hyperparameters {
            let item = "\(key) \(value)"
            if let last = rows.last, last.count + item.count + 3 <= 84 {
                rows[rows.count - 1] = last + " · " + item
            } else {
                rows.append(item)
            }
        }
        for (i, row) in rows.enumerated() { lines.append(Self.field(i == 0 ? "hyperparameters" : "", row)) }
        if let tokenizer {
            var text = (tokenizer.model ?? "?") + " (\(tokenizer.source))"
            var facts: [String] = []
            if let vocab = tokenizer.vocabSize { facts.append("\(vocab) tokens") }
            if let merges = tokenizer.merges { facts.append("\(merges) merges") }
            if let added = tokenizer.addedTokens { facts.append("\(added) added tokens") }
            facts += tokenizer.details
            if !facts.isEmpty { text += ": " + facts.joined(separator: ", ") }
            lines.append(Self.field("tokenizer", text))
        } else {
            lines.append(Self.field("tokenizer", "none found"))
        }
        lines.append(Self.field("parameters", "\(Self.count(totalParameters)) (\(totalParameters)) in \(tensors.count) tensors"))
        for entry in parametersByDType {
            lines.append("    " + Self.pad(entry.dtype, 8) + Self.pad("\(entry.tensors) tensors", 14) + Self.pad(Self.count(entry.parameters) + " params", 18)
                         + Self.bytes(entry.bytes))
        }
        if files.count > 1 {
            lines.append(Self.field("files", "\(files.count)"))
            for file in files { lines.append("    " + Self.pad(Self.bytes(file.bytes), 12) + file.path) }
        }
        for note in notes { lines.append(Self.field("note", note)) }

        let grouped = !allTensors && tensors.count > Self.groupingThreshold
        let table: [(String, String, String)]
        if grouped {
            table = tensorGroups.map { group in
                (group.pattern + (group.count > 1 ? "  ×\(group.count)" : ""), group.dtype, Self.shape(group.shape))
            }
            lines.append("tensors (\(tensors.count), layers grouped; --tensors lists all):")
        } else {
            table = tensors.map { ($0.name, $0.dtype, Self.shape($0.shape)) }
            lines.append("tensors (\(tensors.count)):")
        }
        let nameWidth = min(72, table.map(\.0.count).max() ?? 0) + 2
        for (name, dtype, shape) in table {
            lines.append("    " + Self.pad(name, nameWidth) + Self.pad(dtype, 8) + shape)
        }
        return lines.joined(separator: "\n")
    }

    /// Pretty, key-sorted JSON with every tensor listed.
    public func renderJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    // MARK: Formatting

    static func field(_ label: String, _ value: String) -> String { pad(label, 16) + value }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    static func shape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

    /// 1234567 → "1.23M".
    static func count(_ n: Int) -> String {
        let value = Double(n)
        if n >= 1_000_000_000 { return String(format: "%.2fB", value / 1e9) }
        if n >= 1_000_000 { return String(format: "%.2fM", value / 1e6) }
        if n >= 1_000 { return String(format: "%.1fK", value / 1e3) }
        return String(n)
    }

    static func bytes(_ n: Int) -> String {
        let value = Double(n)
        if n >= 1 << 30 { return String(format: "%.2f GiB", value / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.1f MiB", value / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", value / Double(1 << 10)) }
        return "\(n) B"
    }
}
