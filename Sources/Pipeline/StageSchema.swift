import ForgeCore

/// The type a stage parameter must have.
public enum ParamType: Sendable, Equatable {
    case string, int, double, bool
    /// A list of strings; a single string is accepted as a one-element list.
    case stringList
    /// A mapping, checked further by the kind's own validator.
    case map

    var expected: String {
        switch self {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a number"
        case .bool: return "true or false"
        case .stringList: return "a list of strings"
        case .map: return "a mapping"
        }
    }
}

public struct ParamSpec: Sendable {
    public var name: String
    public var type: ParamType
    public var required = false
    /// False for settings that change how, not what (concurrency, timeouts, the server URL):
    /// they are left out of the fingerprint.
    public var affectsOutput = true
    public var allowed: [String]? = nil
    public var doc: String

    public init(_ name: String, _ type: ParamType, required: Bool = false, affectsOutput: Bool = true, allowed: [String]? = nil, _ doc: String) {
        self.name = name; self.type = type; self.required = required; self.affectsOutput = affectsOutput; self.allowed = allowed; self.doc = doc
    }
}

/// Per-kind parameter schema: like a JSON schema with `additionalProperties: false`.
public struct KindSchema: Sendable {
    public var kind: String
    public var summary: String
    public var params: [ParamSpec]
    /// Known kinds that a later issue implements: rejected with "not available yet".
    public var available = true

    public func spec(_ name: String) -> ParamSpec? { params.first { $0.name == name } }
}

public enum StageSchemas {
    public static let stageKeys = ["name", "kind", "params", "needs", "description"]

    public static let all: [KindSchema] = [
        KindSchema(kind: "ingest", summary: "COCO captions/instances JSON → the database", params: [
            ParamSpec("captions", .string, "COCO captions_*.json"),
            ParamSpec("instances", .string, "COCO instances_*.json"),
            ParamSpec("images", .string, "folder with the image files (checked, remembered)"),
            ParamSpec("strict", .bool, "fail on annotations for unknown image ids"),
        ]),
        KindSchema(kind: "contexts", summary: "symbolic contexts per image and type (counted, degenerate boxes dropped)", params: [
            ParamSpec("types", .stringList, "sample types (default: every type under prompts/)"),
        ]),
        KindSchema(kind: "sample-images", summary: "seeded choice of images per type with target counts", params: [
            ParamSpec("seed", .int, "seed of the per-type image order"),
            ParamSpec("types", .map, required: true, "type → {count, reuse: TYPE, exclude: [TYPES], require_boxes}"),
        ]),
        KindSchema(kind: "generate", summary: "LLM-written samples of one type (journalled, cached)", params: [
            ParamSpec("type", .string, required: true, "sample type (a folder under prompts/)"),
            ParamSpec("limit", .int, "samples to have (default: the sample-images count for the type)"),
            ParamSpec("model", .string, "model name (default: $LLAVA_FORGE_MODEL)"),
            ParamSpec("base_url", .string, affectsOutput: false, "API base URL with /v1 (default: $LLAVA_FORGE_BASE_URL)"),
            ParamSpec("local_model", .string, affectsOutput: false, "GGUF served locally when no base_url is set (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)"),
            ParamSpec("api_key_file", .string, affectsOutput: false, "file with the API key (else $OPENAI_API_KEY)"),
            ParamSpec("concurrency", .int, affectsOutput: false, "requests in flight for this stage (capped by max_in_flight)"),
            ParamSpec("seed", .int, "seed for instruction choice and <image> placement"),
            ParamSpec("temperature", .double, "override the type's temperature"),
            ParamSpec("max_tokens", .int, "override the type's max_tokens"),
            ParamSpec("top_p", .double, "nucleus sampling top_p"),
            ParamSpec("timeout", .double, affectsOutput: false, "seconds per request"),
            ParamSpec("max_retries", .int, affectsOutput: false, "retries of retryable failures"),
            ParamSpec("structured", .string, allowed: ["auto", "on", "off"], "JSON-schema output (prompts/<type>/schema.json as response_format): auto = on for the local engine only"),
        ]),
        KindSchema(kind: "parse", summary: "parse outcome report and gate for one type", params: [
            ParamSpec("type", .string, required: true, "sample type"),
            ParamSpec("max_failure_rate", .double, "fail when more than this fraction did not parse (0…1)"),
        ]),
        KindSchema(kind: "filter", summary: "quality filters; every rejection stored with its reason", params: [
            ParamSpec("types", .stringList, "types to filter (default: the upstream generate stages' types)"),
            ParamSpec("rules", .stringList, allowed: ["source_leak", "refusal", "format", "length", "unanswered", "language", "count_mismatch",
                                                    "cut_at_max_tokens", "repetition"], "filters to apply (default: all)"),
            ParamSpec("min_words", .int, "fewest answer words"),
            ParamSpec("max_words", .int, "most answer words"),
            ParamSpec("per_type", .map, "type → {min_words, max_words}"),
            ParamSpec("language", .string, allowed: ["en", "any"], "en: reject non-English; any: no check"),
        ]),
        KindSchema(kind: "dedup", summary: "exact + MinHash-LSH near-duplicate removal (incremental)", params: [
            ParamSpec("types", .stringList, "types to dedup (default: the upstream generate stages' types)"),
            ParamSpec("scope", .string, allowed: ["per_type", "global"], "compare within each type or across the data set"),
            ParamSpec("exact", .bool, "remove exact duplicates (normalized text)"),
            ParamSpec("near", .bool, "remove near duplicates (MinHash LSH)"),
            ParamSpec("threshold", .double, "exact Jaccard a candidate needs to be a duplicate (0…1)"),
            ParamSpec("bands", .int, "LSH bands"),
            ParamSpec("rows", .int, "rows per band (bands × rows permutations)"),
            ParamSpec("word_ngram", .int, "word n-gram size for answers"),
            ParamSpec("char_ngram", .int, "character n-gram size for short questions"),
            ParamSpec("short_question_words", .int, "questions up to this many words use character n-grams"),
        ]),
        KindSchema(kind: "export", summary: "LLaVA JSON (release layout or one file)", params: [
            ParamSpec("out_dir", .string, "folder for llava_instruct_<N>.json + per-type files"),
            ParamSpec("out", .string, "one output file"),
            ParamSpec("type", .string, "only this type (with out)"),
            ParamSpec("format", .string, allowed: ["llava", "jsonl"], "llava (JSON array) or jsonl (with out)"),
        ]),
        // Inputs: the store's ok samples (or `data`), the models (`vision`, `llm`, `projector`, `ask_image`);
        // outputs: `out` (checkpoint/, metrics.csv, loss.svg, run_summary.json).
        KindSchema(kind: "train", summary: "LLaVA Stage 1/2 training (tower frozen, features cached), then optionally one answer", params: [
            ParamSpec("llm", .string, required: true, "input: language model (HF folder, GGUF file, or a whole llava folder)"),
            ParamSpec("out", .string, required: true, "output folder: checkpoint/, metrics.csv, loss.svg, run_summary.json"),
            ParamSpec("vision", .string, "input: CLIP folder or random:tiny (default: random:tiny, a seeded random ViT, not CLIP)"),
            ParamSpec("projector", .string, "input: projector initialisation (safetensors)"),
            ParamSpec("tokenizer", .string, "input: tokenizer folder or GGUF (default: the LLM's)"),
            ParamSpec("data", .string, "input: a LLaVA JSON file or another store (default: the pipeline's database)"),
            ParamSpec("images", .string, "image folder (default: the store's image root)"),
            ParamSpec("types", .stringList, "sample types to train on (default: all)"),
            ParamSpec("mix", .string, "type=ratio,… mix instead of types"),
            ParamSpec("stage", .int, "1 = projector only (plain template), 2 = projector + LLM"),
            ParamSpec("template", .string, allowed: ["auto", "vicuna_v1", "llava_v1", "chatml", "chatml-smollm", "plain"], "conversation template"),
            ParamSpec("max_steps", .int, "optimizer steps (0: skip training)"),
            ParamSpec("epochs", .int, "epochs (without max_steps)"),
            ParamSpec("batch_tokens", .int, "token budget per micro-batch"),
            ParamSpec("grad_accum", .int, "micro-batches per step"),
            ParamSpec("lr", .double, "learning rate"),
            ParamSpec("projector_lr", .double, "projector learning rate"),
            ParamSpec("warmup_ratio", .double, "cosine warm-up fraction"),
            ParamSpec("max_length", .int, "truncate sequences to this many tokens"),
            ParamSpec("save_every", .int, "checkpoint every N steps"),
            ParamSpec("eval_every", .int, "held-out loss every N steps"),
            ParamSpec("eval_fraction", .double, "held-out fraction"),
            ParamSpec("seed", .int, "data order / projector init seed"),
            ParamSpec("ask_image", .string, "input: after training, an image to ask about"),
            ParamSpec("ask_question", .string, "the question about ask_image"),
            ParamSpec("max_answer_tokens", .int, "most tokens of the answer"),
        ]),
        KindSchema(kind: "evaluate", summary: "evaluation (a later issue)", params: [], available: false),
    ]

