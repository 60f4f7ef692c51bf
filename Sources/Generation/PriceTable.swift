import ForgeCore
import Foundation
import Yams

/// Dollars per million tokens, by model name, for the run's cost estimate.
///
/// The built-in entries are EXAMPLES (list prices as published at some point; they change) —
/// give your own with `--prices FILE`, a YAML/JSON map `model: {input: $/1M, output: $/1M}`.
/// A model is matched exactly, else by the longest entry that prefixes it (`gpt-4o-2024-08-06`
/// → `gpt-4o`).
public struct PriceTable: Sendable, Equatable {
    public struct Price: Sendable, Equatable {
        public var inputPerMillion: Double
        public var outputPerMillion: Double
        public init(inputPerMillion: Double, outputPerMillion: Double) {
            self.inputPerMillion = inputPerMillion
            self.outputPerMillion = outputPerMillion
        }
    }

    public var prices: [String: Price]

    public init(_ prices: [String: Price] = [:]) { self.prices = prices }

    /// Example prices only (see the type's documentation).
    public static let examples = PriceTable([
        "gpt-4-0613": Price(inputPerMillion: 30, outputPerMillion: 60),   // what LLaVA used
        "gpt-4o": Price(inputPerMillion: 2.5, outputPerMillion: 10),
        "gpt-4o-mini": Price(inputPerMillion: 0.15, outputPerMillion: 0.6),
        "gpt-4.1-mini": Price(inputPerMillion: 0.4, outputPerMillion: 1.6),
    ])

    public func price(for model: String) -> Price? {
        if let p = prices[model] { return p }
        return prices.filter { model.hasPrefix($0.key) }.max { $0.key.count < $1.key.count }?.value
    }

    /// Estimated dollars, or nil for a model without a price.
    public func cost(model: String, promptTokens: Int, completionTokens: Int) -> Double? {
        guard let p = price(for: model) else { return nil }
        return (Double(promptTokens) * p.inputPerMillion + Double(completionTokens) * p.outputPerMillion) / 1_000_000
    }

    /// Reads `model: {input: N, output: N}` (YAML or JSON); entries replace the examples'.
    public static func load(path: String, over base: PriceTable = .examples) throws -> PriceTable {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ForgeError(.io, "cannot read the price table", file: path)
        }
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch {
            throw ForgeError(.badInput, "the price table is not YAML/JSON: \(error)", file: path)
        }
        guard let map = root as? [String: Any] else {
            throw ForgeError(.badInput, "the price table must be a map of model → {input, output}", file: path)
        }
        var table = base
        for (model, value) in map {
            guard let entry = value as? [String: Any],
                  let input = number(entry["input"]), let output = number(entry["output"]), input >= 0, output >= 0 else {
                throw ForgeError(.badInput, "price for '\(model)' needs numeric input and output ($ per 1M tokens)", file: path)
            }
            table.prices[model] = Price(inputPerMillion: input, outputPerMillion: output)
        }
        return table
    }

    static func number(_ v: Any?) -> Double? {
        switch v {
        case let d as Double: return d
        case let i as Int: return Double(i)
        case let s as String: return Double(s)
        default: return nil
        }
    }
}
