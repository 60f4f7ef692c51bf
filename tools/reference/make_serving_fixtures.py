"""Fixture for Tests/ServingTests: the tiny Llama of Tests/ModelTests/Fixtures/tiny_llama as a Q8_0
GGUF that also carries a real tokenizer and a chat template, so `serve`/`chat` can be driven with
text end to end in CI without SmolLM2:

- weights: tiny_llama (2 layers, hidden 64, vocab 300), Q8_0 matrices with llama.cpp's Q/K
  permutation (tools/reference/gguf_fixture_writer.py, shared with make_model_fixtures.py);
- tokenizer: the 300-id byte-level BPE of Tests/CLITests/Fixtures/tiny_llava_tokenizer (gpt2
  model; `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<image>` control tokens; ids without a
  token are filled with unused control tokens), BOS `<|im_start|>` not added, EOS `<|im_end|>`;
- `tokenizer.chat_template`: a ChatML Jinja template (what SmolLM2 ships, minus its system prompt);
- context length 8192 (the random weights do not depend on it; RoPE is computed), so the demo
  pipeline's few-shot prompts (~6K tokens with this byte-level tokenizer) fit.

    python3 tools/reference/make_serving_fixtures.py
"""
import json
import os

import gguf
from safetensors.numpy import load_file

from gguf_fixture_writer import write_llama_gguf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "Tests/ModelTests/Fixtures/tiny_llama/model")
TOKENIZER = os.path.join(ROOT, "Tests/CLITests/Fixtures/tiny_llava_tokenizer/tokenizer.json")
OUT = os.path.join(ROOT, "Tests/ServingTests/Fixtures")
CONTEXT = 8192
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def main():
    config = json.load(open(os.path.join(SOURCE, "config.json")))
    state = load_file(os.path.join(SOURCE, "model.safetensors"))
    spec = json.load(open(TOKENIZER, encoding="utf-8"))
    vocab_size = config["vocab_size"]
    tokens = [None] * vocab_size
    types = [gguf.TokenType.NORMAL] * vocab_size
    for token, i in spec["model"]["vocab"].items():
        tokens[i] = token
    for added in spec["added_tokens"]:
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL
    for i, token in enumerate(tokens):
        if token is None:
            tokens[i] = f"<unused{i}>"
            types[i] = gguf.TokenType.UNUSED
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "tiny_chat.Q8_0.gguf")

    def add_tokenizer(writer):
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(False)
        writer.add_chat_template(CHATML)

    write_llama_gguf(path, "tiny-chat", config, state, CONTEXT, add_tokenizer)
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
