import Foundation
import XCTest
@testable import Tokenizers

/// One golden case written by tools/reference/make_tokenizer_fixtures.py.
struct GoldenCase: Decodable {
    var text: String
    var ids: [Int]
    var ids_no_special: [Int]?
    var decoded: String
    var decoded_skip_special: String
}

struct GoldenFile: Decodable {
    var generator: String
    var cases: [GoldenCase]
}

enum Fixtures {
    static func path(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/" + name, ofType: nil), "missing fixture \(name)")
    }

    static func golden(_ name: String) throws -> GoldenFile {
        let data = try Data(contentsOf: URL(fileURLWithPath: try path(name)))
        return try JSONDecoder().decode(GoldenFile.self, from: data)
    }

    /// The real SmolLM2 GGUF: $LLAVA_FORGE_SMOLLM2_GGUF, else models/SmolLM2-135M-Instruct.Q4_1.gguf
    /// under the package root; nil (the test skips) when neither exists.
    static func smolLM2() -> String? {
        if let env = ProcessInfo.processInfo.environment["LLAVA_FORGE_SMOLLM2_GGUF"], FileManager.default.fileExists(atPath: env) {
            return env
        }
        // Tests/TokenizerTests/FixtureSupport.swift → package root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// Compares a tokenizer with golden cases; returns one line per difference (empty when all equal).
func goldenDifferences(_ tokenizer: Tokenizer, _ file: GoldenFile, checkNoSpecial: Bool = true) -> [String] {
    var problems: [String] = []
    func show(_ s: String) -> String { String(reflecting: s) }
    for c in file.cases {
        let ids = tokenizer.encode(c.text, addSpecialTokens: true)
        if ids != c.ids { problems.append("encode(\(show(c.text))) = \(ids), expected \(c.ids)") }
        if checkNoSpecial, let plain = c.ids_no_special {
            let got = tokenizer.encode(c.text, addSpecialTokens: false)
            if got != plain { problems.append("encode(\(show(c.text)), addSpecialTokens: false) = \(got), expected \(plain)") }
        }
        let decoded = tokenizer.decode(c.ids, skipSpecialTokens: false)
        if decoded != c.decoded { problems.append("decode(\(c.ids)) = \(show(decoded)), expected \(show(c.decoded))") }
        let skipped = tokenizer.decode(c.ids, skipSpecialTokens: true)
        if skipped != c.decoded_skip_special {
            problems.append("decode(\(c.ids), skipSpecialTokens: true) = \(show(skipped)), expected \(show(c.decoded_skip_special))")
        }
    }
    return problems
}
