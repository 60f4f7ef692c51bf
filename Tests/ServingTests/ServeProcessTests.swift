import XCTest
import ForgeCore
import Foundation
import Imaging
import Inference
import Tokenizers
@testable import Serving

/// `llava-forge serve` and `chat` as processes (the debug binary): the listening line, SIGTERM →
/// exit 0 after finishing, the REPL driven through stdin, and the official `openai` Python client.
final class ServeProcessTests: XCTestCase {
    /// A started `serve`; `stop()` sends SIGTERM and returns the exit status.
    final class ServeProcess {
        let process = Process()
        let port: Int
        private let stderrPipe = Pipe()
        private let stdoutPipe = Pipe()

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: try ServingFixtures.binary)
            process.arguments = ["serve", "--port", "0"] + arguments
            process.standardOutput = stdoutPipe
            process.standardError = stderrPipe
            try process.run()
            var line: [UInt8] = []
            let fd = stdoutPipe.fileHandleForReading.fileDescriptor
            var byte: UInt8 = 0
            while read(fd, &byte, 1) == 1, byte != 10 { line.append(byte) }
            let text = String(decoding: line, as: UTF8.self)
            guard text.hasPrefix("listening on http://127.0.0.1:"), let port = Int(text.split(separator: ":").last ?? "") else {
                process.terminate()
                throw ForgeError(.network, "serve did not start: \(text) \(String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            }
            self.port = port
        }

        func stop() -> (status: Int32, stderr: String) {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let err = stderrPipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: err, as: UTF8.self))
        }
    }

    func testServeAnswersThenExitsZeroOnSIGTERM() throws {
        let serve = try ServeProcess(["--model", ServingFixtures.tinyChatGGUF, "--model-name", "tiny-chat", "--shutdown-grace", "5"])
        let expected = try referenceGreedy(ServerTests.model, [ChatTurn(role: .user, text: "Hi!")], maxTokens: 16)
        let r = try RawHTTP.post(port: serve.port, chatBody([["role": "user", "content": "Hi!"]], ["temperature": 0, "max_tokens": 16]))
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(((r.json["choices"] as? [[String: Any]])?[0]["message"] as? [String: Any])?["content"] as? String, expected.text)
        let (status, stderr) = serve.stop()
        XCTAssertEqual(status, 0, stderr)
        XCTAssertTrue(stderr.contains("shutting down"), stderr)
        XCTAssertTrue(stderr.contains("stopped (1 finished"), stderr)
        XCTAssertThrowsError(try RawHTTP.connect(port: serve.port), "nothing listens after shutdown")
    }

    func testServeRefusesABadModelClearly() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ServingFixtures.binary)
        p.arguments = ["serve", "--model", "/nonexistent/model.gguf", "--port", "0"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertNotEqual(p.terminationStatus, 0)
        XCTAssertTrue(text.contains("/nonexistent/model.gguf") && text.contains("model not found"), text)
    }

    func runChat(_ arguments: [String], input: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try ServingFixtures.binary)
        p.arguments = ["chat"] + arguments
        let inPipe = Pipe(), out = Pipe(), err = Pipe()
        p.standardInput = inPipe
        p.standardOutput = out
        p.standardError = err
        try p.run()
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try inPipe.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    /// Two turns, /reset, one more, then end of input: each answer equals the generator's greedy
    /// answer for the conversation so far (the second one sees the first exchange).
    func testChatREPLMultiTurnResetAndEOF() throws {
        let model = ServerTests.model
        let first = try referenceGreedy(model, [ChatTurn(role: .user, text: "Hello")], maxTokens: 8).text ?? ""
        let second = try referenceGreedy(model, [ChatTurn(role: .user, text: "Hello"), ChatTurn(role: .assistant, text: first),
                                                 ChatTurn(role: .user, text: "And then?")], maxTokens: 8).text ?? ""
        let run = try runChat(["--model", ServingFixtures.tinyChatGGUF, "--temperature", "0", "--max-tokens", "8"],
                              input: "Hello\nAnd then?\n/reset\nHello\n")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "ASSISTANT: \(first)\nASSISTANT: \(second)\n(new conversation)\nASSISTANT: \(first)\n", run.stderr)
    }

    func testChatWithAnImageAndImageCommand() throws {
        let folder = try ServingFixtures.tinyLlavaFolder()
        let model = ImageServingTests.model
        func answer(_ photo: String) throws -> String {
            try referenceGreedy(model, [ChatTurn(role: .user, parts: [.image(try ImageDecoder.decode(path: photo)), .text("What is in the picture?")])],
                                maxTokens: 6).text ?? ""
        }
        let run = try runChat(["--model", folder, "--image", ServingFixtures.photo, "--temperature", "0", "--max-tokens", "6"],
                              input: "What is in the picture?\n/image \(ServingFixtures.otherPhoto)\nWhat is in the picture?\n/image /nonexistent.jpg\n/exit\nnot read\n")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "ASSISTANT: \(try answer(ServingFixtures.photo))\n(new conversation with \(ServingFixtures.otherPhoto))\n"
                       + "ASSISTANT: \(try answer(ServingFixtures.otherPhoto))\n", run.stderr)
        XCTAssertTrue(run.stderr.contains("/nonexistent.jpg"), run.stderr)
        let textModel = try runChat(["--model", ServingFixtures.tinyChatGGUF, "--image", ServingFixtures.photo], input: "hi\n")
        XCTAssertNotEqual(textModel.status, 0)
        XCTAssertTrue(textModel.stderr.contains("text-only"), textModel.stderr)
    }

    /// The official `openai` package (PyPI) against two `serve` processes (text GGUF, tiny llava),
    /// with a key. Skipped when python3 or the package is missing (scripts/setup.sh installs it).
    func testOfficialOpenAIPythonClient() throws {
        let python = ["/usr/bin/env", "python3"]
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: python[0])
        probe.arguments = [python[1], "-c", "import openai"]
        probe.standardError = Pipe()
        probe.standardOutput = Pipe()
        do { try probe.run(); probe.waitUntilExit() } catch { throw XCTSkip("python3 is not available: \(error)") }
        guard probe.terminationStatus == 0 else {
            throw XCTSkip("the openai Python package is not installed (bash scripts/setup.sh, or: python3 -m pip install openai)")
        }
        let key = "test-key-123"
        let text = try ServeProcess(["--model", ServingFixtures.tinyChatGGUF, "--model-name", "tiny-chat", "--api-key", key])
        let vision = try ServeProcess(["--model", try ServingFixtures.tinyLlavaFolder(), "--model-name", "tiny-llava", "--api-key", key])
        defer {
            _ = text.stop()
            _ = vision.stop()
        }
        let expected = try referenceGreedy(ServerTests.model, [ChatTurn(role: .system, text: "You are terse."),
                                                               ChatTurn(role: .user, text: "Hello there, who are you?")], maxTokens: 24).text ?? ""
        let expectedImage = try referenceGreedy(ImageServingTests.model, [ChatTurn(role: .user, parts: [
            .image(try ImageDecoder.decode(path: ServingFixtures.photo)), .text("What is in the picture?")])], maxTokens: 12).text ?? ""
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python[0])
        p.arguments = [python[1], ServingFixtures.repoRoot + "/Tests/ServingTests/openai_client_check.py",
                       "--text-url", "http://127.0.0.1:\(text.port)/v1", "--image-url", "http://127.0.0.1:\(vision.port)/v1",
                       "--key", key, "--image", ServingFixtures.photo, "--expected-text", expected, "--expected-image-text", expectedImage]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, stdout + stderr)
        XCTAssertTrue(stdout.contains("all openai client checks passed"), stdout + stderr)
        for check in ["plain ok", "stream ok", "image ok", "wrong key ok: AuthenticationError 401"] {
            XCTAssertTrue(stdout.contains(check), check + "\n" + stdout)
        }
    }
}
