import ForgeCore
import Yams

/// Where something is in a pipeline file: `file:line:column` (1-based, as Yams reports it).
public struct SourceMark: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) { self.file = file; self.line = line; self.column = column }

    /// Marks values that came from the command line (`--set`).
    public static func commandLine(_ text: String) -> SourceMark { SourceMark(file: "--set \(text)", line: 0, column: 0) }

    public var description: String { line > 0 ? "\(file):\(line):\(column)" : file }
}

/// A YAML value with its type resolved the way YAML 1.1 core does (plain `5` is an int, `"5"` a
/// string) and every node's position kept, so validation errors can point at the exact spot.
public indirect enum PValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([PNode])
    case map([PEntry])

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .list: return "a list"
        case .map: return "a mapping"
        }
    }

    /// Canonical text for fingerprints: stable across key order in the file.
    public var canonical: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return "d" + String(d)
        case .string(let s): return JSONTextQuote.quote(s)
        case .list(let l): return "[" + l.map(\.value.canonical).joined(separator: ",") + "]"
        case .map(let m): return "{" + m.sorted { $0.key < $1.key }.map { JSONTextQuote.quote($0.key) + ":" + $0.node.value.canonical }.joined(separator: ",") + "}"
        }
    }

    /// Short human form for plans and messages.
    public var display: String {
        switch self {
        case .string(let s): return s
        default: return canonical
        }
    }
}

public struct PNode: Sendable, Equatable {
    public var value: PValue
    public var mark: SourceMark
    public init(_ value: PValue, _ mark: SourceMark) { self.value = value; self.mark = mark }

    public var entries: [PEntry]? { if case .map(let m) = value { return m }; return nil }
    public var string: String? { if case .string(let s) = value { return s }; return nil }
    public func entry(_ key: String) -> PEntry? { entries?.first { $0.key == key } }
}

public struct PEntry: Sendable, Equatable {
    public var key: String
    public var keyMark: SourceMark
    public var node: PNode
    public init(key: String, keyMark: SourceMark, node: PNode) { self.key = key; self.keyMark = keyMark; self.node = node }
}

enum JSONTextQuote {
    static func quote(_ s: String) -> String {
        var out = ""
        JSONText.appendString(s, to: &out)
        return out
    }
}

/// The error every pipeline problem becomes: `file:line:column: stage 'x': configuration: …`.
func pipelineError(_ message: String, at mark: SourceMark, stage: String? = nil) -> ForgeError {
    ForgeError(.config, message, file: mark.description, location: stage.map { "stage '\($0)'" })
}

/// Yams nodes → `PNode`, keeping marks; duplicate keys and non-scalar keys are errors.
enum YAMLConversion {
    static func convert(_ node: Node, file: String) throws -> PNode {
        let mark = SourceMark(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
        switch node {
        case .scalar(let scalar):
            let tag = Tag.Name(rawValue: node.tag.rawValue)
            if tag == .null { return PNode(.null, mark) }
            if tag == .bool, let b = node.bool { return PNode(.bool(b), mark) }
            if tag == .int, let i = node.int { return PNode(.int(i), mark) }
            if tag == .float, let d = node.float { return PNode(.double(d), mark) }
            return PNode(.string(scalar.string), mark)
        case .sequence(let seq):
            return PNode(.list(try seq.map { try convert($0, file: file) }), mark)
        case .mapping(let map):
            var entries: [PEntry] = []
            for (k, v) in map {
                let keyMark = SourceMark(file: file, line: k.mark?.line ?? 0, column: k.mark?.column ?? 0)
                guard case .scalar(let ks) = k else { throw pipelineError("mapping keys must be plain names", at: keyMark) }
                if entries.contains(where: { $0.key == ks.string }) {
                    throw pipelineError("duplicate key '\(ks.string)'", at: keyMark)
                }
                entries.append(PEntry(key: ks.string, keyMark: keyMark, node: try convert(v, file: file)))
            }
            return PNode(.map(entries), mark)
        case .alias:
            throw pipelineError("YAML aliases are not supported in pipeline files", at: mark)
        }
    }
}
