@testable import Checkpoints
import ForgeCore
import Foundation
import XCTest

/// Deterministic fuzzing of the header parsers: truncations at every length through the header,
/// random byte flips, digit swaps inside the safetensors JSON, and "interesting" integers written
/// over GGUF's count/length/offset fields. Every mutant must either load consistently or throw a
/// ForgeError; a trap (precondition, overflow, out-of-bounds read) kills the test process.
final class HeaderFuzzTests: XCTestCase {
    struct Outcome {
        var loaded = 0
        var rejected = 0
        var total: Int { loaded + rejected }
    }

    private let scratch = ScratchFolder()
    private var caseNumber = 0

    /// Writes `bytes` to a fresh file (never rewriting a file that may still be mapped) and opens it.
    private func attempt<S: TensorSource>(_ bytes: [UInt8], _ outcome: inout Outcome, open: (String) throws -> S, check: (S) throws -> Void) {
        caseNumber += 1
        let path = scratch.write("case-\(caseNumber)", bytes)
        defer { unlink(path) }
        do {
            let source = try open(path)
            try check(source)
            outcome.loaded += 1
        } catch is ForgeError {
            outcome.rejected += 1
        } catch {
            XCTFail("case \(caseNumber): non-ForgeError \(error)")
        }
    }

    /// Whatever loaded must be self-consistent, and every tensor converts or fails with a ForgeError.
    private func checkTensors(_ source: TensorSource, fileSize: Int) throws {
        XCTAssertEqual(source.tensorNames, source.tensorNames.sorted())
        var totalBytes = 0
        for name in source.tensorNames {
            let info = try XCTUnwrap(source.info(name))
            XCTAssertEqual(info.byteCount, info.dtype.byteCount(elements: info.elementCount), name)
            let raw = try source.rawBytes(name)
            XCTAssertEqual(raw.count, info.byteCount, name)
            XCTAssertLessThanOrEqual(raw.count, fileSize, name)
            totalBytes += raw.count
            var checksum: UInt8 = 0
            for byte in raw { checksum &+= byte }  // touches every byte: an out-of-range view would fault here
            _ = checksum
            do {
                let values = try source.floats(name)
                XCTAssertEqual(values.count, info.elementCount, name)
            } catch is ForgeError {
                // Unsupported or integer dtypes.
            }
        }
        XCTAssertLessThanOrEqual(totalBytes, fileSize, "tensors do not overlap, so they fit in the file")
    }

