// Parse rate of our own engine on the seed photos, free text vs JSON schema (constrained
// sampling), per sample type, with the real prompts and few-shot seeds; and the constraint's mask
// time per token. Driven by bench/structured_bench.sh; prints one JSON object per line.
//
//   StructuredBench MODEL.gguf [--repo DIR] [--images N] [--max-tokens N] [--concurrency N]
//                   [--types a,b] [--modes free,structured] [--greedy] [--probe-only]
import Contexts
import Dispatch
import ForgeCore
import Foundation
import Generation
import Inference
import Models
import Parsing
import Prompts
import Quality
import Tokenizers

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
    fflush(stdout)
}
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("StructuredBench: \(message)\n".utf8))
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
guard let modelPath = args.first, !modelPath.hasPrefix("--") else {
    fail("usage: StructuredBench MODEL.gguf [--repo DIR] [--images N] [--max-tokens N] [--concurrency N] [--types a,b] [--modes free,structured] [--greedy]")
}
args.removeFirst()
var repo = FileManager.default.currentDirectoryPath
var imageLimit = 14, maxTokensCap = 512, concurrency = 4, greedy = false
var types = ["conversation", "detail", "reasoning"], modes = ["free", "structured"]
while !args.isEmpty {
    let flag = args.removeFirst()
    func value() -> String {
        if args.isEmpty { fail("\(flag) needs a value") }
        return args.removeFirst()
    }
    switch flag {
    case "--repo": repo = value()
    case "--images": imageLimit = Int(value()) ?? imageLimit
    case "--max-tokens": maxTokensCap = Int(value()) ?? maxTokensCap
    case "--concurrency": concurrency = Int(value()) ?? concurrency
    case "--types": types = value().split(separator: ",").map(String.init)
    case "--modes": modes = value().split(separator: ",").map(String.init)
    case "--greedy": greedy = true
    case "--probe-only": types = []
    default: fail("unknown flag \(flag)")
    }
}

// The seed photos' annotations (seeds/coco, COCO format) → symbolic contexts.
func loadSeedImages() throws -> [ImageAnnotations] {
    func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(repo)/seeds/coco/\(name)"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
    let captions = try json("captions_seeds.json"), instances = try json("instances_seeds.json")
    var names: [Int: String] = [:]
    for c in instances["categories"] as! [[String: Any]] { names[(c["id"] as! NSNumber).intValue] = c["name"] as? String }
    var caps: [Int: [String]] = [:], boxes: [Int: [ImageAnnotations.Box]] = [:]
    for a in captions["annotations"] as! [[String: Any]] { caps[(a["image_id"] as! NSNumber).intValue, default: []].append(a["caption"] as! String) }
    for a in instances["annotations"] as! [[String: Any]] {
        let b = (a["bbox"] as! [NSNumber]).map(\.doubleValue)
        boxes[(a["image_id"] as! NSNumber).intValue, default: []].append(
            ImageAnnotations.Box(category: names[(a["category_id"] as! NSNumber).intValue] ?? "?", x: b[0], y: b[1], w: b[2], h: b[3]))
    }
    return (captions["images"] as! [[String: Any]]).map { i in
        let id = (i["id"] as! NSNumber).intValue
        return ImageAnnotations(imageID: Int64(id), fileName: i["file_name"] as! String, width: (i["width"] as! NSNumber).int64Value,
                                height: (i["height"] as! NSNumber).int64Value, captions: caps[id] ?? [], boxes: boxes[id] ?? [])
    }.sorted { $0.imageID < $1.imageID }
}

let loadStart = now()
let engine = try QuantizedLlama.load(path: modelPath)
let tokenizer = try TokenizerLoader.load(gguf: modelPath)
let vocabularyStart = now()
let vocabulary = TokenVocabulary(tokenizer: tokenizer, logitCount: engine.config.vocabSize)
let vocabularySeconds = now() - vocabularyStart
let compiler = JSONConstraintCompiler(vocabulary: vocabulary)
let template = ChatTemplate(.chatMLSmolLM)
var stops = Set(tokenizer.eosTokenIds)
if let imEnd = tokenizer.tokenToId("<|im_end|>") { stops.insert(imEnd) }
let library = PromptLibrary(promptsDir: "\(repo)/prompts", seedsDir: "\(repo)/seeds")
let images = Array(try loadSeedImages().prefix(imageLimit))
emit(["what": "load", "seconds": now() - loadStart, "vocabulary": vocabulary.count, "vocabulary_seconds": vocabularySeconds,
      "images": images.count, "uptime": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""])

