import ForgeCore
import Foundation
@testable import Pipeline
import XCTest

/// Bad pipeline files: each error names file:line:column and the stage; nothing runs.
final class ValidationTests: XCTestCase {
    func load(_ yaml: String, overrides: [String] = []) throws -> PipelineDefinition {
        try PipelineLoader.parse(text: yaml, path: "p.yaml", overrides: overrides, environment: ["HOME_X": "/h"])
    }

    func error(_ yaml: String, overrides: [String] = [], file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try load(yaml, overrides: overrides)
            XCTFail("expected an error", file: file, line: line)
            return ""
        } catch let e as ForgeError {
            return e.description
        } catch {
            XCTFail("not a ForgeError: \(error)", file: file, line: line)
            return ""
        }
    }

    let base = """
    name: t
    stages:
      ingest:
        kind: ingest
        params:
          captions: c.json
    """

    func testValidFileParsesBothStageForms() throws {
        let map = try load(base + "\n  ctx:\n    kind: contexts\n    needs: ingest\n")
        XCTAssertEqual(map.stages.map(\.name), ["ingest", "ctx"])
        XCTAssertEqual(map.stages[1].needs, ["ingest"])
        let list = try load("""
        name: t
        stages:
          - name: a
            kind: ingest
            params: {captions: c.json}
          - {name: b, kind: contexts, needs: [a]}
        """)
        XCTAssertEqual(list.stages.map(\.name), ["a", "b"])
        XCTAssertEqual(list.database, "t.db")
    }

    func testUnknownKindNamesLineColumnAndStage() {
        let e = error("""
        name: t
        stages:
          ingest:
            kind: ingest
            params: {captions: c.json}
          gen:
            kind: generat
        """)
        XCTAssertTrue(e.hasPrefix("p.yaml:7:11: stage 'gen': configuration: unknown stage kind 'generat'"), e)
    }

    func testCycleIsNamed() {
        let e = error("""
        name: t
        stages:
          a: {kind: contexts, needs: c}
          b: {kind: contexts, needs: a}
          c: {kind: contexts, needs: [b]}
        """)
        XCTAssertTrue(e.contains("cycle: a → c → b → a"), e)
        XCTAssertTrue(e.hasPrefix("p.yaml:3:30: stage 'a'"), e)
    }

    func testNeedsNamingNothing() {
        let e = error(base + "\n  ctx:\n    kind: contexts\n    needs: [ingest, nothere]\n")
        XCTAssertTrue(e.hasPrefix("p.yaml:9:21: stage 'ctx'"), e)
        XCTAssertTrue(e.contains("needs 'nothere', which names no stage"), e)
        XCTAssertTrue(error(base + "\n  ctx: {kind: contexts, needs: ctx}\n").contains("needs itself"))
    }

    func testParamErrors() {
        // wrong type (line of the value)
        var e = error("name: t\nstages:\n  s:\n    kind: sample-images\n    params:\n      seed: abc\n      types: {}\n")
        XCTAssertTrue(e.hasPrefix("p.yaml:6:13: stage 's'"), e)
        XCTAssertTrue(e.contains("parameter 'seed' must be an integer, got a string (abc)"), e)
        // unknown key (line of the key)
        e = error(base + "\n      colour: red\n")
        XCTAssertTrue(e.hasPrefix("p.yaml:7:7: stage 'ingest'"), e)
        XCTAssertTrue(e.contains("unknown parameter 'colour' for kind 'ingest'"), e)
        // missing required
        e = error("name: t\nstages:\n  g:\n    kind: generate\n    params: {limit: 3}\n")
        XCTAssertTrue(e.hasPrefix("p.yaml:3:3: stage 'g'"), e)
        XCTAssertTrue(e.contains("missing required parameter 'type'"), e)
        // enumeration
        e = error("name: t\nstages:\n  d: {kind: dedup, params: {scope: everywhere}}\n")
        XCTAssertTrue(e.contains("'everywhere' is not one of: per_type, global"), e)
        // unknown stage key, unknown top-level key
        XCTAssertTrue(error("name: t\nstages:\n  d: {kind: dedup, after: x}\n").contains("unknown key 'after' in a stage"))
        XCTAssertTrue(error("name: t\nsteps: []\nstages:\n  d: {kind: dedup}\n").hasPrefix("p.yaml:2:1: configuration: unknown top-level key 'steps'"))
    }

    func testLaterKindsAreNotAvailableYet() {
        let e = error("name: t\nstages:\n  ev: {kind: evaluate}\n")
        XCTAssertTrue(e.contains("stage kind 'evaluate' is not available yet"), e)
        XCTAssertTrue(e.hasPrefix("p.yaml:3:14: stage 'ev'"), e)
    }

    func testMalformedYAML() {
        let e = error("name: t\nstages:\n  a: {kind: ingest\n  b: [\n")
        XCTAssertTrue(e.hasPrefix("p.yaml:"), e)
        XCTAssertTrue(e.contains("malformed YAML"), e)
        let dup = error("name: t\nstages:\n  a: {kind: dedup}\n  a: {kind: dedup}\n"); XCTAssertTrue(dup.contains("duplicate") && dup.hasPrefix("p.yaml:3:"), dup)
    }

    func testVariablesAndTypedOverrides() throws {
        let yaml = """
        name: t
        vars: {n: 4, root: /data, t: 0.5, flag: true}
        database: ${root}/x.db
        stages:
          s:
            kind: sample-images
            params:
              seed: ${n}
              types: {conversation: {count: "${n}"}}
          g:
            kind: generate
            needs: s
            params: {type: conversation, temperature: "${t}", base_url: "${env:HOME_X}/v1"}
        """
        var p = try load(yaml)
        XCTAssertEqual(p.database, "/data/x.db")
        XCTAssertEqual(p.stage("s")!.params.int("seed"), 4, "a lone ${var} keeps its type")
        XCTAssertEqual(p.stage("g")!.params.double("temperature"), 0.5)
        XCTAssertEqual(p.stage("g")!.params.string("base_url"), "/h/v1")
        p = try load(yaml, overrides: ["n=9", "t=1", "g.max_tokens=300"])
        XCTAssertEqual(p.stage("s")!.params.int("seed"), 9)
        XCTAssertEqual(p.stage("g")!.params.double("temperature"), 1.0)
        XCTAssertEqual(p.stage("g")!.params.int("max_tokens"), 300)
        XCTAssertTrue(error(yaml, overrides: ["n=many"]).contains("variable 'n' is an integer (4), got a string"))
        XCTAssertTrue(error(yaml, overrides: ["flag=3"]).contains("variable 'flag' is a boolean"))
        XCTAssertTrue(error(yaml, overrides: ["nope=1"]).contains("the pipeline has no variable 'nope'"))
        XCTAssertTrue(error(yaml, overrides: ["g.max_tokens=lots"]).contains("parameter 'max_tokens' must be an integer"))
        XCTAssertTrue(error(yaml, overrides: ["zz.max_tokens=1"]).contains("no stage 'zz'"))
        let undefined = error("name: t\nstages:\n  s:\n    kind: sample-images\n    params: {seed: \"${m}\", types: {}}\n")
        XCTAssertTrue(undefined.hasPrefix("p.yaml:5:20: stage 's'"), undefined)
        XCTAssertTrue(undefined.contains("unknown variable '${m}'"), undefined)
    }

    func testNothingRunsOnASemanticValidationError() throws {
        let dir = NSTemporaryDirectory() + "val-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir + "/prompts/conversation", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/seeds", withIntermediateDirectories: true)
        try "You write chats.".write(toFile: dir + "/prompts/conversation/system.txt", atomically: true, encoding: .utf8)
        try "{}".write(toFile: dir + "/c.json", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = """
        name: t
        database: \(dir)/x.db
        prompts: \(dir)/prompts
        seeds: \(dir)/seeds
        stages:
          ingest: {kind: ingest, params: {captions: \(dir)/c.json}}
          s: {kind: sample-images, needs: ingest, params: {types: {conversation: {count: 2}}}}
          g:
            kind: generate
            needs: s
            params: {type: detial}
        """
        let p = try PipelineLoader.parse(text: yaml, path: dir + "/p.yaml")
        let runner = PipelineRunner(env: PipelineEnvironment(pipeline: p, environment: [:]), output: { _ in })
        XCTAssertThrowsError(try runner.run()) { e in
            let d = (e as? ForgeError)?.description ?? ""
            XCTAssertTrue(d.contains(":11:20: stage 'g'"), d)
            XCTAssertTrue(d.contains("unknown sample type 'detial'"), d)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.db"), "no stage ran: the database was never created")
    }

    func testDotAndTextRendering() throws {
        let p = try load(base + "\n  ctx: {kind: contexts, needs: ingest}\n  e: {kind: export, needs: ctx, params: {out: x.json}}\n")
        let dot = PipelineGraph.dot(p)
        XCTAssertTrue(dot.hasPrefix("digraph \"t\" {"))
        XCTAssertTrue(dot.contains("\"ingest\" -> \"ctx\";"))
        XCTAssertTrue(dot.contains("\"ctx\" -> \"e\";"))
        XCTAssertEqual(PipelineGraph.levels(p), ["ingest": 0, "ctx": 1, "e": 2])
        XCTAssertEqual(PipelineGraph.downstream(of: "ingest", in: p), ["ctx", "e"])
    }
}