    func testSafeTensorsHeaderMutations() throws {
        var random = SeededRandom(seed: 0x5AFE)
        var outcome = Outcome()
        for fixture in ["f32.safetensors", "mixed.safetensors", "bf16.safetensors", "writer_f16.safetensors", "sharded/model-00001-of-00002.safetensors"] {
            let original = Fixtures.bytes(fixture)
            let headerEnd = 8 + original[0..<8].enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
            let open = { (path: String) in try SafeTensorsFile(path: path) }
            let check = { (file: SafeTensorsFile) in try self.checkTensors(file, fileSize: original.count) }
            // The original loads.
            var baseline = Outcome()
            attempt(original, &baseline, open: open, check: check)
            XCTAssertEqual(baseline.loaded, 1, fixture)
            // Truncation at every length through the header and a little beyond.
            for length in 0..<min(original.count, headerEnd + 16) {
                attempt(Array(original[0..<length]), &outcome, open: open, check: check)
            }
            // Random byte flips anywhere in the length field or the header.
            for _ in 0..<300 {
                var mutant = original
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    mutant[Int.random(in: 0..<headerEnd, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
                attempt(mutant, &outcome, open: open, check: check)
            }
            // Digit swaps keep the JSON well-formed but make shapes and offsets lie.
            let digits = (8..<headerEnd).filter { (0x30...0x39).contains(original[$0]) }
            for _ in 0..<200 {
                var mutant = original
                for _ in 0..<Int.random(in: 1...2, using: &random) {
                    mutant[digits.randomElement(using: &random)!] = UInt8(0x30 + Int.random(in: 0...9, using: &random))
                }
                attempt(mutant, &outcome, open: open, check: check)
            }
        }
        XCTAssertGreaterThan(outcome.total, 2000)
        XCTAssertGreaterThan(outcome.loaded, 50, "some mutants are still valid files")
        XCTAssertGreaterThan(outcome.rejected, 1000)
    }

    func testGGUFHeaderMutations() throws {
        var random = SeededRandom(seed: 0x6600F)
        var outcome = Outcome()
        let interesting: [UInt64] = [0, 1, 2, 3, 4, 7, 8, 31, 32, 33, 255, 256, 4096, 65535, 1 << 31, 1 << 32, (1 << 32) - 1,
                                     1 << 40, 1 << 62, 1 << 63, UInt64.max, UInt64.max - 1]
        for fixture in ["quants_v3.gguf", "aligned_v2.gguf"] {
            let original = Fixtures.bytes(fixture)
            let headerEnd = try GGUFFile(path: Fixtures.path(fixture)).dataOffset
            let open = { (path: String) in try GGUFFile(path: path) }
            let check = { (file: GGUFFile) in
                try self.checkTensors(file, fileSize: original.count)
                XCTAssertEqual(Set(file.metadataKeys), Set(file.metadata.keys))
                XCTAssertEqual(file.dataOffset % file.alignment, 0)
            }
            var baseline = Outcome()
            attempt(original, &baseline, open: open, check: check)
            XCTAssertEqual(baseline.loaded, 1, fixture)
            for length in 0..<min(original.count, headerEnd + 16) {
                attempt(Array(original[0..<length]), &outcome, open: open, check: check)
            }
            for _ in 0..<400 {
                var mutant = original
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    mutant[Int.random(in: 0..<headerEnd, using: &random)] = UInt8.random(in: 0...255, using: &random)
                }
                attempt(mutant, &outcome, open: open, check: check)
            }
            // Integers written over fields: counts, string/array lengths, dimensions, types, offsets.
            for _ in 0..<400 {
                var mutant = original
                let value = Bool.random(using: &random) ? interesting.randomElement(using: &random)! : UInt64.random(in: 0...UInt64.max, using: &random)
                let width = Bool.random(using: &random) ? 8 : 4
                let at = Int.random(in: 4..<(headerEnd - width), using: &random)
                for i in 0..<width { mutant[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
                attempt(mutant, &outcome, open: open, check: check)
            }
        }
        XCTAssertGreaterThan(outcome.total, 2000)
        XCTAssertGreaterThan(outcome.loaded, 50, "some mutants are still valid files")
        XCTAssertGreaterThan(outcome.rejected, 1000)
    }

    func testShardIndexMutations() throws {
        var random = SeededRandom(seed: 0x1DE)
        let folder = ScratchFolder()
        for name in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            folder.write(name, Fixtures.bytes("sharded/" + name))
        }
        let original = Fixtures.bytes("sharded/model.safetensors.index.json")
        var loaded = 0, rejected = 0
        for n in 0..<300 {
            var mutant = n < original.count ? Array(original[0..<n]) : original
            if n >= original.count || n % 2 == 1 {
                mutant = original
                mutant[Int.random(in: 0..<mutant.count, using: &random)] = UInt8.random(in: 0x20...0x7E, using: &random)
            }
            let index = folder.write("model.safetensors.index.json", mutant)
            do {
                let checkpoint = try SafeTensorsCheckpoint(path: index)
                try checkTensors(checkpoint, fileSize: 1 << 20)
                loaded += 1
            } catch is ForgeError {
                rejected += 1
            } catch {
                XCTFail("non-ForgeError \(error)")
            }
        }
        XCTAssertGreaterThan(loaded, 5, "some mutants (e.g. in the metadata) still load")
        XCTAssertGreaterThan(rejected, 100)
    }
}
