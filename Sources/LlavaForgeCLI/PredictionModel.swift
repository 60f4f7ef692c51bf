import Foundation
import Inference
import Serving

// The model itself (`ResolvedModel`: folder or GGUF → engines, CLIP preprocessing, sessions) lives in
// Sources/Serving, shared with `chat` and `serve`; here is only predict's own loop and summary.


/// What one `predict` generation did, for the stderr summary.
struct PredictionStats {
    var promptTokens = 0
    var generated: [Int] = []
    var prefillSeconds = 0.0
    var decodeSeconds = 0.0
    var finishReason = "length"

    /// Generated tokens per second over prefill-to-last-token (the first token comes from the prefill).
    var tokensPerSecond: Double {
        let seconds = prefillSeconds + decodeSeconds
        return seconds > 0 ? Double(generated.count) / seconds : 0
    }

    var summary: String {
        let decodeRate = generated.count > 1 && decodeSeconds > 0 ? Double(generated.count - 1) / decodeSeconds : 0
        let prefillRate = prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0
        return String(format: "prompt tokens: %d (prefill %.3f s, %.1f tok/s), generated tokens: %d, %.2f tok/s (decode %.2f tok/s), finish: %@",
                      promptTokens, prefillSeconds, prefillRate, generated.count, tokensPerSecond, decodeRate, finishReason)
    }
}

/// The generation loop: prefill, then sample/argmax one id at a time until a stop id (not
/// emitted), `maxTokens`, or the model's last position.
func runGeneration(session: DecodeSession, prompt: [Int], pixelValues: [Float]?, maxTokens: Int, sampling: SamplingOptions,
                   stopIDs: Set<Int>, onToken: (Int) -> Void) throws -> PredictionStats {
    var stats = PredictionStats(promptTokens: prompt.count)
    guard maxTokens > 0 else { return stats }
    var sampler = Sampler(sampling)
    let start = Date()
    var logits = try session.prefill(prompt, pixelValues)
    stats.prefillSeconds = Date().timeIntervalSince(start)
    let decodeStart = Date()
    var history = prompt
    while true {
        let id = sampler.next(logits: logits, history: history)
        if stopIDs.contains(id) { stats.finishReason = "stop"; break }
        stats.generated.append(id)
        history.append(id)
        onToken(id)
        if stats.generated.count >= maxTokens { break }
        logits = try session.step(id)
    }
    stats.decodeSeconds = Date().timeIntervalSince(decodeStart)
    return stats
}
