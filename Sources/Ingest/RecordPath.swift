/// Where a JSON value sits in a COCO file, for error messages: `annotations[1234].bbox`.
///
/// Built for every record and field of a 1.45 M-record ingest but read only when an error is
/// thrown, so it holds static parts and an index and formats lazily — no string is built on
/// the happy path.
public struct RecordPath: ExpressibleByStringLiteral, CustomStringConvertible, Sendable {
    let section: StaticString
    /// Position in the section's array, or nil for the section itself.
    let index: Int?
    let field: StaticString?

    public init(section: StaticString, index: Int? = nil, field: StaticString? = nil) {
        self.section = section
        self.index = index
        self.field = field
    }

    public init(stringLiteral value: StaticString) { self.init(section: value) }

    /// The same record, one field down: `images[3]` → `images[3].width`.
    public func field(_ name: StaticString) -> RecordPath { RecordPath(section: section, index: index, field: name) }

    public var description: String {
        var text = section.description
        if let index { text += "[\(index)]" }
        if let field { text += "." + field.description }
        return text
    }
}
