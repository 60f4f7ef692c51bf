import Foundation

/// Wall-clock laps of an ingest ("instances: parse", "indexes", …), reported through
/// `IngestOptions.onPhase` (the CLI's `--timings`): where the seconds go, without a profiler.
struct PhaseClock {
    private var last = DispatchTime.now().uptimeNanoseconds
    let observer: (@Sendable (String, Double) -> Void)?

    init(observer: (@Sendable (String, Double) -> Void)?) { self.observer = observer }

    /// Reports the time since the previous lap (or the start) under `name`.
    mutating func lap(_ name: @autoclosure () -> String) {
        let now = DispatchTime.now().uptimeNanoseconds
        if let observer { observer(name(), Double(now - last) / 1e9) }
        last = now
    }

    /// Reports a duration measured elsewhere (another thread) without moving the lap start.
    func report(_ name: String, seconds: Double) { observer?(name, seconds) }
}
