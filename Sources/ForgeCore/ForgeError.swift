import Foundation

/// Every user-facing failure carries where it happened: the file, and inside it the record,
/// line or field. The CLI prints `description` and exits non-zero.
public struct ForgeError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case badInput = "bad input"
        case io = "i/o"
        case network = "network"
        case database = "database"
        case config = "configuration"
        case usage = "usage"
    }

    public var kind: Kind
    public var message: String
    /// The file the problem is in, when there is one.
    public var file: String?
    /// Where inside the file: `line 12`, `images[3].width`, `byte 1024`, …
    public var location: String?

    public init(_ kind: Kind, _ message: String, file: String? = nil, location: String? = nil) {
        self.kind = kind
        self.message = message
        self.file = file
        self.location = location
    }

    public var description: String {
        var where_ = ""
        if let file { where_ = file }
        if let location { where_ += where_.isEmpty ? location : ": \(location)" }
        return where_.isEmpty ? "\(kind.rawValue): \(message)" : "\(where_): \(kind.rawValue): \(message)"
    }
}
