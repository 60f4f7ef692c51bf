import ArgumentParser
import Checkpoints
import ForgeCore
import Foundation

/// `llava-forge model-info PATH`: architecture, hyper-parameters, tokenizer, parameter counts and
/// the tensor table of a GGUF file, a safetensors file, or a Hugging Face folder.
struct ModelInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model-info",
        abstract: "Describe a checkpoint: architecture, shapes, dtypes, parameter counts and the tokenizer found.",
        discussion: """
        PATH is a .gguf file, a .safetensors file (or model.safetensors.index.json), or a Hugging Face \
        folder with config.json, safetensors weights (sharded or not) and tokenizer files. Only headers \
        and small JSON files are read.
        """)

    @Argument(help: "A .gguf file, a .safetensors file or index, or a model folder.")
    var path: String

    @Flag(help: "List every tensor instead of grouping repeated layers.")
    var tensors = false

    @Flag(help: "JSON output (every tensor listed).")
    var json = false

    func run() throws {
        try runReportingErrors {
            let summary = try CheckpointSummary.inspect(path: path)
            print(json ? try summary.renderJSON() : summary.renderText(allTensors: tensors))
        }
    }
}
