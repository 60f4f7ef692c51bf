import ForgeCore
import Foundation

/// A stage after validation: kind known, params type-checked and variables substituted.
public struct StageDefinition: Sendable {
    public var name: String
    public var kind: String
    public var params: StageParams
    public var needs: [String]
    public var needMarks: [SourceMark]
    /// Where the stage is defined (its name / list item).
    public var mark: SourceMark
    public var description: String?
}

/// Typed access to a stage's validated parameters.
public struct StageParams: Sendable {
    public var entries: [PEntry]
    public init(_ entries: [PEntry]) { self.entries = entries }

    public func node(_ key: String) -> PNode? { entries.first { $0.key == key }?.node }
    public func has(_ key: String) -> Bool { node(key) != nil }

    public func string(_ key: String) -> String? { node(key)?.string }
    public func int(_ key: String) -> Int? { if case .int(let i)? = node(key)?.value { return i }; return nil }
    public func bool(_ key: String) -> Bool? { if case .bool(let b)? = node(key)?.value { return b }; return nil }
    public func double(_ key: String) -> Double? {
        switch node(key)?.value {
        case .double(let d)?: return d
        case .int(let i)?: return Double(i)
        default: return nil
        }
    }
    public func stringList(_ key: String) -> [String]? {
        switch node(key)?.value {
        case .string(let s)?: return [s]
        case .list(let l)?: return l.compactMap(\.string)
        default: return nil
        }
    }
    public func map(_ key: String) -> [PEntry]? { node(key)?.entries }
}

/// A validated pipeline file.
public struct PipelineDefinition: Sendable {
    public var path: String
    public var name: String
    public var description: String?
    public var vars: [(name: String, value: PValue)]
    public var database: String
    public var promptsDir: String?
    public var seedsDir: String?
    /// Stages running at once, at most.
    public var maxParallel: Int
    /// LLM requests in flight at once across every generate stage (the shared limiter).
    public var maxInFlight: Int
    /// In file order.
    public var stages: [StageDefinition]
    /// Client-side pacing shared by every generate stage talking to one server (nil = none;
    /// the server's `x-ratelimit-*` headers still apply).
    public var requestsPerMinute: Int? = nil
    public var tokensPerMinute: Int? = nil

    public func stage(_ name: String) -> StageDefinition? { stages.first { $0.name == name } }
}
