#!/usr/bin/env python3
"""Golden fixtures for Tests/ModelTests: tiny random checkpoints saved by transformers, their
inputs and transformers' outputs, plus small outputs of the real SmolLM2-135M-Instruct GGUF.

Run from the repository root (needs torch, transformers, safetensors, numpy, gguf):

    flock /tmp/pip.lock python3 -m pip install -q torch transformers safetensors numpy gguf
    python3 tools/reference/make_model_fixtures.py [--smollm2 models/SmolLM2-135M-Instruct.Q4_1.gguf]

Everything is seeded, so a rerun with the same library versions writes the same bytes.
Arrays are raw little-endian float32 (`.f32`) with their shapes in each fixture's `case.json`.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
import transformers
from transformers import (CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, LlavaConfig,
                          LlavaForConditionalGeneration, Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "ModelTests", "Fixtures")


def write_f32(folder, name, tensor):
    array = np.ascontiguousarray(tensor.detach().cpu().numpy().astype("<f4"))
    array.tofile(os.path.join(folder, name + ".f32"))
    return {"file": name + ".f32", "shape": list(array.shape)}


def randomize(model, seed):
    """Default inits give near-zero activations (std 0.02, zero biases, unit norms), which would make
    a 1e-4 logits check weak. Draw every parameter so activations are O(1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "norm" in name:  # RMSNorm / LayerNorm scales and shifts
                p.copy_((1 + 0.2 * noise) if name.endswith("weight") else 0.2 * noise)
            elif p.dim() == 1:  # biases, class embedding
                p.copy_(0.3 * noise)
            elif "embed" in name and "patch" not in name:  # token / position embeddings
                p.copy_(0.5 * noise)  # tied heads then give logits of ~±15, like real models
            else:  # linear and conv weights: ~unit-gain
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(noise / np.sqrt(fan_in))


def save_folder(model, folder):
    if os.path.exists(folder):
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    # Only weights and config are needed; keep the fixtures small.
    for extra in os.listdir(folder):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, extra))


def ids_tensor(ids):
    return torch.tensor([ids], dtype=torch.long)


def make_text_case(name, model, ids, notes):
    folder = os.path.join(OUT, name)
    save_folder(model, os.path.join(folder, "model"))
    with torch.no_grad():
        logits = model(ids_tensor(ids)).logits[0]
    case = {"notes": notes, "input_ids": ids, "logits": write_f32(folder, "logits", logits)}
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print(name, "logits", tuple(logits.shape), "max |logit|", float(logits.abs().max()))


def tiny_llama():
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).eval()
    randomize(model, 11)
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(0, 300, (13,), generator=torch.Generator().manual_seed(12)).tolist()
    make_text_case("tiny_llama", model, ids, "LlamaForCausalLM, GQA 4/2 heads, tied embeddings")


def tiny_qwen2():
    config = Qwen2Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(config).eval()
    randomize(model, 21)
    ids = torch.randint(0, 300, (11,), generator=torch.Generator().manual_seed(22)).tolist()
    make_text_case("tiny_qwen2", model, ids, "Qwen2ForCausalLM: q/k/v biases, untied lm_head")


