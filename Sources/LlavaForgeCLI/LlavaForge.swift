import ArgumentParser
import ForgeCore
import Foundation

struct LlavaForge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llava-forge",
        abstract: "LLaVA visual instruction tuning on one machine: COCO → instruction data → SQLite → LLaVA JSON.",
        discussion: """
        The data path, stage by stage:
          ingest    COCO captions/instances JSON → SQLite
          context   print an image's symbolic context (LLaVA's format)
          generate  ask an OpenAI-compatible LLM for samples of one type
          batch     the same through OpenAI Batch API files (export / import)
          export    write LLaVA JSON (combined and per type)
          inspect   read samples of one type with their context
          stats     counts, failures, lengths, tokens
          model-info architecture, tensors, dtypes, parameters, tokenizer of a checkpoint
          tokenize  token ids of a text (tokenizer folder or GGUF, optional chat template)
          predict   run a prompt (+ image) through a model: streamed continuation, --dump-logits .npy
          chat      multi-turn REPL with a model (image on the first turn for llava models)
          serve     OpenAI-compatible server (/v1/chat/completions, streaming, images, batching)
          run       run a pipeline file (pipelines/*.yaml) as a DAG, redoing only what changed
          filter    quality filters, every rejection stored with its reason
          dedup     exact + MinHash-LSH near-duplicate removal (incremental)
          train     train a LLaVA (Stage 1 / 2) on stored or LLaVA-JSON samples, with resume
        """,
        subcommands: [Ingest.self, Context.self, Generate.self, Batch.self, Export.self, Inspect.self, Stats.self,
                      Run.self, Filter.self, Dedup.self, ModelInfo.self, Tokenize.self, Predict.self,
                      Chat.self, Serve.self, Train.self]
    )
}

/// Runs a command body, turning our errors into one clear line on stderr and exit code 1.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ForgeError {
        FileHandle.standardError.write(Data("error: \(e.description)\n".utf8))
        throw ExitCode(e.kind == .usage ? 64 : 1)
    }
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: "The SQLite database file (created if missing).")
    var db: String = "llava-forge.db"
}