// Mask time in typical and worst states (the per-type figures below replay real outputs).
do {
    let conversationSchema = try String(contentsOfFile: "\(repo)/prompts/conversation/schema.json", encoding: .utf8)
    let probes: [(String, Inference.ResponseFormat, String)] = [
        ("start", .jsonSchema(name: "c", schema: conversationSchema, strict: true), ""),
        ("after {", .jsonSchema(name: "c", schema: conversationSchema, strict: true), "{"),
        ("in a key", .jsonSchema(name: "c", schema: conversationSchema, strict: true), "{\"conv"),
        ("string content", .jsonSchema(name: "c", schema: conversationSchema, strict: true), "{\"conversation\": [{\"question\": \"What is"),
        ("after a backslash", .jsonSchema(name: "c", schema: conversationSchema, strict: true), "{\"conversation\": [{\"question\": \"a\\"),
        ("json_object value", .jsonObject, "{\"a\": "),
        ("json_object number", .jsonObject, "{\"a\": 12"),
    ]
    for (name, format, prefix) in probes {
        guard let c = try compiler.makeConstraint(for: format, stopTokenIDs: Set(tokenizer.eosTokenIds)) else { continue }
        guard c.acceptText(Array(prefix.utf8)) else { fail("probe \(name) rejected") }
        var allowed = 0
        for _ in 0..<20 { allowed = c.allowedMask().reduce(0) { $0 + $1.nonzeroBitCount } }
        emit(["what": "mask_probe", "state": name, "ms": c.maskSeconds / Double(c.maskCount) * 1000, "allowed_tokens": allowed])
    }
}

let detokenize: Detokenize = { tokenizer.decode($0, skipSpecialTokens: true) }
let prefixCache = PrefixCache(config: engine.config, capacityBytes: 256 << 20)
let scheduler = BatchScheduler(engine: engine, maxActive: concurrency, prefixCache: prefixCache, detokenize: detokenize, constraints: compiler)
defer { scheduler.shutdown() }

final class Collector: @unchecked Sendable {
    let lock = NSLock()
    var results: [Int: GenerationResult] = [:]
    var errors: [String] = []
}

