/// Typed reads that fail naming where: `try json.at(file: path)["model"]["vocab"].object()`
/// throws `ForgeError` "t.json: model.vocab: bad input: expected an object, found array" (or
/// "… is missing"). The `…IfPresent` reads treat an absent key or `null` as nil and still reject
/// a present value of the wrong type.
public struct JSONLookup {
    /// The value at `path`, nil when some step of the path is absent.
    public let value: JSONValue?
    /// `model.vocab`, `added_tokens[3].id`; empty at the root.
    public let path: String
    public let file: String?

    public init(_ value: JSONValue?, path: String = "", file: String? = nil) {
        self.value = value
        self.path = path
        self.file = file
    }

    public subscript(key: String) -> JSONLookup {
        JSONLookup(value?[key], path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    public subscript(index: Int) -> JSONLookup {
        JSONLookup(value?[index], path: "\(path)[\(index)]", file: file)
    }

    public var exists: Bool { value.map { !$0.isNull } ?? false }

    func fail(_ expected: String) -> ForgeError {
        let location = path.isEmpty ? "top level" : path
        guard let value else { return ForgeError(.badInput, "\(location) is missing, expected \(expected)", file: file, location: location) }
        return ForgeError(.badInput, "expected \(expected), found \(value.typeName)", file: file, location: location)
    }

    func read<T>(_ expected: String, _ extract: (JSONValue) -> T?) throws -> T {
        guard let value, let v = extract(value) else { throw fail(expected) }
        return v
    }

    func readIfPresent<T>(_ expected: String, _ extract: (JSONValue) -> T?) throws -> T? {
        guard let value, !value.isNull else { return nil }
        guard let v = extract(value) else { throw fail(expected) }
        return v
    }

    public func string() throws -> String { try read("a string", \.string) }
    public func bool() throws -> Bool { try read("a boolean", \.bool) }
    /// An integer literal that fits `Int`.
    public func int() throws -> Int { try read("an integer", \.int) }
    /// Any whole number (`5`, `5.0`).
    public func wholeNumber() throws -> Int { try read("a whole number", \.wholeNumber) }
    public func double() throws -> Double { try read("a number", \.double) }
    public func array() throws -> [JSONValue] { try read("an array", \.array) }
    public func object() throws -> JSONObject { try read("an object", \.object) }

    public func stringIfPresent() throws -> String? { try readIfPresent("a string", \.string) }
    public func boolIfPresent() throws -> Bool? { try readIfPresent("a boolean", \.bool) }
    public func intIfPresent() throws -> Int? { try readIfPresent("an integer", \.int) }
    public func wholeNumberIfPresent() throws -> Int? { try readIfPresent("a whole number", \.wholeNumber) }
    public func doubleIfPresent() throws -> Double? { try readIfPresent("a number", \.double) }
    public func arrayIfPresent() throws -> [JSONValue]? { try readIfPresent("an array", \.array) }
    public func objectIfPresent() throws -> JSONObject? { try readIfPresent("an object", \.object) }

    /// The elements of an array, each with its indexed path.
    public func elements() throws -> [JSONLookup] {
        try array().enumerated().map { JSONLookup($1, path: "\(path)[\($0)]", file: file) }
    }
}

extension JSONValue {
    /// This value as the root of typed, path-naming reads.
    public func at(file: String? = nil, path: String = "") -> JSONLookup { JSONLookup(self, path: path, file: file) }
}
