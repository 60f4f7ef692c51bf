import ArgumentParser
import Export
import ForgeCore
import Foundation
import Store

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the ok samples in LLaVA's JSON format (or JSONL).",
        discussion: """
        --out FILE writes one file (all types, or --type T). --out-dir DIR writes LLaVA's release
        layout: llava_instruct_<N>.json plus conversation_<N>.json, detail_<N>.json,
        complex_reasoning_<N>.json. Each record: {"id", "image", "conversations": [{"from", "value"}]}.
        """)

    @OptionGroup var database: DatabaseOption
    @Option(help: "Output file.") var out: String?
    @Option(name: .customLong("out-dir"), help: "Output folder for the combined + per-type layout.") var outDir: String?
    @Option(help: "Only this sample type.") var type: String?
    @Option(help: "llava (a JSON array) or jsonl.") var format: String = "llava"

    func run() throws {
        try runReportingErrors {
            guard let fmt = ExportFormat(rawValue: format) else {
                throw ForgeError(.usage, "--format must be one of: \(ExportFormat.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard out != nil || outDir != nil else { throw ForgeError(.usage, "give --out FILE or --out-dir DIR") }
            guard FileManager.default.fileExists(atPath: database.db) else { throw ForgeError(.io, "database does not exist", file: database.db) }
            let db = try ForgeDatabase(path: database.db)
            if let out {
                let n = try LLaVAExporter.export(database: db, to: out, type: type, format: fmt)
                print("\(out): \(n) samples")
            }
            if let outDir {
                try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
                for f in try LLaVAExporter.exportRelease(database: db, to: outDir) {
                    print("\(f.path): \(f.count) samples (\(f.name))")
                }
            }
        }
    }
}
