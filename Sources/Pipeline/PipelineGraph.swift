import ForgeCore

/// The stage DAG: `needs:` edges, checked for dangling names and cycles; topological order
/// (file order among ready stages), downstream sets, text and Graphviz DOT renderings.
public enum PipelineGraph {
    static func checkNeeds(_ stages: [StageDefinition]) throws {
        let names = Set(stages.map(\.name))
        for s in stages {
            for (need, mark) in zip(s.needs, s.needMarks) {
                if need == s.name { throw pipelineError("stage '\(s.name)' needs itself", at: mark, stage: s.name) }
                guard names.contains(need) else {
                    throw pipelineError("needs '\(need)', which names no stage (stages: \(stages.map(\.name).joined(separator: ", ")))", at: mark, stage: s.name)
                }
            }
        }
        if let cycle = findCycle(stages) {
            let first = stages.first { $0.name == cycle[0] }!
            let k = first.needs.firstIndex(of: cycle[1]) ?? 0
            let mark = k < first.needMarks.count ? first.needMarks[k] : first.mark
            throw pipelineError("the stages form a cycle: \(cycle.joined(separator: " → ")) (each needs the next)", at: mark, stage: first.name)
        }
    }

    /// A cycle as [a, b, …, a] where each needs the next, or nil.
    static func findCycle(_ stages: [StageDefinition]) -> [String]? {
        let byName = Dictionary(uniqueKeysWithValues: stages.map { ($0.name, $0) })
        var color: [String: Int] = [:]  // 0 new, 1 on stack, 2 done
        var stack: [String] = []
        func visit(_ n: String) -> [String]? {
            color[n] = 1
            stack.append(n)
            for m in byName[n]?.needs ?? [] {
                if color[m, default: 0] == 1 {
                    let start = stack.firstIndex(of: m)!
                    return Array(stack[start...]) + [m]
                }
                if color[m, default: 0] == 0, let c = visit(m) { return c }
            }
            stack.removeLast()
            color[n] = 2
            return nil
        }
        for s in stages where color[s.name, default: 0] == 0 {
            if let c = visit(s.name) { return c }
        }
        return nil
    }

    /// Kahn's algorithm; among ready stages, file order.
    public static func topologicalOrder(_ p: PipelineDefinition) -> [StageDefinition] {
        var done = Set<String>()
        var out: [StageDefinition] = []
        while out.count < p.stages.count {
            guard let next = p.stages.first(where: { !done.contains($0.name) && $0.needs.allSatisfy(done.contains) }) else { break }
            done.insert(next.name)
            out.append(next)
        }
        return out
    }

    /// Depth of each stage: 0 for stages needing nothing, else 1 + the deepest need.
    public static func levels(_ p: PipelineDefinition) -> [String: Int] {
        var level: [String: Int] = [:]
        for s in topologicalOrder(p) { level[s.name] = (s.needs.compactMap { level[$0] }.max() ?? -1) + 1 }
        return level
    }

    /// Every stage that (transitively) needs `name`.
    public static func downstream(of name: String, in p: PipelineDefinition) -> Set<String> {
        var out = Set<String>()
        var changed = true
        while changed {
            changed = false
            for s in p.stages where !out.contains(s.name) && s.needs.contains(where: { $0 == name || out.contains($0) }) {
                out.insert(s.name); changed = true
            }
        }
        return out
    }

    /// Every stage `name` (transitively) needs.
    public static func upstream(of name: String, in p: PipelineDefinition) -> Set<String> {
        var out = Set<String>()
        var frontier = p.stage(name)?.needs ?? []
        while let n = frontier.popLast() {
            if out.insert(n).inserted { frontier += p.stage(n)?.needs ?? [] }
        }
        return out
    }

    /// Graphviz DOT: one node per stage (label: name and kind), one edge per `needs:`.
    public static func dot(_ p: PipelineDefinition, actions: [String: String] = [:]) -> String {
        func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
        var out = "digraph \(q(p.name)) {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
        for s in topologicalOrder(p) {
            var label = "\(s.name)\\n(\(s.kind))"
            var extra = ""
            if let a = actions[s.name] {
                label += "\\n\(a)"
                extra = a.hasPrefix("run") ? ", color=\"#c05000\"" : ", color=\"#2a7a2a\""
            }
            out += "  \(q(s.name)) [label=\"\(label)\"\(extra)];\n"
        }
        for s in topologicalOrder(p) {
            for n in s.needs { out += "  \(q(n)) -> \(q(s.name));\n" }
        }
        return out + "}\n"
    }

    /// Stages by level: "1. ingest [ingest]", "3. generate-detail [generate] ← sample-images".
    public static func text(_ p: PipelineDefinition) -> String {
        let lv = levels(p)
        var lines: [String] = []
        for s in topologicalOrder(p) {
            let needs = s.needs.isEmpty ? "" : " ← " + s.needs.joined(separator: ", ")
            lines.append("  \(lv[s.name]! + 1). \(s.name) [\(s.kind)]\(needs)")
        }
        return lines.joined(separator: "\n")
    }
}
