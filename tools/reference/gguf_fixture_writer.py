"""The llama.cpp-style GGUF writer shared by the fixture scripts (numpy + gguf only, no torch):
a tiny Llama's safetensors state written with Q8_0 matrices, F32 norms, llama.cpp's Q/K row
permutation (for ggml's interleaved RoPE) and a tied head (no output.weight). Each caller adds its
own tokenizer metadata through `add_tokenizer(writer)`.
"""
import numpy as np
import gguf

# Hugging Face Llama module names → GGUF block tensor names.
LAYER_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
               "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def permute_for_gguf(weight, heads):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (for ggml's interleaved RoPE)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def rope_theta(config):
    """transformers 5 keeps it under rope_parameters, 4.x at the top level."""
    return config["rope_parameters"]["rope_theta"] if "rope_parameters" in config else config["rope_theta"]


def write_llama_gguf(path, name, config, state, context_length, add_tokenizer):
    """Writes `state` (HF names → numpy arrays) of a Llama `config` (config.json as a dict)."""
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config["hidden_size"] // heads)
    writer.add_rope_freq_base(rope_theta(config))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    add_tokenizer(writer)

    def add(tensor_name, array):
        array = np.ascontiguousarray(array.astype(np.float32))
        if array.ndim == 2:
            writer.add_tensor(tensor_name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(tensor_name, array)

    add("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config["num_hidden_layers"]):
        for hf, short in LAYER_NAMES.items():
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
