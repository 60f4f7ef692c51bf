// swift-tools-version:6.0
// llava-forge: the LLaVA visual-instruction-tuning recipe in one Swift package.
// Module layout mirrors the data path: Ingest → Contexts → Prompts → LLMClient → Generation → Parsing → Store → Export.
import PackageDescription

// Numeric and parsing hot paths are compiled with optimization even in debug builds, so that
// `swift test` (debug) stays fast enough; see docs/ARCHITECTURE.md "Build modes".
let hotPath: [SwiftSetting] = [.unsafeFlags(["-O"])]

let package = Package(
    name: "llava-forge",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "llava-forge", targets: ["LlavaForgeCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // System libraries (apt providers; scripts/setup.sh installs them on a fresh machine).
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CJPEG", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),

        // Shared utilities: errors with locations, hashing, seeded RNG, memory-mapped files.
        .target(name: "ForgeCore", swiftSettings: hotPath),
        // SQLite store (GRDB over the system SQLite): schema, migrations, queries.
        .target(name: "Store", dependencies: [
            "ForgeCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ]),
        // COCO captions/instances JSON → Store, streaming over a memory map.
        .target(name: "Ingest", dependencies: [
            "ForgeCore", "Store",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ], swiftSettings: hotPath),
        // Symbolic contexts in LLaVA's exact text format.
        .target(name: "Contexts", dependencies: [
            "ForgeCore", "Store",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: hotPath),
        // prompts/ and seeds/ on disk → chat messages.
        .target(name: "Prompts", dependencies: ["ForgeCore", "Contexts", .product(name: "Yams", package: "Yams")]),
        // OpenAI-compatible chat completions over libcurl.
        .target(name: "LLMClient", dependencies: ["ForgeCore", "CCurl"]),
        // Raw model responses → LLaVA conversation turns.
        .target(name: "Parsing", dependencies: ["ForgeCore"]),
        // contexts → requests → responses → samples, journalled in the Store.
        .target(name: "Generation", dependencies: [
            "ForgeCore", "Store", "Contexts", "Prompts", "LLMClient", "Parsing",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // LLaVA JSON / JSONL export, inspect, stats.
        .target(name: "Export", dependencies: ["ForgeCore", "Store", "Contexts"]),
        // Quality filters (with stored reasons) and exact + MinHash-LSH near-duplicate removal.
        .target(name: "Quality", dependencies: [
            "ForgeCore", "Store",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: hotPath),
        // pipelines/*.yaml: validated stage DAGs, fingerprinted reruns, concurrent runner.
        .target(name: "Pipeline", dependencies: [
            "ForgeCore", "Store", "Ingest", "Contexts", "Prompts", "LLMClient", "Generation", "Export", "Quality", "TrainingData",
            .product(name: "Yams", package: "Yams"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),

        // ---- The engine core: checkpoints, tokenizers, images, tensor math, models. ----
        // Training attention blocks (AVX-512 register tiles + softmax rows, chosen at run time).
        .target(name: "CTrainingKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Tensor math on OpenBLAS (sgemm/sgemv, OpenBLAS core selection) and SIMD element-wise kernels.
        .target(name: "TensorMath", dependencies: ["ForgeCore", "COpenBLAS", "CTrainingKernels"], swiftSettings: hotPath),
        // safetensors (single/sharded, mmap) and GGUF (metadata, tensor infos, dequantization).
        .target(name: "Checkpoints", dependencies: ["ForgeCore"], swiftSettings: hotPath),
        // HF tokenizer.json BPE (byte-level and SentencePiece-style), GGUF tokenizers, chat templates.
        .target(name: "Tokenizers", dependencies: ["ForgeCore", "Checkpoints"], swiftSettings: hotPath),
        // setjmp/longjmp-safe C wrappers around libjpeg and libpng (our code; errors become status codes).
        .target(name: "CImageShims", dependencies: ["CJPEG", "CPNG"],
                cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("z")]),
        // JPEG/PNG decoding (through CImageShims) and CLIP preprocessing.
        .target(name: "Imaging", dependencies: ["ForgeCore", "CImageShims"], swiftSettings: hotPath),
        // LLaMA-family decoder, CLIP ViT, projector, LLaVA composition; configs and key mapping.
        .target(name: "Models", dependencies: ["ForgeCore", "TensorMath", "Checkpoints", "Tokenizers", "Imaging"], swiftSettings: hotPath),

        // Generation engine: quantized GGUF decode kernels, sampling, prefix cache, batched decode.
        // Built for haswell (AVX2 + FMA + F16C, as llama.cpp's default x86 build) so the block kernels vectorize.
        // AVX2 int16 block kernels (vpmaddwd), which Swift's SIMD types cannot express.
        .target(name: "CInferenceKernels", cSettings: [.unsafeFlags(["-O3", "-mavx2", "-mfma", "-mf16c"])]),
        .target(name: "Inference", dependencies: ["ForgeCore", "TensorMath", "Checkpoints", "Models", "Tokenizers", "CInferenceKernels", "CTrainingKernels"],
                swiftSettings: [.unsafeFlags(["-O", "-target-cpu", "haswell"])]),

        // bench/decode_bench.sh's driver (not a product).
        .executableTarget(name: "InferenceBench", dependencies: ["Inference", "Models", "TensorMath"], path: "bench/InferenceBench",
                          swiftSettings: hotPath),
        // bench/forward_bench.sh's driver (not a product): LLaVA forward tokens/s and GFLOP/s vs sgemm peak.
        .executableTarget(name: "ForwardBench", dependencies: ["Models", "TensorMath"], path: "bench/ForwardBench",
                          swiftSettings: hotPath),
        // bench/structured_bench.sh's driver (not a product): parse rate per type, free text vs JSON schema, mask ms/token.
        .executableTarget(name: "StructuredBench", dependencies: ["Inference", "Models", "Tokenizers", "Prompts", "Contexts", "Parsing", "Generation", "Quality", "ForgeCore"],
                          path: "bench/StructuredBench", swiftSettings: hotPath),
        // Backward through the LLaVA stack, loss, AdamW, schedule, clipping, trainer loop, checkpoints.
        .target(name: "Training", dependencies: ["ForgeCore", "TensorMath", "Checkpoints", "Models"], swiftSettings: hotPath),
        // The training data path and run driver: store / LLaVA JSON → masked, length-grouped sequences,
        // cached tower features, metrics + SVG chart, checkpoints with data-order state, resume.
        .target(name: "TrainingData", dependencies: [
            "ForgeCore", "Store", "Tokenizers", "Imaging", "Models", "Training", "TensorMath", "Checkpoints",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], swiftSettings: hotPath),
        // bench/train_bench.sh's driver (not a product): LLaVA training steps, tokens/s, peak RSS, GFLOP/s vs sgemm peak.
        .executableTarget(name: "TrainBench", dependencies: ["Training", "Models", "TensorMath"], path: "bench/TrainBench",
                          swiftSettings: hotPath),

        // A loaded model (GGUF or HF folder) → chat prompts with images → the OpenAI-compatible server (Hummingbird).
        .target(name: "Serving", dependencies: [
            "ForgeCore", "TensorMath", "Checkpoints", "Tokenizers", "Imaging", "Models", "Inference",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: hotPath),  // request JSON with megabytes of base64 is parsed byte by byte

        .executableTarget(name: "LlavaForgeCLI", dependencies: [
            "ForgeCore", "Store", "Ingest", "Contexts", "Prompts", "LLMClient", "Parsing", "Generation", "Export",
            "Quality", "Pipeline",
            "TensorMath", "Checkpoints", "Tokenizers", "Imaging", "Models", "Inference", "Serving", "TrainingData",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Test support: a loopback OpenAI-compatible mock server with fault injection.
        .target(name: "MockOpenAI", dependencies: ["ForgeCore"], path: "Tests/MockOpenAI"),
        // Test support: small fixtures several test targets share (a tiny ingested COCO set).
        .target(name: "ForgeTestSupport", dependencies: ["Ingest", "Store"], path: "Tests/ForgeTestSupport"),
        // The same mock as a process, for bench/generation_bench.sh.
        .executableTarget(name: "forge-mock", dependencies: ["MockOpenAI"], path: "bench/forge-mock"),
        // The shared JSON parser (RFC cases, numbers, escapes, limits, error positions) and other ForgeCore pieces.
        .testTarget(name: "ForgeCoreTests", dependencies: ["ForgeCore"]),
        .testTarget(name: "IngestTests", dependencies: ["Ingest", "Store", "ForgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ContextTests", dependencies: ["Contexts", "Ingest", "Store", "ForgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "ForgeCore"]),
        .testTarget(name: "ParsingTests", dependencies: ["Parsing", "ForgeCore"]),
        .testTarget(name: "GenerationTests", dependencies: [
            "Generation", "LLMClient", "Prompts", "Store", "Ingest", "MockOpenAI", "ForgeTestSupport", "ForgeCore",
        ]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "Store", "Ingest", "ForgeCore"]),
        .testTarget(name: "QualityTests", dependencies: ["Quality", "Store", "ForgeCore"]),
        .testTarget(name: "PipelineTests", dependencies: [
            "Pipeline", "Quality", "Generation", "LLMClient", "Prompts", "Store", "Ingest", "Export", "MockOpenAI", "ForgeCore",
        ]),
        .testTarget(name: "TensorMathTests", dependencies: ["TensorMath", "ForgeCore"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoints", "ForgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TokenizerTests", dependencies: ["Tokenizers", "Checkpoints", "ForgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "ForgeCore"], resources: [.copy("Fixtures")]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "Models", "TensorMath", "Checkpoints", "ForgeCore"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Models", "TensorMath", "Checkpoints", "ForgeCore"], resources: [.copy("Fixtures")]),
        // `llava-forge predict` run as a process on the model fixtures; the .npy writer.
        .testTarget(name: "CLITests", dependencies: ["Checkpoints", "Models", "Imaging", "Tokenizers", "ForgeCore"], exclude: ["Fixtures"]),
        // Masking vs LLaVA's rules, loaders, batching, feature cache, metrics, and `llava-forge train` runs (resume).
        .testTarget(name: "TrainingDataTests", dependencies: [
            "TrainingData", "Training", "Models", "Tokenizers", "Store", "Pipeline", "TensorMath", "ForgeCore",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], exclude: ["Fixtures"]),
        // Structured output: schema compilation, the JSON automaton, token masks, constrained runs, JSON requests/parsing.
        .testTarget(name: "StructuredOutputTests", dependencies: [
            "Inference", "Models", "TensorMath", "Tokenizers", "Parsing", "Generation", "Prompts", "LLMClient", "Store", "Ingest", "MockOpenAI", "ForgeTestSupport", "ForgeCore",
        ]),
        // The server in-process (raw HTTP over loopback), `serve`/`chat` as processes, the openai-client script, the pipeline's local server.
        .testTarget(name: "ServingTests", dependencies: [
            "Serving", "Pipeline", "Inference", "Models", "Tokenizers", "Imaging", "Checkpoints", "ForgeCore",
        ], exclude: ["Fixtures", "openai_client_check.py"]),
        .testTarget(name: "ModelTests", dependencies: ["Models", "TensorMath", "Checkpoints", "Tokenizers", "Imaging", "ForgeCore"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
