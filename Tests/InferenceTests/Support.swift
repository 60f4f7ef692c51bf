import Foundation
import XCTest
import Models
@testable import Inference

/// Shared fixtures: the Models test fixtures (read in place) and the real SmolLM2 GGUF when present.
enum Support {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static func modelFixture(_ components: String...) -> String {
        components.reduce(repositoryRoot.appendingPathComponent("Tests/ModelTests/Fixtures")) { $0.appendingPathComponent($1) }.path
    }

    static func caseJSON(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: modelFixture(name, "case.json")))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func ints(_ json: [String: Any], _ key: String) -> [Int] {
        (json[key] as! [Any]).map { ($0 as! NSNumber).intValue }
    }

    static var smolLM2Path: String {
        if let path = ProcessInfo.processInfo.environment["LLAVA_FORGE_SMOLLM2_GGUF"], !path.isEmpty { return path }
        return repositoryRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }

    /// The SmolLM2 engine, loaded once for the whole test run (skips when the file is absent).
    nonisolated(unsafe) private static var smolLM2: QuantizedLlama?
    static func smolLM2Engine() throws -> QuantizedLlama {
        if let smolLM2 { return smolLM2 }
        guard FileManager.default.fileExists(atPath: smolLM2Path) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(smolLM2Path) (set LLAVA_FORGE_SMOLLM2_GGUF, or see tools/reference/README.md)")
        }
        let engine = try QuantizedLlama.load(path: smolLM2Path)
        smolLM2 = engine
        return engine
    }

    static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
        return worst
    }

    /// Deterministic pseudo-random floats in [-scale, scale).
    static func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var state = seed &+ 0x9e3779b97f4a7c15
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
        }
    }
}
