import ForgeCore
import Foundation
import XCTest

enum TestPaths {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let fixtures = repoRoot + "/Tests/TrainingDataTests/Fixtures"

    static func temporaryFolder(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "/traindata-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.removeItem(atPath: path)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ text: String, to path: String) {
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Runs the body and returns the ForgeError it throws (failing the test when it throws none).
func forgeError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> ForgeError? {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
        return nil
    } catch let e as ForgeError {
        return e
    } catch {
        XCTFail("expected a ForgeError, got \(error)", file: file, line: line)
        return nil
    }
}

/// A llava folder (Tests/TrainingTests' tiny LLaVA: vocab 300, 42-px tower with 9 rows, 64
/// positions) with the ChatML tokenizer fixture of Tests/CLITests, and a LLaVA JSON file of short
/// conversations about seed photos (plus one text-only record).
struct TinyWorkspace {
    var model: String
    var data: String
    var images: String
    var dir: String
}

/// A llava folder (fixture weights + ChatML tokenizer), photos and a LLaVA JSON file.
func makeTinyLlavaWorkspace(_ name: String) throws -> TinyWorkspace {
    let dir = TestPaths.temporaryFolder(name)
    let files = FileManager.default
    let model = dir + "/tiny_llava"
    try files.createDirectory(atPath: model, withIntermediateDirectories: true)
    let source = TestPaths.repoRoot + "/Tests/TrainingTests/Fixtures/tiny_llava_train/model"
    for file in ["config.json", "model.safetensors"] { try files.copyItem(atPath: source + "/" + file, toPath: model + "/" + file) }
    try files.copyItem(atPath: TestPaths.repoRoot + "/Tests/CLITests/Fixtures/tiny_llava_tokenizer/tokenizer.json", toPath: model + "/tokenizer.json")
    let images = TestPaths.repoRoot + "/seeds/images"
    let records: [(String, String, String)] = [
        ("chelsea_cat.jpg", "What is it?", "A cat."), ("astronaut.jpg", "Who is it?", "A man."),
        ("brick_wall.jpg", "What is it?", "A wall."), ("dahlia_flower.jpg", "What is it?", "A rose."),
        ("china_pagoda.jpg", "What is it?", "A tower."), ("cameraman_tripod.jpg", "Who?", "A man."),
    ]
    var json = "[\n"
    for (i, r) in records.enumerated() {
        json += "{\"id\": \"r\(i)\", \"image\": \"\(r.0)\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\\n\(r.1)\"}, {\"from\": \"gpt\", \"value\": \"\(r.2)\"}]},\n"
    }
    json += "{\"id\": \"text\", \"conversations\": [{\"from\": \"human\", \"value\": \"Hi?\"}, {\"from\": \"gpt\", \"value\": \"Hello.\"}]}\n]\n"
    TestPaths.write(json, to: dir + "/data.json")
    return TinyWorkspace(model: model, data: dir + "/data.json", images: images, dir: dir)
}

