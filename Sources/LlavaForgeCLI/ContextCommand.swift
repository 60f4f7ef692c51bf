import ArgumentParser
import Contexts
import ForgeCore
import Foundation
import Prompts
import Store

struct Context: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the symbolic context of an image, exactly as the LLM sees it.",
        discussion: """
        conversation: the captions, one per line. detail and reasoning: the captions, a blank line,
        then `category: [x1, y1, x2, y2]` per box, normalized to [0, 1] and rounded like Python's
        round(v, 3). Other types use the `context:` of prompts/<type>/type.yaml.
        With --all, writes every image's context as JSON lines to --out (or stdout).
        """)

    @OptionGroup var database: DatabaseOption
    @Option(name: .customLong("image-id"), help: "The COCO image id.") var imageID: Int64?
    @Option(help: "Sample type: conversation, detail, reasoning, or one defined in prompts/.") var type: String = "conversation"
    @Flag(help: "All images, as JSON lines {\"image_id\", \"type\", \"context\", \"dropped_boxes\"}.") var all = false
    @Option(help: "Output file for --all (default: stdout).") var out: String?
    @Option(help: "prompts/ folder (default: found from the working directory).") var prompts: String?

    func run() throws {
        try runReportingErrors {
            let kind = try contextKind(type: type, promptsDir: prompts)
            let db = try ForgeDatabase(path: database.db)
            let source = AnnotationSource(database: db)
            if all {
                try writeAll(source: source, kind: kind)
                return
            }
            guard let imageID else { throw ForgeError(.usage, "give --image-id N (or --all)") }
            guard let ann = try source.annotations(imageID: imageID) else {
                throw ForgeError(.badInput, "no image with id \(imageID) in the database", file: database.db)
            }
            let ctx = SymbolicContextFormatter.format(ann, kind: kind)
            print(ctx.text)
            if ctx.droppedBoxes > 0 { printErr("note: \(ctx.droppedBoxes) degenerate boxes (w or h ≤ 0) left out") }
        }
    }

    private func writeAll(source: AnnotationSource, kind: ContextKind) throws {
        let sink = try OutputSink(path: out)
        // Bytes straight from the tables (see ContextLines): same lines as formatting each image
        // from `source.forEachImage` and escaping it with JSONText.
        let summary = try ContextLines.writeAll(database: source.database, type: type, kind: kind) { try sink.write(bytes: $0) }
        try sink.close()
        let dropped = summary.droppedBoxes
        printErr("\(summary.images) contexts written\(dropped > 0 ? ", \(dropped) degenerate boxes left out" : "")")
    }
}

/// The context kind of a type: from prompts/<type>/type.yaml when there is one, else built in.
func contextKind(type: String, promptsDir: String?) throws -> ContextKind {
    if let lib = try? PromptLibrary.locate(prompts: promptsDir, seeds: nil),
       FileManager.default.fileExists(atPath: "\(lib.promptsDir)/\(type)/system.txt") {
        return try lib.load(type: type).context
    }
    guard let k = ContextKind.builtin(forType: type) else {
        throw ForgeError(.usage, "unknown type '\(type)': use conversation, detail, reasoning, or define prompts/\(type)/")
    }
    return k
}

/// Buffered writes to a file or stdout.
final class OutputSink {
    private let handle: FileHandle
    private var buffer = Data()
    private let isStdout: Bool

    init(path: String?) throws {
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
                throw ForgeError(.io, "cannot create output file", file: path)
            }
            handle = h; isStdout = false
        } else {
            handle = .standardOutput; isStdout = true
        }
        buffer.reserveCapacity(1 << 20)
    }

    func write(_ s: String) throws {
        buffer.append(contentsOf: s.utf8)
        if buffer.count >= 1 << 20 { try flush() }
    }

    /// Large chunks go straight to the file (no copy into the buffer).
    func write(bytes: [UInt8]) throws {
        if bytes.count >= 1 << 16 {
            try flush()
            try handle.write(contentsOf: bytes)
            return
        }
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { try flush() }
    }

    func flush() throws {
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        try flush()
        if !isStdout { try handle.close() }
    }
}
