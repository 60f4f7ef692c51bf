// Engine benchmark driven by bench/decode_bench.sh: prefill / decode tokens/s of a GGUF through
// `QuantizedLlama`, prefix-cache time to first token, batched decode at several concurrencies.
// Prints one JSON object per line (the script tabulates them).
import Dispatch
import Foundation
import Inference
import Models
import TensorMath

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
/// User + system CPU seconds of the whole process (all threads) so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
func median(_ values: [Double]) -> Double { let s = values.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(stdout)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: InferenceBench MODEL.gguf [all|decode|prefill|prefix|batch|scheduler|threshold|kernels|prefill-attention]\n".utf8))
    exit(2)
}
let only = arguments.count > 2 ? arguments[2] : "all"
/// One part, a comma-separated list of parts, or "all".
func wants(_ part: String) -> Bool { only == "all" || only.split(separator: ",").contains(Substring(part)) }

// LLAVA_FORGE_DECODE_KERNEL=float|int16|vnni picks the kernel (default: the best this CPU runs).
if let name = ProcessInfo.processInfo.environment["LLAVA_FORGE_DECODE_KERNEL"], !name.isEmpty {
    guard let kernel = DecodeKernel.supported.first(where: { "\($0)" == name }) else {
        FileHandle.standardError.write(Data("unknown or unsupported kernel \(name); this CPU runs \(DecodeKernel.supported)\n".utf8))
        exit(2)
    }
    setDecodeKernel(kernel)
}
let loadStart = now()
let engine = try QuantizedLlama.load(path: arguments[1])
let vocab = engine.config.vocabSize
func prompt(_ count: Int, seed: Int) -> [Int] { (0..<count).map { ($0 &* 7919 &+ seed &* 104_729 &+ 13) % vocab } }
emit(["what": "load", "seconds": now() - loadStart, "threads": Parallel.threadCount,
      "decode_weight_mb": Double(engine.decodeWeightBytes) / 1e6, "blas": BLASRuntime.describe(measure: false),
    "kernel": "\(currentDecodeKernel())"])

if wants("prefill") {
    for count in [128, 512] {
        let ids = prompt(count, seed: 1)
        let cache = engine.makeCache(capacity: count)
        _ = try engine.decode(tokens: Array(ids.prefix(16)), cache: cache)  // warm-up
        cache.reset()
        let start = now()
        _ = try engine.decode(tokens: ids, cache: cache)
        let seconds = now() - start
        emit(["what": "prefill", "tokens": count, "seconds": seconds, "tokens_per_second": Double(count) / seconds])
    }
}

// `prefill-attention` (not in "all"): prefill with attention on the AVX-512 block kernels vs the
// per-block sgemms, alternating in this process (5 rounds), best and median seconds of each.
if only.split(separator: ",").contains("prefill-attention"), Attention.usesBlockKernels(headDim: engine.config.headDim) {
    defer { Attention.blockKernelsEnabled = true }
    for count in [512, 1500] {
        let ids = prompt(count, seed: 3)
        let cache = engine.makeCache(capacity: count)
        var seconds: [Bool: [Double]] = [true: [], false: []]
        for round in 0..<6 {
            for blockKernels in round % 2 == 0 ? [true, false] : [false, true] {
                Attention.blockKernelsEnabled = blockKernels
                cache.reset()
                let start = now()
                _ = try engine.decode(tokens: ids, cache: cache)
                if round > 0 { seconds[blockKernels]!.append(now() - start) }  // round 0 warms up
            }
        }
        for (blockKernels, list) in seconds.sorted(by: { $0.key && !$1.key }) {
            let sorted = list.sorted()
            emit(["what": "prefill-attention", "path": blockKernels ? "block kernels" : "sgemm", "tokens": count,
                  "best_seconds": sorted[0], "median_seconds": sorted[sorted.count / 2],
                  "tokens_per_second_median": Double(count) / sorted[sorted.count / 2]])
        }
    }
}

func decodeRate(steps: Int) throws -> Double {
    let ids = prompt(32, seed: 2)
    let cache = engine.makeCache(capacity: 32 + steps + 9)
    var logits = try engine.decode(tokens: ids, cache: cache)
    var next = Sampler.argmax(logits)
    for _ in 0..<8 { logits = try engine.decode(tokens: [next], cache: cache); next = Sampler.argmax(logits) }
    let start = now()
    for _ in 0..<steps { logits = try engine.decode(tokens: [next], cache: cache); next = Sampler.argmax(logits) }
    return Double(steps) / (now() - start)
}

