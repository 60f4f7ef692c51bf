import Foundation
import ForgeCore
import TensorMath

/// A set of tensors sharing a learning rate and weight decay (torch's param group).
public struct ParameterGroup: Sendable {
    public var name: String
    public var learningRate: Double
    public var weightDecay: Double
    public var slots: [ParameterSlot]

    public init(name: String, learningRate: Double, weightDecay: Double, slots: [ParameterSlot]) {
        self.name = name
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.slots = slots
    }

    /// Norm scales and biases (1-D tensors) are not decayed, as LLaVA's and HF's Trainer do.
    public static func isNoDecay(_ slot: ParameterSlot) -> Bool { slot.shape.count < 2 }

    /// The groups of a buffer by name prefix: each (prefix, learning rate) gives a decayed group
    /// and a no-decay group (norms, biases). Tensors matching no prefix are frozen (not updated).
    /// LLaVA Stage 2: `[("multi_modal_projector.", lrProjector), ("language_model.", lrLLM)]`;
    /// Stage 1: the projector prefix only.
    public static func byPrefix(_ layout: ParameterLayout, _ prefixes: [(prefix: String, learningRate: Double)],
                                weightDecay: Double) -> [ParameterGroup] {
        var groups: [ParameterGroup] = []
        for (prefix, rate) in prefixes {
            let slots = layout.slots.filter { $0.name.hasPrefix(prefix) }
            let decayed = slots.filter { !isNoDecay($0) }, plain = slots.filter(isNoDecay)
            if !decayed.isEmpty { groups.append(ParameterGroup(name: prefix + "decay", learningRate: rate, weightDecay: weightDecay, slots: decayed)) }
            if !plain.isEmpty { groups.append(ParameterGroup(name: prefix + "no_decay", learningRate: rate, weightDecay: 0, slots: plain)) }
        }
        return groups
    }
}

/// torch.optim.AdamW (foreach=False, amsgrad=False, maximize=False) over a flat buffer:
///
///     p ← p·(1 − lr·wd)                   (decoupled decay, before the moment update)
///     m ← m + (1 − β1)(g − m)             (torch's lerp)
///     v ← β2·v + (1 − β2)·g²
///     p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
///
/// in Float32 with the scalars formed in Double, as torch does. The moments share the parameter
/// buffer's layout, so the update is one loop per tensor, split over the cores.
public final class AdamW {
    public let parameters: ParameterBuffer
    public let groups: [ParameterGroup]
    public let beta1: Double, beta2: Double, epsilon: Double
    /// Optimizer steps taken (torch's `state["step"]`).
    public private(set) var step = 0
    public let firstMoment: FloatBuffer   // exp_avg, layout of `parameters`
    public let secondMoment: FloatBuffer  // exp_avg_sq

    public init(parameters: ParameterBuffer, groups: [ParameterGroup], beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8) {
        self.parameters = parameters
        self.groups = groups
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        firstMoment = FloatBuffer(count: parameters.totalCount)
        secondMoment = FloatBuffer(count: parameters.totalCount)
    }

    /// One step with every group's learning rate multiplied by `learningRateFactor` (a schedule's value).
    /// `gradientScale` multiplies each gradient as it is read (global-norm clipping's coefficient,
    /// the same Float product torch's in-place `mul_` forms, without its extra pass over memory);
    /// `zeroingGradients` leaves the updated slots' gradients at 0 (the next step's accumulation
    /// needs no separate zeroing pass).
    public func update(gradients: ParameterBuffer, learningRateFactor: Double = 1, gradientScale: Float = 1, zeroingGradients: Bool = false) {
        precondition(gradients.totalCount == parameters.totalCount, "AdamW: gradient buffer layout differs")
        step += 1
        let correction1 = 1 - Foundation.pow(beta1, Double(step))
        let correction2Root = (1 - Foundation.pow(beta2, Double(step))).squareRoot()
        let b1 = Float(1 - beta1), b2 = Float(beta2), oneMinusB2 = Float(1 - beta2), eps = Float(epsilon)
        let correction2 = Float(correction2Root)
        let gScale = gradientScale, zeroing = zeroingGradients
        let p = parameters.storage.pointer, g = gradients.storage.pointer
        let m = firstMoment.pointer, v = secondMoment.pointer
        for group in groups {
            let lr = group.learningRate * learningRateFactor
            let decay = Float(1 - lr * group.weightDecay)
            let stepSize = Float(lr / correction1)
            for slot in group.slots {
                let base = slot.offset
                Parallel.forEachRange(slot.count, grain: 32_768) { range in
                    // 8 lanes at a time (the pointers may alias as far as the compiler knows, so
                    // it would not vectorise the scalar loop), then the tail; same formula.
                    typealias V = SIMD8<Float>
                    var j = range.lowerBound
                    while j + 8 <= range.upperBound {
                        let i = base + j
                        let gi = UnsafeRawPointer(g + i).loadUnaligned(as: V.self) * gScale
                        if zeroing { UnsafeMutableRawPointer(g + i).storeBytes(of: V(repeating: 0), as: V.self) }
                        let mOld = UnsafeRawPointer(m + i).loadUnaligned(as: V.self)
                        let vOld = UnsafeRawPointer(v + i).loadUnaligned(as: V.self)
                        let mi = mOld + b1 * (gi - mOld)
                        let vi = b2 * vOld + oneMinusB2 * gi * gi
                        var param = UnsafeRawPointer(p + i).loadUnaligned(as: V.self) * decay
                        param -= stepSize * (mi / (vi.squareRoot() / correction2 + eps))
                        UnsafeMutableRawPointer(m + i).storeBytes(of: mi, as: V.self)
                        UnsafeMutableRawPointer(v + i).storeBytes(of: vi, as: V.self)
                        UnsafeMutableRawPointer(p + i).storeBytes(of: param, as: V.self)
                        j += 8
                    }
                    while j < range.upperBound {
                        let i = base + j
                        let gi = g[i] * gScale
                        if zeroing { g[i] = 0 }
                        var param = p[i] * decay
                        let mi = m[i] + b1 * (gi - m[i])
                        let vi = b2 * v[i] + oneMinusB2 * gi * gi
                        m[i] = mi
                        v[i] = vi
                        param -= stepSize * (mi / (vi.squareRoot() / correction2 + eps))
                        p[i] = param
                        j += 1
                    }
                }
            }
        }
    }

    // MARK: - State

    /// Moments and step count as a safetensors file (`exp_avg`, `exp_avg_sq` flat in the
    /// parameter buffer's layout; `step` and the layout's size in the metadata).
    public func save(to path: String) throws {
        try SafeTensorsStore.write([("exp_avg", firstMoment), ("exp_avg_sq", secondMoment)],
                                   metadata: ["step": String(step), "floats": String(parameters.totalCount), "beta1": String(beta1),
                                              "beta2": String(beta2), "epsilon": String(epsilon)], to: path)
    }

    /// Restores `save(to:)`'s state; the file must come from a buffer of the same layout size.
    public func load(from path: String) throws {
        let file = try SafeTensorsStore.open(path)
        guard let stepText = file.metadata["step"], let saved = Int(stepText), saved >= 0 else {
            throw ForgeError(.badInput, "optimizer state lacks a valid 'step'", file: path, location: "__metadata__.step")
        }
        try SafeTensorsStore.read("exp_avg", from: file, into: firstMoment)
        try SafeTensorsStore.read("exp_avg_sq", from: file, into: secondMoment)
        step = saved
    }
}