    public static func schema(_ kind: String) -> KindSchema? { all.first { $0.kind == kind } }

    /// Checks a stage's params against its kind's schema: unknown keys, missing required ones,
    /// wrong types, values outside an enumeration.
    static func validate(params: [PEntry], schema: KindSchema, stage: String, stageMark: SourceMark) throws {
        for e in params {
            guard let spec = schema.spec(e.key) else {
                let known = schema.params.map(\.name)
                throw pipelineError("unknown parameter '\(e.key)' for kind '\(schema.kind)'" + (known.isEmpty ? " (it takes none)" : " (known: \(known.joined(separator: ", ")))"),
                                    at: e.keyMark, stage: stage)
            }
            try check(e.node, spec: spec, stage: stage)
        }
        for spec in schema.params where spec.required && !params.contains(where: { $0.key == spec.name }) {
            throw pipelineError("missing required parameter '\(spec.name)' (\(spec.type.expected): \(spec.doc))", at: stageMark, stage: stage)
        }
    }

    static func check(_ node: PNode, spec: ParamSpec, stage: String) throws {
        let ok: Bool
        switch (spec.type, node.value) {
        case (.string, .string), (.int, .int), (.double, .double), (.double, .int), (.bool, .bool), (.map, .map), (.stringList, .string): ok = true
        case (.stringList, .list(let items)): ok = items.allSatisfy { $0.string != nil }
        default: ok = false
        }
        guard ok else {
            throw pipelineError("parameter '\(spec.name)' must be \(spec.type.expected), got \(node.value.typeName) (\(node.value.display))", at: node.mark, stage: stage)
        }
        if let allowed = spec.allowed {
            let values: [PNode]
            if case .list(let l) = node.value { values = l } else { values = [node] }
            for v in values where !allowed.contains(v.string ?? "") {
                throw pipelineError("parameter '\(spec.name)': '\(v.value.display)' is not one of: \(allowed.joined(separator: ", "))", at: v.mark, stage: stage)
            }
        }
    }
}