if wants("kernels") {
    // Every direct decode kernel this CPU runs, on the same file.
    var rates: [String: Any] = ["what": "kernels"]
    let chosen = currentDecodeKernel()
    for kernel in DecodeKernel.supported {
        setDecodeKernel(kernel)
        rates["\(kernel)_tokens_per_second"] = try decodeRate(steps: 48)
    }
    setDecodeKernel(chosen)
    emit(rates)
}

if wants("decode") {
    let ids = prompt(32, seed: 2)
    let cache = engine.makeCache(capacity: 32 + 129)
    var logits = try engine.decode(tokens: ids, cache: cache)
    var next = Sampler.argmax(logits)
    for _ in 0..<8 { logits = try engine.decode(tokens: [next], cache: cache); next = Sampler.argmax(logits) }  // warm-up
    let steps = 120
    let start = now()
    for _ in 0..<steps { logits = try engine.decode(tokens: [next], cache: cache); next = Sampler.argmax(logits) }
    let seconds = now() - start
    emit(["what": "decode", "tokens": steps, "context": cache.length, "seconds": seconds, "tokens_per_second": Double(steps) / seconds,
          "weight_gb_per_second": Double(engine.decodeWeightBytes) * Double(steps) / seconds / 1e9])
}

if wants("threshold") {
    // Prefill of a few to many tokens: the chosen kernel run directly vs the float kernel's
    // dequantized tiles + sgemm.
    let chosen = currentDecodeKernel()
    for count in [4, 8, 12, 16, 32, 128] {
        var times: [String: Double] = [:]
        for (label, threshold) in [("direct", Int.max), ("tiled", 1)] {
            Inference.setPrefillGEMMThreshold(threshold)
            setDecodeKernel(label == "tiled" ? .float : chosen)
            let cache = engine.makeCache(capacity: count)
            _ = try engine.decode(tokens: prompt(count, seed: 3), cache: cache)
            cache.reset()
            let start = now()
            _ = try engine.decode(tokens: prompt(count, seed: 3), cache: cache)
            times[label] = now() - start
        }
        Inference.setPrefillGEMMThreshold(nil)
        setDecodeKernel(chosen)
        emit(["what": "threshold", "kernel": "\(chosen)", "tokens": count, "direct_seconds": times["direct"]!, "tiled_seconds": times["tiled"]!])
    }
}

