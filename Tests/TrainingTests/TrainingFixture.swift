import Foundation
import XCTest
import Checkpoints
import Models
import TensorMath
@testable import Training

/// The case written by tools/reference/make_training_fixtures.py.
struct TrainingFixture {
    static var root: URL { Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent("tiny_llava_train") }

    let model: LlavaModel
    let json: [String: Any]
    let batch: [TrainingSequence]

    init() throws {
        guard case .llava(let loaded) = try ModelLoader.load(path: Self.root.appendingPathComponent("model").path) else {
            throw XCTSkip("fixture is not a LLaVA")
        }
        model = loaded
        let data = try Data(contentsOf: Self.root.appendingPathComponent("case.json"))
        json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let features = try Self.floats(json["features"] as! [String: Any])
        let imageToken = loaded.config.imageTokenIndex
        batch = (json["sequences"] as! [[String: Any]]).map { entry in
            let tokens = Self.ints(entry["input_ids"]), labels = Self.ints(entry["labels"])
            return TrainingSequence(tokens: tokens, labels: labels, features: tokens.contains(imageToken) ? features : nil)
        }
    }

    static func ints(_ value: Any?) -> [Int] { (value as! [Any]).map { ($0 as! NSNumber).intValue } }
    static func doubles(_ value: Any?) -> [Double] { (value as! [Any]).map { ($0 as! NSNumber).doubleValue } }
    func number(_ path: String...) -> Double {
        var object: Any = json
        for key in path { object = (object as! [String: Any])[key]! }
        return (object as! NSNumber).doubleValue
    }

    static func floats(_ ref: [String: Any]) throws -> [Float] {
        let data = try Data(contentsOf: root.appendingPathComponent(ref["file"] as! String))
        let values = data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
        let shape = ints(ref["shape"])
        precondition(values.count == shape.reduce(1, *), "fixture array size")
        return values
    }

    /// Total counted targets of the batch (HF's mean divides by this).
    var countedTargets: Int { batch.reduce(0) { $0 + CausalLMLoss.countedTargets(labels: $1.labels) } }

    /// Loss and gradients of the whole batch, HF's mean.
    func lossAndGradients(_ engine: LossAndGradients) throws -> (loss: Double, gradients: ParameterBuffer) {
        let gradients = engine.makeGradients()
        let scale = Float(1 / Double(countedTargets))
        var total = 0.0
        for s in batch { total += try engine.accumulate(s, lossScale: scale, into: gradients).lossSum }
        return (total / Double(countedTargets), gradients)
    }
}

/// ‖a − b‖ / ‖b‖ in Double.
func relativeError(_ a: UnsafePointer<Float>, _ b: [Float]) -> Double {
    var difference = 0.0, reference = 0.0
    for i in 0..<b.count {
        let d = Double(a[i]) - Double(b[i])
        difference += d * d
        reference += Double(b[i]) * Double(b[i])
    }
    return (difference / max(reference, 1e-300)).squareRoot()
}
