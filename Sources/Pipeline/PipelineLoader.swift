import ForgeCore
import Foundation
import Yams

/// Reads and validates `pipelines/*.yaml`. Everything is checked before anything runs: YAML
/// syntax, top-level and stage keys, stage kinds, each kind's parameter schema, variables,
/// `--set` overrides, `needs:` references and cycles. Every error names file:line:column and
/// the stage.
///
///     name: demo
///     vars: {root: "${pipeline_dir}/..", n: 4}
///     database: ${root}/out/demo.db
///     stages:
///       ingest:   {kind: ingest, params: {captions: ..., instances: ...}}
///       contexts: {kind: contexts, needs: ingest}
public enum PipelineLoader {
    public static let topLevelKeys = ["name", "description", "vars", "database", "prompts", "seeds", "max_parallel", "max_in_flight", "requests_per_minute", "tokens_per_minute", "stages"]

    /// `overrides`: `key=value` (a variable) or `stage.param=value` (one stage parameter); values
    /// are typed (true/false, integers, numbers, else text) and must match the variable's type.
    public static func load(path: String, overrides: [String] = [], environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PipelineDefinition {
        guard let data = FileManager.default.contents(atPath: path) else { throw ForgeError(.io, "cannot read the pipeline file", file: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw ForgeError(.badInput, "the pipeline file is not UTF-8 text", file: path) }
        return try parse(text: text, path: path, overrides: overrides, environment: environment)
    }

    public static func parse(text: String, path: String, overrides: [String] = [], environment: [String: String] = [:]) throws -> PipelineDefinition {
        let top = SourceMark(file: path, line: 1, column: 1)
        let composed: Node?
        do { composed = try Yams.compose(yaml: text) } catch let e as YamlError {
            throw yamlError(e, path: path)
        } catch {
            throw ForgeError(.config, "malformed YAML: \(error)", file: path)
        }
        guard let composed else { throw pipelineError("the pipeline file is empty", at: top) }
        let root = try YAMLConversion.convert(composed, file: path)
        guard let entries = root.entries else { throw pipelineError("a pipeline file is a mapping with name, vars, stages, …", at: root.mark) }
        for e in entries where !topLevelKeys.contains(e.key) {
            throw pipelineError("unknown top-level key '\(e.key)' (known: \(topLevelKeys.joined(separator: ", ")))", at: e.keyMark)
        }
        // Variables: built-ins, then the file's (in order, each may use the earlier ones), then --set.
        let pipelineDir = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
        var scope = VariableScope(environment: environment)
        scope.define("pipeline_dir", .string(pipelineDir))
        scope.define("cwd", .string(FileManager.default.currentDirectoryPath))
        var declared: [(String, PValue)] = []
        var varOverrides: [(String, String)] = []
        var paramOverrides: [(stage: String, param: String, text: String, raw: String)] = []
        for o in overrides {
            guard let eq = o.firstIndex(of: "="), eq != o.startIndex else {
                throw ForgeError(.usage, "--set expects key=value or stage.param=value, got '\(o)'")
            }
            let key = String(o[..<eq]), value = String(o[o.index(after: eq)...])
            if let dot = key.firstIndex(of: ".") {
                paramOverrides.append((String(key[..<dot]), String(key[key.index(after: dot)...]), value, o))
            } else {
                varOverrides.append((key, value))
            }
        }
        if let vars = entries.first(where: { $0.key == "vars" }) {
            guard let list = vars.node.entries else { throw pipelineError("vars must be a mapping of names to values", at: vars.node.mark) }
            for v in list {
                guard isIdentifier(v.key) else { throw pipelineError("variable names are letters, digits and _ (got '\(v.key)')", at: v.keyMark) }
                switch v.node.value {
                case .list, .map: throw pipelineError("variable '\(v.key)' must be a single value (string, number or boolean)", at: v.node.mark)
                default: break
                }
                var value = try scope.substitute(v.node, stage: nil).value
                if let o = varOverrides.last(where: { $0.0 == v.key }) {
                    value = try typedOverride(o.1, like: value, name: v.key)
                }
                scope.define(v.key, value)
                declared.append((v.key, value))
            }
        }
        for (k, _) in varOverrides where !declared.contains(where: { $0.0 == k }) {
            let known = declared.map(\.0)
            throw ForgeError(.usage, "--set \(k)=…: the pipeline has no variable '\(k)'" + (known.isEmpty ? "" : " (variables: \(known.joined(separator: ", ")))") + "; for a stage parameter use STAGE.PARAM=VALUE")
        }

        func topString(_ key: String) throws -> String? {
            guard let e = entries.first(where: { $0.key == key }) else { return nil }
            let n = try scope.substitute(e.node, stage: nil)
            guard let s = n.string else { throw pipelineError("'\(key)' must be a string, got \(n.value.typeName)", at: n.mark) }
            return s
        }
        func topInt(_ key: String, default d: Int) throws -> Int {
            guard let e = entries.first(where: { $0.key == key }) else { return d }
            let n = try scope.substitute(e.node, stage: nil)
            guard case .int(let i) = n.value, i >= 1 else { throw pipelineError("'\(key)' must be a positive integer, got \(n.value.display)", at: n.mark) }
            return i
        }
        func optionalTopInt(_ key: String) throws -> Int? {
            guard entries.contains(where: { $0.key == key }) else { return nil }
            return try topInt(key, default: 1)
        }
        guard let name = try topString("name"), !name.isEmpty else { throw pipelineError("missing 'name' (the pipeline's name)", at: top) }
        guard let stagesEntry = entries.first(where: { $0.key == "stages" }) else { throw pipelineError("missing 'stages'", at: top) }

        var stages = try parseStages(stagesEntry.node, scope: scope)
        // --set stage.param=value
        for o in paramOverrides {
            guard let k = stages.firstIndex(where: { $0.name == o.stage }) else {
                throw ForgeError(.usage, "--set \(o.raw): no stage '\(o.stage)' and no variable '\(o.stage).\(o.param)' (stages: \(stages.map(\.name).joined(separator: ", ")))")
            }
            let mark = SourceMark.commandLine(o.raw)
            let value = typedLiteral(o.text)
            var params = stages[k].params.entries
            if let i = params.firstIndex(where: { $0.key == o.param }) {
                params[i].node = PNode(value, mark)
            } else {
                params.append(PEntry(key: o.param, keyMark: mark, node: PNode(value, mark)))
            }
            stages[k].params = StageParams(params)
        }
        for s in stages {
            guard let schema = StageSchemas.schema(s.kind) else { continue }
            try StageSchemas.validate(params: s.params.entries, schema: schema, stage: s.name, stageMark: s.mark)
        }
        try PipelineGraph.checkNeeds(stages)

        return PipelineDefinition(
            path: path, name: name, description: try topString("description"), vars: declared,
            database: standardized(try topString("database") ?? "\(name).db"),
            promptsDir: try topString("prompts").map(standardized), seedsDir: try topString("seeds").map(standardized),
            maxParallel: try topInt("max_parallel", default: 4), maxInFlight: try topInt("max_in_flight", default: 8),
            stages: stages,
            requestsPerMinute: try optionalTopInt("requests_per_minute"),
            tokensPerMinute: try optionalTopInt("tokens_per_minute"))
    }

    /// `stages:` as a mapping (name → body) or a list of bodies with `name:`.
    static func parseStages(_ node: PNode, scope: VariableScope) throws -> [StageDefinition] {
        var bodies: [(name: String, nameMark: SourceMark, body: PNode)] = []
        switch node.value {
        case .map(let m):
            for e in m { bodies.append((e.key, e.keyMark, e.node)) }
        case .list(let l):
            for item in l {
                guard let n = item.entry("name"), let s = n.node.string, !s.isEmpty else {
                    throw pipelineError("each stage in a list needs 'name:'", at: item.mark)
                }
                bodies.append((s, n.node.mark, item))
            }
        default:
            throw pipelineError("'stages' must be a mapping of stage names or a list of stages", at: node.mark)
        }
        guard !bodies.isEmpty else { throw pipelineError("'stages' is empty", at: node.mark) }
        var out: [StageDefinition] = []
        for (name, nameMark, body) in bodies {
            guard isStageName(name) else { throw pipelineError("stage names are letters, digits, '-' and '_' (got '\(name)')", at: nameMark) }
            if out.contains(where: { $0.name == name }) { throw pipelineError("a stage named '\(name)' is defined twice", at: nameMark) }
            guard let entries = body.entries else { throw pipelineError("a stage is a mapping with kind, params, needs", at: body.mark, stage: name) }
            for e in entries where !StageSchemas.stageKeys.contains(e.key) {
                throw pipelineError("unknown key '\(e.key)' in a stage (known: kind, params, needs, description)", at: e.keyMark, stage: name)
            }
            guard let kindEntry = entries.first(where: { $0.key == "kind" }) else { throw pipelineError("missing 'kind'", at: nameMark, stage: name) }
            guard let kind = kindEntry.node.string else { throw pipelineError("'kind' must be a string", at: kindEntry.node.mark, stage: name) }
            guard let schema = StageSchemas.schema(kind) else {
                throw pipelineError("unknown stage kind '\(kind)' (kinds: \(StageSchemas.all.filter(\.available).map(\.kind).joined(separator: ", ")))", at: kindEntry.node.mark, stage: name)
            }
            guard schema.available else {
                throw pipelineError("stage kind '\(kind)' is not available yet (\(schema.summary))", at: kindEntry.node.mark, stage: name)
            }
            var params: [PEntry] = []
            if let p = entries.first(where: { $0.key == "params" }) {
                switch p.node.value {
                case .null: break
                case .map(let m): params = try m.map { PEntry(key: $0.key, keyMark: $0.keyMark, node: try scope.substitute($0.node, stage: name)) }
                default: throw pipelineError("'params' must be a mapping", at: p.node.mark, stage: name)
                }
            }
            var needs: [String] = [], needMarks: [SourceMark] = []
            if let n = entries.first(where: { $0.key == "needs" }) {
                switch n.node.value {
                case .string(let s): needs = [s]; needMarks = [n.node.mark]
                case .list(let l):
                    for item in l {
                        guard let s = item.string else { throw pipelineError("'needs' lists stage names", at: item.mark, stage: name) }
                        needs.append(s); needMarks.append(item.mark)
                    }
                case .null: break
                default: throw pipelineError("'needs' must be a stage name or a list of them", at: n.node.mark, stage: name)
                }
            }
            let desc = entries.first(where: { $0.key == "description" })?.node.string
            out.append(StageDefinition(name: name, kind: kind, params: StageParams(params), needs: needs, needMarks: needMarks, mark: nameMark, description: desc))
        }
        return out
    }

    /// "a/pipelines/../prompts" → "a/prompts" (so messages and stored paths read well).
    static func standardized(_ path: String) -> String { (path as NSString).standardizingPath }

    static func isIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_") }
    }

    static func isStageName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-") }
    }