if wants("prefix") {
    // 1,500-token prompts sharing a 1,300-token prefix (system message + few-shot examples): time
    // to first token uncached vs with the shared prefix in the cache. A warm-up prefill first (so
    // neither side pays the first touch of the weights or the workspace growth), then REPEATS pairs
    // with a fresh 200-token tail each (the cache holds the prefix from an earlier request, never
    // the measured prompt), cached and uncached alternating in order. Wall seconds and process CPU
    // seconds (both threads; robust to the machine's load) per side; the first token must agree.
    let repeats = Int(ProcessInfo.processInfo.environment["LLAVA_FORGE_PREFIX_REPEATS"] ?? "") ?? 3
    let shared = prompt(1300, seed: 4)
    let cold = TextGenerator(engine: engine)
    let prefixes = PrefixCache(config: engine.config)
    let warm = TextGenerator(engine: engine, prefixCache: prefixes)
    _ = try cold.generate(GenerationRequest(prompt: prompt(1500, seed: 40), maxTokens: 1))  // warm-up
    _ = try warm.generate(GenerationRequest(prompt: shared + prompt(200, seed: 5), maxTokens: 1))  // caches the prefix
    func timed(_ generator: TextGenerator, _ ids: [Int]) throws -> (GenerationResult, Double, Double) {
        // maxTokens 1: the generation ends at the first token, so its CPU time is the TTFT's.
        let cpu = processCPUSeconds()
        let result = try generator.generate(GenerationRequest(prompt: ids, maxTokens: 1))
        return (result, result.timeToFirstToken, processCPUSeconds() - cpu)
    }
    var ratios: [Double] = [], cpuRatios: [Double] = [], sameToken = true, reused = Set<Int>()
    var cachedTTFT: [Double] = [], uncachedTTFT: [Double] = []
    for r in 0..<repeats {
        let second = shared + prompt(200, seed: 6 + r)
        var c: (GenerationResult, Double, Double)!, u: (GenerationResult, Double, Double)!
        if r % 2 == 0 { u = try timed(cold, second); c = try timed(warm, second) } else { c = try timed(warm, second); u = try timed(cold, second) }
        ratios.append(c.1 / u.1)
        cachedTTFT.append(c.1)
        uncachedTTFT.append(u.1)
        cpuRatios.append(c.2 / u.2)
        sameToken = sameToken && c.0.tokens == u.0.tokens
        reused.insert(c.0.cachedPromptTokens)
        emit(["what": "prefix_repeat", "repeat": r, "prompt_tokens": second.count, "cached_tokens": c.0.cachedPromptTokens,
              "ttft_uncached_seconds": u.1, "ttft_cached_seconds": c.1, "ratio": c.1 / u.1,
              "cpu_uncached_seconds": u.2, "cpu_cached_seconds": c.2, "cpu_ratio": c.2 / u.2, "same_token": c.0.tokens == u.0.tokens])
    }
    // Where a cached TTFT goes: the generator's steps one by one (fresh tail again).
    let tail = shared + prompt(200, seed: 90)
    var phases: [String: Double] = [:]
    var mark = now()
    func lap(_ name: String) { let t = now(); phases[name] = t - mark; mark = t }
    let cache = engine.makeCache(capacity: tail.count + 1); lap("make_cache_seconds")
    let restored = prefixes.restore(prompt: tail, into: cache); lap("restore_seconds")
    _ = try engine.step([SequenceStep(tokens: Array(tail[restored...]), cache: cache)]); lap("prefill_seconds")
    prefixes.store(prompt: tail, from: cache); lap("store_seconds")
    phases["restored_tokens"] = Double(restored)
    var summary: [String: Any] = ["what": "prefix", "prompt_tokens": 1500, "shared_tokens": shared.count, "repeats": repeats,
                                  "cached_tokens": reused.sorted(), "same_token": sameToken,
                                  "ttft_cached_median_seconds": median(cachedTTFT), "ttft_uncached_median_seconds": median(uncachedTTFT),
                                  "ratio_median": median(ratios), "ratio_min": ratios.min()!, "ratio_max": ratios.max()!,
                                  "cpu_ratio_median": median(cpuRatios), "cpu_ratio_min": cpuRatios.min()!, "cpu_ratio_max": cpuRatios.max()!]
    for (k, v) in phases { summary["phase_" + k] = v }
    emit(summary)
}

if wants("batch") {
    // Concurrency 1, 4 and 8 alternate in rounds (ROUNDS, default 5; STEPS decode steps each,
    // default 24), so every ratio to one sequence is taken between neighbouring measurements under
    // the same load; reported: median rates and the median [min–max] of the per-round ratios.
    let environment = ProcessInfo.processInfo.environment
    let rounds = Int(environment["LLAVA_FORGE_BATCH_ROUNDS"] ?? "") ?? 5
    let steps = Int(environment["LLAVA_FORGE_BATCH_STEPS"] ?? "") ?? 24
    // LLAVA_FORGE_BATCH_LEVELS=8 (comma-separated) profiles one level alone; ratios are then to
    // the first level listed.
    let levels = (environment["LLAVA_FORGE_BATCH_LEVELS"] ?? "1,4,8").split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
    // Each level decodes from its own prompts; contexts stay short (≤ 24 + 4 + rounds·steps).
    var states: [(caches: [KVCache], logits: [[Float]])] = try levels.map { concurrency in
        let caches = (0..<concurrency).map { _ in engine.makeCache(capacity: 32 + rounds * steps + 8) }
        let logits = try engine.step((0..<concurrency).map { SequenceStep(tokens: prompt(24, seed: 10 + $0), cache: caches[$0]) })
        return (caches, logits)
    }
    func run(_ level: Int, steps: Int) throws -> Double {
        let start = now()
        for _ in 0..<steps {
            let next = states[level].logits.map { Sampler.argmax($0) }
            let caches = states[level].caches
            states[level].logits = try engine.step((0..<caches.count).map { SequenceStep(tokens: [next[$0]], cache: caches[$0]) })
        }
        return Double(steps * states[level].caches.count) / (now() - start)
    }
    for level in levels.indices { _ = try run(level, steps: 4) }  // warm-up
    var rates = [[Double]](repeating: [], count: levels.count)
    for _ in 0..<rounds {
        for level in levels.indices { rates[level].append(try run(level, steps: steps)) }
    }
    for (level, concurrency) in levels.enumerated() {
        let ratios = zip(rates[level], rates[0]).map { $0 / $1 }
        emit(["what": "batch", "concurrency": concurrency, "aggregate_tokens_per_second": median(rates[level]),
              "speedup_vs_1": median(ratios), "speedup_min": ratios.min()!, "speedup_max": ratios.max()!,
              "rounds": rounds, "steps": steps])
    }
}