for type in types {
    let spec = try library.load(type: type)
    let format = Parsing.ResponseFormat(rawValue: spec.format) ?? .conversation
    for mode in modes {
        let structured = mode == "structured"
        let request = structured ? try StructuredRequest(spec: spec) : nil
        let responseFormat: Inference.ResponseFormat = structured
            ? .jsonSchema(name: type, schema: try StructuredRequest.compactSchema(spec.responseSchema ?? "", file: "schema.json"), strict: true) : .text
        let maxTokens = min(spec.maxTokens, maxTokensCap)
        func generationRequest(_ ann: ImageAnnotations) throws -> GenerationRequest {
            let context = SymbolicContextFormatter.format(ann, kind: spec.context).text
            let messages = (request?.messages(forContext: context) ?? spec.messages(forContext: context)).map {
                Tokenizers.ChatMessage(role: ChatRole(rawValue: $0.role) ?? .user, content: $0.content)
            }
            let prompt = tokenizer.encode(try template.generationPrompt(messages).text, addSpecialTokens: true)
            let sampling = greedy ? SamplingOptions.greedy : SamplingOptions(temperature: Float(spec.temperature), seed: UInt64(ann.imageID))
            return GenerationRequest(prompt: prompt, maxTokens: maxTokens, sampling: sampling, stopTokenIDs: stops, responseFormat: responseFormat)
        }
        let start = now()
        let collector = Collector()
        // The first request alone warms the prefix cache (system + few-shot), then the rest in parallel.
        let requests = try images.map(generationRequest)
        collector.results[0] = try scheduler.generate(requests[0])
        let group = DispatchGroup()
        for (i, r) in requests.enumerated().dropFirst() {
            group.enter()
            try scheduler.submit(r) { event in
                switch event {
                case .finished(let result): collector.lock.lock(); collector.results[i] = result; collector.lock.unlock(); group.leave()
                case .failed(let message): collector.lock.lock(); collector.errors.append(message); collector.lock.unlock(); group.leave()
                case .token: break
                }
            }
        }
        group.wait()
        let seconds = now() - start

        // parsed = complete JSON of the right shape (closed-at-budget ones included: they parse);
        // closed_at_budget = the constraint closed the value as max_tokens ran out (last field cut);
        // rejected_by_repetition = parsed but a degenerate loop (the `repetition` quality filter).
        var ok = 0, truncated = 0, tokens = 0, closedAtBudget = 0, repetitive = 0
        let repetition = RepetitionFilter()
        var reasons: [String: Int] = [:]
        var failures: [[String: Any]] = []
        var maskSeconds = 0.0, maskSteps = 0, budgetSearches = 0, budgetChecks = 0
        var example = ""
        for (i, ann) in images.enumerated() {
            guard let result = collector.results[i] else { reasons["request_failed", default: 0] += 1; continue }
            tokens += result.tokens.count
            let text = result.text ?? ""
            var rng = SeededRandom(seed: 0, key: "image-placement/\(type)/\(ann.imageID)")
            let instruction = spec.instructions.first
            let built = structured
                ? ConversationBuilder.buildFromJSON(format: format, response: text, instruction: instruction, rng: &rng)
                : ConversationBuilder.build(format: format, response: text, instruction: instruction, rng: &rng)
            switch built {
            case .failure(let f) where result.finishReason == .length:
                truncated += 1
                reasons["truncated", default: 0] += 1
                // What a truncated answer spent its budget on (the tail shows a loop or escapes).
                failures.append(["image_id": ann.imageID, "reason": "truncated", "parse": f.reason, "tokens": result.tokens.count,
                                 "characters": text.count, "tail": String(text.suffix(300))])
            case .failure(let f):
                reasons[f.reason, default: 0] += 1
                failures.append(["image_id": ann.imageID, "reason": f.reason, "tokens": result.tokens.count, "tail": String(text.suffix(300))])
            case .success(let turns):
                ok += 1
                if result.closedAtTokenBudget {
                    closedAtBudget += 1
                    failures.append(["image_id": ann.imageID, "reason": "closed_at_budget", "finish": result.finishReason.rawValue,
                                     "tokens": result.tokens.count, "characters": text.count, "tail": String(text.suffix(300))])
                }
                let sample = QualitySample(id: Int64(i), type: type, format: spec.format, turns: turns.map { QualitySample.Turn(from: $0.from, value: $0.value) })
                if let why = repetition.check(sample) {
                    repetitive += 1
                    failures.append(["image_id": ann.imageID, "reason": "repetition", "why": why, "tokens": result.tokens.count,
                                     "tail": String(text.suffix(300))])
                }
            }
            if i == 0 { example = String(text.prefix(300)) }
            // The mask work of this output, replayed with the same token budget: one mask per
            // generated token (+ the final EOS), budget searches and checks included.
            if structured, let constraint = try compiler.makeConstraint(for: responseFormat, stopTokenIDs: stops) {
                for (k, id) in result.tokens.enumerated() {
                    constraint.remainingTokens = maxTokens - k
                    _ = constraint.allowedMask()
                    constraint.accept(id)
                }
                if result.tokens.count < maxTokens {
                    constraint.remainingTokens = maxTokens - result.tokens.count
                    _ = constraint.allowedMask()
                }
                maskSeconds += constraint.maskSeconds
                maskSteps += constraint.maskCount
                budgetSearches += constraint.budgetSearches
                budgetChecks += constraint.budgetCheckedTokens
            }
        }
        var fields: [String: Any] = ["what": "parse_rate", "type": type, "mode": mode, "samples": images.count, "ok": ok,
                                     "parse_rate": Double(ok) / Double(max(1, images.count)), "truncated": truncated, "reasons": reasons,
                                     "closed_at_budget": closedAtBudget, "rejected_by_repetition": repetitive,
                                     "completion_tokens": tokens, "seconds": seconds, "max_tokens": maxTokens,
                                     "sampling": greedy ? "greedy" : "temperature \(spec.temperature)", "example": example,
                                     "errors": collector.errors, "failures": failures]
        if structured {
            fields["mask_ms_per_token"] = maskSteps > 0 ? maskSeconds / Double(maskSteps) * 1000 : 0
            fields["mask_steps"] = maskSteps
            fields["budget_searches"] = budgetSearches
            fields["budget_checked_tokens"] = budgetChecks
        }
        emit(fields)
    }
}