    /// A `--set` value typed like YAML plain scalars: true/false, integers, numbers, else text.
    static func typedLiteral(_ s: String) -> PValue {
        if s == "true" { return .bool(true) }
        if s == "false" { return .bool(false) }
        if let i = Int(s) { return .int(i) }
        if let d = Double(s), s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .double(d) }
        return .string(s)
    }

    /// An override must keep the variable's type (a string variable takes any text).
    static func typedOverride(_ s: String, like current: PValue, name: String) throws -> PValue {
        let v = typedLiteral(s)
        switch (current, v) {
        case (.string, _): return .string(s)
        case (.int, .int), (.bool, .bool), (.double, .double), (.null, _): return v
        case (.double, .int(let i)): return .double(Double(i))
        default:
            throw ForgeError(.usage, "--set \(name)=\(s): variable '\(name)' is \(current.typeName) (\(current.display)), got \(v.typeName)")
        }
    }

    static func yamlError(_ e: YamlError, path: String) -> ForgeError {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ForgeError(.config, "malformed YAML: \(problem)", file: "\(path):\(mark.line):\(mark.column)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ForgeError(.config, "duplicate key\(duplicates.count == 1 ? "" : "s") \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in the mapping that starts here",
                              file: "\(path):\(context.mark.line):\(context.mark.column)")
        default:
            return ForgeError(.config, "malformed YAML: \(e)", file: path)
        }
    }
}

