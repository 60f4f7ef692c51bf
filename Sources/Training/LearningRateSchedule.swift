import Foundation

/// transformers' `get_cosine_schedule_with_warmup` as a multiplier of each group's base rate:
/// linear warm-up from 0 over `warmupSteps`, then a half cosine to 0 at `totalSteps`.
/// `factor(step:)` takes the number of optimizer steps already taken (the first step uses
/// `factor(step: 0)`, which is 0 whenever there is a warm-up, as in transformers).
public struct CosineSchedule: Sendable, Equatable {
    public var warmupSteps: Int
    public var totalSteps: Int
    public var cycles: Double

    public init(warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5) {
        self.warmupSteps = max(0, warmupSteps)
        self.totalSteps = max(0, totalSteps)
        self.cycles = cycles
    }

    /// Warm-up from a ratio as HF's `TrainingArguments.get_warmup_steps`: ⌈ratio · total⌉.
    public init(warmupRatio: Double, totalSteps: Int, cycles: Double = 0.5) {
        self.init(warmupSteps: Int((warmupRatio * Double(totalSteps)).rounded(.up)), totalSteps: totalSteps, cycles: cycles)
    }

    public func factor(step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        let progress = Double(step - warmupSteps) / Double(max(1, totalSteps - warmupSteps))
        return max(0, 0.5 * (1 + cos(Double.pi * cycles * 2 * progress)))
    }
}