/// The pipelines shipped in pipelines/ load and validate.
final class ShippedPipelineTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testRecipesLoad() throws {
        let demo = try PipelineLoader.load(path: Self.repoRoot + "/pipelines/demo.yaml", environment: [:])
        XCTAssertEqual(demo.stages.filter { $0.kind == "generate" }.count, 3)
        XCTAssertEqual(demo.database, Self.repoRoot + "/out/demo/demo.db")
        let big = try PipelineLoader.load(path: Self.repoRoot + "/pipelines/llava-158k.yaml", overrides: ["coco=/data/coco"], environment: ["LLAVA_FORGE_MODEL": "m"])
        let counts = big.stage("sample-images")!.params.map("types")!.map { ($0.key, $0.node.entry("count")!.node.value) }
        XCTAssertEqual(counts.map(\.0), ["conversation", "detail", "reasoning"])
        XCTAssertEqual(counts.map(\.1), [.int(58000), .int(23000), .int(77000)])
        XCTAssertEqual(big.stage("ingest")!.params.string("captions"), "/data/coco/annotations/captions_train2017.json")
        XCTAssertEqual(big.stage("generate-detail")!.params.string("model"), "m")
        XCTAssertEqual(big.maxInFlight, 32)
        // Without the COCO files the run stops at validation, naming the line.
        let runner = PipelineRunner(env: PipelineEnvironment(pipeline: big, environment: [:]), output: { _ in })
        XCTAssertThrowsError(try runner.plan(RunOptions(dryRun: true))) { e in
            let d = (e as? ForgeError)?.description ?? ""
            XCTAssertTrue(d.contains("llava-158k.yaml:40:17:"), d)
            XCTAssertTrue(d.contains("captions file '/data/coco/annotations/captions_train2017.json' does not exist"), d)
        }
    }
}
