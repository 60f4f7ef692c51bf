"""Fixture for Tests/ServingTests: the tiny Llama of Tests/ModelTests/Fixtures/tiny_llama as a Q8_0
GGUF that also carries a real tokenizer and a chat template, so `serve`/`chat` can be driven with
text end to end in CI without SmolLM2:

- weights: tiny_llama (2 layers, hidden 64, vocab 300), Q8_0 matrices with llama.cpp's Q/K
  permutation, as make_model_fixtures.py's tiny_llama_gguf;
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

import numpy as np
import gguf
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "Tests/ModelTests/Fixtures/tiny_llama/model")
TOKENIZER = os.path.join(ROOT, "Tests/CLITests/Fixtures/tiny_llava_tokenizer/tokenizer.json")
OUT = os.path.join(ROOT, "Tests/ServingTests/Fixtures")
CONTEXT = 8192
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def permute_for_gguf(weight, heads):
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


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

    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "tiny_chat.Q8_0.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-chat")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}

    def add(name, array):
        array = np.ascontiguousarray(array.astype(np.float32))
        if array.ndim == 2:
            writer.add_tensor(name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array)

    add("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config["num_hidden_layers"]):
        for hf, short in names.items():
            weight = state[f"model.layers.{i}.{hf}.weight"]
            if short == "attn_q":
                weight = permute_for_gguf(weight, heads)
            elif short == "attn_k":
                weight = permute_for_gguf(weight, kv_heads)
            add(f"blk.{i}.{short}.weight", weight)
    add("output_norm.weight", state["model.norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
