import ArgumentParser
import Export
import ForgeCore
import Foundation
import Store

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show samples of one type with the context the LLM saw, the turns, and why any failed.")

    @OptionGroup var database: DatabaseOption
    @Option(help: "Sample type.") var type: String
    @Option(help: "How many samples.") var limit: Int = 5
    @Option(help: "Only this status: ok, parse_failed, truncated.") var status: String?
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        try runReportingErrors {
            guard FileManager.default.fileExists(atPath: database.db) else { throw ForgeError(.io, "database does not exist", file: database.db) }
            let db = try ForgeDatabase(path: database.db)
            print(try Inspector.render(database: db, type: type, limit: limit, status: status, json: json))
        }
    }
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-type counts, parse failures by reason, turn and length distributions, tokens used.")

    @OptionGroup var database: DatabaseOption
    @Flag(help: "JSON instead of text.") var json = false

    func run() throws {
        try runReportingErrors {
            guard FileManager.default.fileExists(atPath: database.db) else { throw ForgeError(.io, "database does not exist", file: database.db) }
            let db = try ForgeDatabase(path: database.db)
            let stats = try DatasetStats.compute(database: db)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(stats), as: UTF8.self))
            } else {
                print(stats.renderText())
            }
        }
    }
}