IMAGE_TOKEN = 299
IMAGE_SIZE = 42
PATCH = 14
IMAGE_ROWS = (IMAGE_SIZE // PATCH) ** 2  # default strategy drops CLS


def to_hub_layout(state):
    """The layout of the llava-hf files on the Hub (language_model.model.*, language_model.lm_head.*,
    vision_tower.vision_model.*, multi_modal_projector.*), from whatever this transformers saved
    (5.x: language_model.model.* + vision_tower.* without vision_model.; 4.52-4.57:
    model.language_model.* + model.vision_tower.vision_model.* + top-level lm_head)."""
    renamed = {}
    for key, value in state.items():
        new = key
        if new.startswith("model.language_model."):
            new = "language_model.model." + new[len("model.language_model."):]
        elif new.startswith("lm_head."):
            new = "language_model." + new
        elif new.startswith("model."):
            new = new[len("model."):]
        if new.startswith("vision_tower.") and not new.startswith("vision_tower.vision_model."):
            new = "vision_tower.vision_model." + new[len("vision_tower."):]
        renamed[new] = value.contiguous()
    return renamed


def tiny_llava():
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, layer_norm_eps=1e-5,
                              hidden_act="quick_gelu", projection_dim=32)
    text = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                       bos_token_id=1, eos_token_id=2)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=IMAGE_ROWS)
    torch.manual_seed(3)
    model = LlavaForConditionalGeneration(config).eval()
    randomize(model, 31)

    folder = os.path.join(OUT, "tiny_llava")
    save_folder(model, os.path.join(folder, "model"))
    saved = load_file(os.path.join(folder, "model", "model.safetensors"))
    other = to_hub_layout(saved)
    assert set(other) != set(saved), "this transformers already saves the Hub layout; pick another"
    other_folder = os.path.join(folder, "model_hub_layout")
    if os.path.exists(other_folder):
        shutil.rmtree(other_folder)
    os.makedirs(other_folder)
    shutil.copy(os.path.join(folder, "model", "config.json"), other_folder)
    save_file(other, os.path.join(other_folder, "model.safetensors"), metadata={"format": "pt"})

    gen = torch.Generator().manual_seed(32)
    pixel_values = torch.randn((1, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen)
    prefix = [1] + torch.randint(3, 290, (3,), generator=gen).tolist()
    suffix = torch.randint(3, 290, (5,), generator=gen).tolist()
    image_ids = prefix + [IMAGE_TOKEN] * IMAGE_ROWS + suffix
    text_ids = [1] + torch.randint(3, 290, (9,), generator=gen).tolist()
    with torch.no_grad():
        image_logits = model(input_ids=ids_tensor(image_ids), pixel_values=pixel_values).logits[0]
        text_logits = model(input_ids=ids_tensor(text_ids)).logits[0]
        tower = model.model.vision_tower
        hidden = tower(pixel_values, output_hidden_states=True).hidden_states
        selected = hidden[-2][0, 1:]  # [rows, vision hidden]
    case = {
        "notes": "LlavaForConditionalGeneration: CLIP tower 2 layers hidden 32, Llama text hidden 32, "
                 "mlp2x_gelu projector, vision_feature_layer -2, default strategy",
        "transformers": transformers.__version__,
        "saved_layout": "model.language_model.*" if any(k.startswith("model.language_model.") for k in saved) else "language_model.model.*",
        "image_input_ids": image_ids,
        "text_input_ids": text_ids,
        "pixel_values": write_f32(folder, "pixel_values", pixel_values),
        "image_logits": write_f32(folder, "image_logits", image_logits),
        "text_logits": write_f32(folder, "text_logits", text_logits),
        "vision_selected_features": write_f32(folder, "vision_selected_features", selected),
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print("tiny_llava image logits", tuple(image_logits.shape), "saved layout", case["saved_layout"])

    # The other layout must load in transformers to the same numbers (it is a real layout, not ours).
    try:
        reloaded = LlavaForConditionalGeneration.from_pretrained(other_folder).eval()
        with torch.no_grad():
            again = reloaded(input_ids=ids_tensor(image_ids), pixel_values=pixel_values).logits[0]
        print("  other layout reloads in transformers, max diff", float((again - image_logits).abs().max()))
    except Exception as error:  # informative only
        print("  other layout does not reload in this transformers:", error)

    # Separate parts: a CLIPVisionModel folder, a LlamaForCausalLM folder, and an original-LLaVA
    # projector file (model.mm_projector.0/2.*).
    parts = os.path.join(OUT, "tiny_llava_parts")
    if os.path.exists(parts):
        shutil.rmtree(parts)
    os.makedirs(parts)
    # transformers 5 modules: model.model.{vision_tower (a CLIPVisionModel), language_model (a
    # LlamaModel), multi_modal_projector}, model.lm_head.
    clip = CLIPVisionModel(vision).eval()
    clip.load_state_dict(model.model.vision_tower.state_dict())
    save_folder(clip, os.path.join(parts, "vision"))
    # Store the tower with the Hub CLIP folders' vision_model.* names (transformers 5 drops the prefix).
    clip_file = os.path.join(parts, "vision", "model.safetensors")
    clip_state = load_file(clip_file)
    save_file({("vision_model." + k if not k.startswith("vision_model.") else k): v.contiguous() for k, v in clip_state.items()},
              clip_file, metadata={"format": "pt"})
    llm = LlamaForCausalLM(text).eval()
    llm.model.load_state_dict(model.model.language_model.state_dict())
    llm.lm_head.load_state_dict(model.lm_head.state_dict())
    save_folder(llm, os.path.join(parts, "llm"))
    projector = model.model.multi_modal_projector
    save_file({
        "model.mm_projector.0.weight": projector.linear_1.weight.detach().contiguous(),
        "model.mm_projector.0.bias": projector.linear_1.bias.detach().contiguous(),
        "model.mm_projector.2.weight": projector.linear_2.weight.detach().contiguous(),
        "model.mm_projector.2.bias": projector.linear_2.bias.detach().contiguous(),
    }, os.path.join(parts, "mm_projector.safetensors"), metadata={"format": "pt"})


def smollm2(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = os.path.split(os.path.abspath(path))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    prompt = "The three primary colors are"
    ids = tokenizer(prompt).input_ids
    with torch.no_grad():
        generated = model.generate(ids_tensor(ids), max_new_tokens=16, do_sample=False)[0, len(ids):].tolist()
        logits = model(ids_tensor(ids)).logits[0]
        # The smallest top-1 margin along the greedy path says how much numerical slack the
        # greedy check has.
        full = model(ids_tensor(ids + generated)).logits[0, len(ids) - 1:-1]
        top2 = torch.topk(full, 2, dim=-1).values
        margin = float((top2[:, 0] - top2[:, 1]).min())
    stride = 8
    out = os.path.join(OUT, "smollm2")
    os.makedirs(out, exist_ok=True)
    case = {
        "notes": "SmolLM2-135M-Instruct.Q4_1.gguf loaded by transformers (dequantized to float32)",
        "transformers": transformers.__version__,
        "prompt": prompt,
        "input_ids": ids,
        "greedy_ids": generated,
        "greedy_text": tokenizer.decode(generated),
        "min_top1_margin_along_greedy_path": margin,
        "logits_column_stride": stride,
        "logits_strided": write_f32(out, "logits_strided", logits[:, ::stride]),
    }
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print("smollm2 ids", ids, "greedy", generated, repr(case["greedy_text"]), "min margin", margin)


def tiny_llama_gguf():
    """The tiny Llama written as a llama.cpp-style GGUF (Q8_0 matrices, F32 norms, Q/K permuted,
    tied head: no output.weight), then loaded back by transformers' GGUF path — so CI covers the
    metadata → config mapping, the un-permutation and dequantization without the real model."""
    from transformers import AutoModelForCausalLM
    from gguf_fixture_writer import write_llama_gguf
    source = os.path.join(OUT, "tiny_llama")
    config = json.load(open(os.path.join(source, "model", "config.json")))
    state = {k: v.numpy() for k, v in load_file(os.path.join(source, "model", "model.safetensors")).items()}
    out = os.path.join(OUT, "tiny_llama_gguf")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tiny_llama.Q8_0.gguf")

    def add_tokenizer(writer):
        writer.add_bos_token_id(config["bos_token_id"])
        writer.add_eos_token_id(config["eos_token_id"])
        writer.add_tokenizer_model("llama")
        writer.add_token_list([f"<t{i}>" for i in range(config["vocab_size"])])
        writer.add_token_scores([0.0] * config["vocab_size"])
        writer.add_token_types([1] * config["vocab_size"])

    write_llama_gguf(path, "tiny-llama", config, state, config["max_position_embeddings"], add_tokenizer)

    ids = json.load(open(os.path.join(source, "case.json")))["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(out, gguf_file=os.path.basename(path), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(ids_tensor(ids)).logits[0]
    reference = np.fromfile(os.path.join(source, "logits.f32"), dtype="<f4").reshape(logits.shape)
    case = {"notes": "tiny_llama as a Q8_0 GGUF with llama.cpp's Q/K permutation, logits from transformers' GGUF loader",
            "transformers": transformers.__version__, "input_ids": ids,
            "logits": write_f32(out, "logits", logits),
            "max_abs_vs_float32_safetensors": float(np.abs(logits.numpy() - reference).max())}
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print("tiny_llama_gguf: Q8_0 vs float32 max |Δlogit|", case["max_abs_vs_float32_safetensors"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smollm2", default=os.environ.get("LLAVA_FORGE_SMOLLM2_GGUF",
                                                           os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    parser.add_argument("--skip-smollm2", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    print("torch", torch.__version__, "transformers", transformers.__version__)
    tiny_llama()
    tiny_qwen2()
    tiny_llava()
    tiny_llama_gguf()
    if not args.skip_smollm2:
        if os.path.exists(args.smollm2):
            smollm2(args.smollm2)
        else:
            print("SmolLM2 GGUF not found at", args.smollm2, "- skipping its fixture", file=sys.stderr)


if __name__ == "__main__":
    main()
