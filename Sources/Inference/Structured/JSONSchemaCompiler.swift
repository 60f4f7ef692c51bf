import ForgeCore

/// JSON schema (the subset OpenAI strict mode and real clients send) → `JSONGrammar`.
///
/// Supported: `type` (one name or a list), `properties` + `required` (emitted in schema order;
/// required ones always, others optionally), `additionalProperties` (false, true or a schema:
/// no extra keys are ever generated, which every one of them allows), `items`, `minItems`,
/// `maxItems`, `minLength`, `maxLength`, `enum`, `const`, `anyOf`, `oneOf` (generated as anyOf:
/// the alternatives of real schemas are disjoint), `$ref` to `#/$defs/…` or `#/definitions/…`
/// (recursion allowed), and the annotations `title`, `description`, `default`, `examples`,
/// `$schema`, `$id`, `$comment`, `name`, `strict`. Any other keyword is an error that names it and
/// where it is, so the server answers 400 instead of generating JSON the schema rejects.
struct JSONSchemaCompiler {
    static let annotations: Set<String> = ["title", "description", "default", "examples", "$schema", "$id", "$comment",
                                          "$defs", "definitions", "name", "strict", "deprecated", "readOnly", "writeOnly"]
    static let structural: Set<String> = ["type", "properties", "required", "additionalProperties", "items", "minItems",
                                         "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "oneOf", "$ref"]
    /// Objects compile into a 64-bit mask of candidate keys.
    static let maximumProperties = 64

    let grammar: JSONGrammar
    let document: JSONValue
    private var refNodes: [String: Int32] = [:]

    init(document: JSONValue, maxWhitespaceRun: Int) {
        self.document = document
        grammar = JSONGrammar(maxWhitespaceRun: maxWhitespaceRun)
    }

    /// Compiles `schemaText` (a JSON schema document).
    static func compile(schemaText: String, maxWhitespaceRun: Int) throws -> JSONGrammar {
        let document: JSONValue
        do {
            document = try JSONParser.parse(schemaText, options: .schema)
        } catch let error as JSONSyntaxError {
            throw error.forgeError(source: "response_format.json_schema.schema")
        }
        var compiler = JSONSchemaCompiler(document: document, maxWhitespaceRun: maxWhitespaceRun)
        compiler.grammar.keyStringNode = compiler.grammar.add(.init(kind: .string, a: 0, b: 0, c: JSONGrammar.unbounded))
        compiler.grammar.root = try compiler.compile(document, path: "#")
        try compiler.checkSatisfiable()
        return compiler.grammar
    }

    func fail(_ message: String, _ path: String) -> ForgeError {
        ForgeError(.badInput, message, location: "response_format.json_schema.schema \(path)")
    }

    mutating func compile(_ schema: JSONValue, path: String) throws -> Int32 {
        if case .bool(let b) = schema {
            guard b else { throw fail("the schema `false` accepts nothing", path) }
            return try freeValue()
        }
        guard case .object(let members) = schema else { throw fail("a schema must be an object or a boolean", path) }
        for m in members where !Self.structural.contains(m.key) && !Self.annotations.contains(m.key) {
            throw fail("unsupported JSON-schema keyword '\(m.key)' (supported: \(Self.structural.sorted().joined(separator: ", ")))", "\(path)/\(m.key)")
        }
        if let ref = schema["$ref"] {
            guard members.count == 1 || members.allSatisfy({ $0.key == "$ref" || Self.annotations.contains($0.key) }) else {
                throw fail("'$ref' beside other constraints is not supported", path)
            }
            guard case .string(let target) = ref else { throw fail("'$ref' must be a string", path + "/$ref") }
            return try resolve(target, path: path + "/$ref")
        }
        if let c = schema["const"] { return literals([c], filter: schema, path: path) }
        if let e = schema["enum"] {
            guard case .array(let values) = e, !values.isEmpty else { throw fail("'enum' must be a non-empty array", path + "/enum") }
            return literals(values, filter: schema, path: path)
        }
        for key in ["anyOf", "oneOf"] {
            guard let list = schema[key] else { continue }
            guard case .array(let items) = list, !items.isEmpty else { throw fail("'\(key)' must be a non-empty array", "\(path)/\(key)") }
            guard schema["type"] == nil else { throw fail("'type' beside '\(key)' is not supported (put it in each alternative)", path) }
            var alternatives: [Int32] = []
            for (i, item) in items.enumerated() { alternatives.append(try compile(item, path: "\(path)/\(key)/\(i)")) }
            return anyOf(alternatives)
        }
        let types: [String]
        switch schema["type"] {
        case nil: types = inferredTypes(members)
        case .string(let t)?: types = [t]
        case .array(let list)?:
            types = try list.map { item -> String in
                guard case .string(let t) = item else { throw fail("'type' entries must be strings", path + "/type") }
                return t
            }
            guard !types.isEmpty else { throw fail("'type' must not be empty", path + "/type") }
        default: throw fail("'type' must be a string or a list of strings", path + "/type")
        }
        if types.isEmpty { return try freeValue() }
        var alternatives: [Int32] = []
        for t in types { alternatives.append(try compile(type: t, schema, path: path)) }
        return alternatives.count == 1 ? alternatives[0] : anyOf(alternatives)
    }

    /// A schema without `type`: the type its keywords imply, else any value.
    func inferredTypes(_ members: JSONObject) -> [String] {
        let keys = Set(members.map(\.key))
        if !keys.isDisjoint(with: ["properties", "required", "additionalProperties"]) { return ["object"] }
        if !keys.isDisjoint(with: ["items", "minItems", "maxItems"]) { return ["array"] }
        if !keys.isDisjoint(with: ["minLength", "maxLength"]) { return ["string"] }
        return []
    }

    func integer(_ schema: JSONValue, _ key: String, path: String) throws -> Int32? {
        guard let v = schema[key] else { return nil }
        guard case .number(let number) = v, let n = number.int ?? (number.double == number.double.rounded() ? Int(exactly: number.double) : nil), n >= 0 else {
            throw fail("'\(key)' must be a non-negative integer", "\(path)/\(key)")
        }
        return Int32(clamping: n)
    }

    mutating func compile(type: String, _ schema: JSONValue, path: String) throws -> Int32 {
        func reject(_ keys: [String]) throws {
            for k in keys where schema[k] != nil { throw fail("'\(k)' does not apply to type '\(type)'", "\(path)/\(k)") }
        }
        switch type {
        case "object":
            try reject(["items", "minItems", "maxItems", "minLength", "maxLength"])
            return try object(schema, path: path)
        case "array":
            try reject(["properties", "required", "minLength", "maxLength"])
            let minItems = try integer(schema, "minItems", path: path) ?? 0
            let maxItems = try integer(schema, "maxItems", path: path) ?? JSONGrammar.unbounded
            guard minItems <= maxItems else { throw fail("minItems \(minItems) > maxItems \(maxItems)", path) }
            let item: Int32
            if let items = schema["items"] {
                if case .array = items { throw fail("tuple-style 'items' (a list) is not supported", path + "/items") }
                item = try compile(items, path: path + "/items")
            } else {
                item = try freeValue()
            }
            return grammar.add(.init(kind: .array, a: item, b: minItems, c: maxItems))
        case "string":
            try reject(["properties", "required", "items", "minItems", "maxItems"])
            let minLength = try integer(schema, "minLength", path: path) ?? 0
            let maxLength = try integer(schema, "maxLength", path: path) ?? JSONGrammar.unbounded
            guard minLength <= maxLength else { throw fail("minLength \(minLength) > maxLength \(maxLength)", path) }
            return grammar.add(.init(kind: .string, a: 0, b: minLength, c: maxLength))
        case "number", "integer":
            try reject(["properties", "required", "items", "minItems", "maxItems", "minLength", "maxLength"])
            return grammar.add(.init(kind: .number, b: type == "integer" ? 1 : 0))
        case "boolean":
            return grammar.addLiterals([Array("true".utf8), Array("false".utf8)])
        case "null":
            return grammar.addLiterals([Array("null".utf8)])
        default:
            throw fail("unknown type '\(type)' (expected object, array, string, number, integer, boolean or null)", path + "/type")
        }
    }

    mutating func object(_ schema: JSONValue, path: String) throws -> Int32 {
        guard let props = schema["properties"] else {
            guard schema["required"] == nil else { throw fail("'required' without 'properties'", path + "/required") }
            return grammar.add(.init(kind: .freeObject, a: try freeValue()))
        }
        guard case .object(let members) = props else { throw fail("'properties' must be an object", path + "/properties") }
        guard members.count <= Self.maximumProperties else {
            throw fail("\(members.count) properties in one object (at most \(Self.maximumProperties) are supported)", path + "/properties")
        }
        var required: Set<String> = []
        if let r = schema["required"] {
            guard case .array(let names) = r else { throw fail("'required' must be a list of names", path + "/required") }
            for n in names {
                guard case .string(let name) = n else { throw fail("'required' must be a list of names", path + "/required") }
                guard members.contains(where: { $0.key == name }) else {
                    throw fail("required property '\(name)' is not in 'properties'", path + "/required")
                }
                required.insert(name)
            }
        }
        if let extra = schema["additionalProperties"] {
            switch extra {
            case .bool, .object: break  // never generating extra keys satisfies every value
            default: throw fail("'additionalProperties' must be a boolean or a schema", path + "/additionalProperties")
            }
        }
        // Value nodes first (they append their own rows), then this object's contiguous rows.
        var rows: [(key: [UInt8], node: Int32, required: Bool)] = []
        for m in members {
            let node = try compile(m.value, path: "\(path)/properties/\(m.key)")
            var key: [UInt8] = []
            JSONText.appendString(m.key, to: &key)
            rows.append((Array(key.dropFirst()), node, required.contains(m.key)))
        }
        let first = Int32(grammar.properties.count)
        var nextRequired = Int32(rows.count)
        var built: [JSONGrammar.Property] = []
        for (i, row) in rows.enumerated().reversed() {
            if row.required { nextRequired = Int32(i) }
            built.append(.init(keyStart: Int32(grammar.bytes.count), keyLength: Int32(row.key.count), node: row.node,
                               required: row.required, nextRequired: nextRequired))
            grammar.bytes += row.key
        }
        grammar.properties += built.reversed()
        return grammar.add(.init(kind: .object, a: first, b: Int32(rows.count)))
    }

    /// `const` / `enum` values as literal JSON texts, keeping those that match a `type` beside them.
    func literals(_ values: [JSONValue], filter schema: JSONValue, path: String) -> Int32 {
        var allowed: Set<String>?
        if case .string(let t)? = schema["type"] { allowed = [t] }
        if case .array(let list)? = schema["type"] {
            allowed = Set(list.compactMap { if case .string(let t) = $0 { return t } else { return nil } })
        }
        let kept = values.filter { v in
            guard let allowed else { return true }
            switch v {
            case .string: return allowed.contains("string")
            case .number(let n): return allowed.contains("number") || (allowed.contains("integer") && n.int != nil)
            case .bool: return allowed.contains("boolean")
            case .null: return allowed.contains("null")
            case .array: return allowed.contains("array")
            case .object: return allowed.contains("object")
            }
        }
        return grammar.addLiterals(kept.map(\.compactBytes))
    }

    mutating func anyOf(_ alternatives: [Int32]) -> Int32 {
        let first = Int32(grammar.alternatives.count)
        grammar.alternatives += alternatives
        return grammar.add(.init(kind: .anyOf, a: first, b: Int32(alternatives.count)))
    }

    /// Any JSON value (the schema `{}` / `true`); one shared node.
    private var freeValueNode: Int32?
    mutating func freeValue() throws -> Int32 {
        if let freeValueNode { return freeValueNode }
        let value = grammar.add(.init(kind: .anyOf))
        freeValueNode = value
        let object = grammar.add(.init(kind: .freeObject, a: value))
        let array = grammar.add(.init(kind: .array, a: value, b: 0, c: JSONGrammar.unbounded))
        let string = grammar.add(.init(kind: .string, a: 0, b: 0, c: JSONGrammar.unbounded))
        let number = grammar.add(.init(kind: .number, b: 0))
        let words = grammar.addLiterals([Array("true".utf8), Array("false".utf8), Array("null".utf8)])
        let first = Int32(grammar.alternatives.count)
        grammar.alternatives += [object, array, string, number, words]
        grammar.nodes[Int(value)] = .init(kind: .anyOf, a: first, b: 5)
        return value
    }

    /// `#/$defs/Name` or `#/definitions/Name` (JSON-pointer escapes `~0` `~1`); compiled once,
    /// so recursive definitions become cycles in the node graph.
    mutating func resolve(_ target: String, path: String) throws -> Int32 {
        if let node = refNodes[target] { return node }
        let parts = target.split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
        guard parts.count == 3, parts[0] == "#", parts[1] == "$defs" || parts[1] == "definitions" else {
            throw fail("'$ref' \"\(target)\" is not supported (only #/$defs/NAME and #/definitions/NAME)", path)
        }
        guard let definition = document[parts[1]]?[parts[2]] else { throw fail("'$ref' \"\(target)\" points to nothing", path) }
        // A placeholder anyOf of one alternative, patched once the definition is compiled.
        let placeholder = grammar.add(.init(kind: .anyOf))
        refNodes[target] = placeholder
        let node = try compile(definition, path: target)
        let first = Int32(grammar.alternatives.count)
        grammar.alternatives.append(node)
        grammar.nodes[Int(placeholder)] = .init(kind: .anyOf, a: first, b: 1)
        return placeholder
    }

    /// Rejects schemas no finite JSON satisfies (an empty literal set, or a required cycle such
    /// as an object that must contain itself): generation could never finish.
    func checkSatisfiable() throws {
        let g = grammar  // a class: the fixes below apply to the compiled grammar
        var finite = [Bool](repeating: false, count: g.nodes.count)
        var changed = true
        while changed {
            changed = false
            for (i, n) in g.nodes.enumerated() where !finite[i] {
                var ok = false
                switch n.kind {
                case .string, .number, .freeObject: ok = true
                case .literals: ok = n.b > 0
                case .array: ok = n.b == 0 || finite[Int(n.a)]
                case .anyOf: ok = (0..<Int(n.b)).contains { finite[Int(g.alternatives[Int(n.a) + $0])] }
                case .object: ok = (0..<Int(n.b)).allSatisfy { k in
                    let p = g.properties[Int(n.a) + k]
                    return !p.required || finite[Int(p.node)]
                }
                }
                if ok { finite[i] = true; changed = true }
            }
        }
        guard finite[Int(g.root)] else {
            throw ForgeError(.badInput, "no finite JSON value satisfies this schema (an empty enum, or a required property that recursively requires itself)",
                             location: "response_format.json_schema.schema")
        }
        // Choices that could never finish are removed, so every prefix the automaton accepts
        // has a completion: optional properties are disabled (node -1), alternatives dropped,
        // arrays of such items limited to [].
        for i in g.nodes.indices {
            let n = g.nodes[i]
            switch n.kind {
            case .anyOf:
                let kept = (0..<Int(n.b)).map { g.alternatives[Int(n.a) + $0] }.filter { finite[Int($0)] }
                if kept.count != Int(n.b) {
                    let first = Int32(g.alternatives.count)
                    g.alternatives += kept
                    g.nodes[i] = .init(kind: .anyOf, a: first, b: Int32(kept.count))
                }
            case .array where !finite[Int(n.a)]:
                g.nodes[i].c = 0
            case .object:
                for k in 0..<Int(n.b) where !finite[Int(g.properties[Int(n.a) + k].node)] { g.properties[Int(n.a) + k].node = -1 }
            default: break
            }
        }
    }
}

extension JSONParseOptions {
    /// JSON schemas: a repeated key or a lone surrogate is an error (the schema would be ambiguous).
    static let schema = JSONParseOptions(duplicateKeys: .reject, loneSurrogates: .reject)
}