if wants("scheduler") {
    // Requests through the BatchScheduler (what `serve` runs): 1 and 8 concurrent requests
    // alternate in rounds, each of 24 prompt tokens and 48 sampled new tokens (temperature 0.8,
    // top-p 0.95, no stop). Decode tokens/s: the tokens that arrive after every request has its
    // first token (prefill done), over that window — sampling and scheduling included; and whole
    // requests (submit → last finish, prefill included) for reference.
    let environment = ProcessInfo.processInfo.environment
    let rounds = Int(environment["LLAVA_FORGE_BATCH_ROUNDS"] ?? "") ?? 5
    let newTokens = 48
    // LLAVA_FORGE_SCHED_TEMPERATURE=0 decodes greedily (no sampling cost).
    let temperature = Float(environment["LLAVA_FORGE_SCHED_TEMPERATURE"] ?? "") ?? 0.8
    let scheduler = BatchScheduler(engine: engine, maxActive: 8, queueCapacity: 16)
    defer { scheduler.shutdown() }
    final class Times: @unchecked Sendable {
        let lock = NSLock()
        var tokens: [[Double]]
        init(_ n: Int) { tokens = Array(repeating: [], count: n) }
        func add(_ i: Int, _ t: Double) { lock.lock(); tokens[i].append(t); lock.unlock() }
    }
    var seed = 100
    func requests(_ concurrency: Int) throws -> (decode: Double, whole: Double) {
        let group = DispatchGroup()
        let times = Times(concurrency)
        let start = now()
        for i in 0..<concurrency {
            seed += 1
            let request = GenerationRequest(prompt: prompt(24, seed: seed), maxTokens: newTokens,
                                            sampling: SamplingOptions(temperature: temperature, topP: 0.95, seed: UInt64(seed)))
            group.enter()
            try scheduler.submit(request) { event in
                switch event {
                case .finished, .failed: group.leave()
                case .token: times.add(i, now())
                }
            }
        }
        group.wait()
        let end = now()
        let decodeStart = times.tokens.map { $0.first ?? end }.max()!
        let decoded = times.tokens.reduce(0) { $0 + $1.filter { $0 > decodeStart }.count }
        let total = times.tokens.reduce(0) { $0 + $1.count }
        return (Double(decoded) / (end - decodeStart), Double(total) / (end - start))
    }
    _ = try requests(1); _ = try requests(8)  // warm-up
    var single: [(decode: Double, whole: Double)] = [], eight: [(decode: Double, whole: Double)] = []
    for _ in 0..<rounds {
        single.append(try requests(1))
        eight.append(try requests(8))
    }
    let ratios = zip(eight, single).map { $0.decode / $1.decode }, wholeRatios = zip(eight, single).map { $0.whole / $1.whole }
    emit(["what": "scheduler", "concurrency": 1, "temperature": temperature, "decode_tokens_per_second": median(single.map(\.decode)),
          "request_tokens_per_second": median(single.map(\.whole)), "rounds": rounds])
    emit(["what": "scheduler", "concurrency": 8, "decode_tokens_per_second": median(eight.map(\.decode)),
          "request_tokens_per_second": median(eight.map(\.whole)), "speedup_vs_1": median(ratios),
          "speedup_min": ratios.min()!, "speedup_max": ratios.max()!, "request_speedup_vs_1": median(wholeRatios), "rounds": rounds])
}