/// `${name}` and `${env:NAME}` substitution. A value that is exactly one `${name}` takes the
/// variable's type (so `limit: ${n}` is an integer); inside longer text it is interpolated.
struct VariableScope {
    var values: [String: PValue] = [:]
    let environment: [String: String]

    init(environment: [String: String]) { self.environment = environment }

    mutating func define(_ name: String, _ value: PValue) { values[name] = value }

    func substitute(_ node: PNode, stage: String?) throws -> PNode {
        switch node.value {
        case .string(let s):
            guard s.contains("${") else { return node }
            return PNode(try expand(s, mark: node.mark, stage: stage), node.mark)
        case .list(let l):
            return PNode(.list(try l.map { try substitute($0, stage: stage) }), node.mark)
        case .map(let m):
            return PNode(.map(try m.map { PEntry(key: $0.key, keyMark: $0.keyMark, node: try substitute($0.node, stage: stage)) }), node.mark)
        default:
            return node
        }
    }

    func lookup(_ ref: String, mark: SourceMark, stage: String?) throws -> PValue {
        if ref.hasPrefix("env:") {
            return .string(environment[String(ref.dropFirst(4))] ?? "")
        }
        guard let v = values[ref] else {
            let known = values.keys.sorted()
            throw pipelineError("unknown variable '${\(ref)}' (defined: \(known.joined(separator: ", ")); environment: ${env:NAME})", at: mark, stage: stage)
        }
        return v
    }

    func expand(_ s: String, mark: SourceMark, stage: String?) throws -> PValue {
        let chars = Array(s)
        var out = ""
        var i = 0
        var pieces = 0
        var single: PValue?
        while i < chars.count {
            if chars[i] == "$", i + 1 < chars.count, chars[i + 1] == "{" {
                guard let close = chars[(i + 2)...].firstIndex(of: "}") else {
                    throw pipelineError("unterminated '${' in \"\(s)\"", at: mark, stage: stage)
                }
                let ref = String(chars[(i + 2)..<close])
                let v = try lookup(ref, mark: mark, stage: stage)
                single = v
                out += v.display
                pieces += 1
                i = close + 1
            } else {
                out.append(chars[i]); pieces += 2; i += 1
            }
        }
        if pieces == 1, let single { return single }
        return .string(out)
    }
}
