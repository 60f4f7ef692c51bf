import ArgumentParser
import ForgeCore
import Foundation
import Ingest
import Store

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read official COCO captions_*.json and/or instances_*.json into the database.",
        discussion: """
        Keeps images (id, file_name, width, height), captions and boxes in file order, and
        categories. Re-ingesting the same files is idempotent. One transaction: a bad file leaves
        the database unchanged; a database that does not exist yet is built beside the target and
        only moved into place when complete. Annotations that reference unknown image ids are skipped and
        counted (--strict makes them fatal).
        """)

    @Option(help: "COCO captions file (captions_*.json).") var captions: String?
    @Option(help: "COCO instances file (instances_*.json).") var instances: String?
    @Option(help: "Folder with the images; checked for missing files and remembered.") var images: String?
    @OptionGroup var database: DatabaseOption
    @Flag(help: "Fail on annotations that reference unknown image ids instead of skipping them.") var strict = false
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "Print how long each phase took (parse, checks, writes, indexes, commit) to stderr.") var timings = false

    func run() throws {
        try runReportingErrors {
            guard captions != nil || instances != nil else {
                throw ForgeError(.usage, "give --captions FILE and/or --instances FILE")
            }
            var options = IngestOptions(captionsPath: captions, instancesPath: instances, imagesDir: images, strict: strict)
            if timings {
                options.onPhase = { phase, seconds in printErr("timing: \(phase) \(String(format: "%.3f", seconds)) s") }
            }
            // A new database file is built beside the target and moved into place when complete.
            let reports = try COCOIngestor.ingest(databaseAt: database.db, options)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(reports), as: UTF8.self))
                return
            }
            for r in reports {
                print("\(r.path) [\(r.kind)]: \(r.images) images, \(r.captions) captions, \(r.boxes) boxes, \(r.categories) categories in \(String(format: "%.2f", r.seconds)) s")
                for (reason, n) in r.skipped.sorted(by: { $0.key < $1.key }) {
                    let ex = r.examples[reason].map { " e.g. " + $0.joined(separator: "; ") } ?? ""
                    print("  skipped \(n) (\(reason))\(ex)")
                }
                for (reason, n) in r.notices.sorted(by: { $0.key < $1.key }) {
                    let ex = r.examples[reason].map { " e.g. " + $0.joined(separator: "; ") } ?? ""
                    print("  note: \(n) \(reason)\(ex)")
                }
            }
        }
    }
}
