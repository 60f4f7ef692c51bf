#!/usr/bin/env python3
"""PyTorch side of bench/train_bench.sh: the same LLaVA training step as bench/TrainBench
(random weights, fp32, 2 threads): frozen CLIP tower forward, projector + LLaMA forward, loss on
the text after the image, backward, clip_grad_norm_(1.0), AdamW. Prints one JSON object.

    python3 bench/train_bench.py --config tiny|smol [--steps 6] [--warmup 1] [--tower step|cached]

transformers' defaults otherwise (SDPA attention, torch.optim.AdamW's default implementation):
PyTorch as a user would run it. tokens/s and model FLOPs are computed exactly as on the Swift side.
"""
import argparse
import json
import resource
import statistics
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

CONFIGS = {
    # 59M trainable (LM 512 × 8, MHA, untied 32k vocabulary + mlp2x projector), ViT 384 × 6 / 16 px (11M, frozen).
    "tiny": dict(text=dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
                           num_key_value_heads=8, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048,
                           vocab_size=32000, tie_word_embeddings=False),
                 vision=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6),
                 batch=4, length=512),
    # SmolLM2-135M's shape (tied 49k vocabulary, GQA 9/3) + a ViT-B/16-sized tower (86M, frozen).
    "smol": dict(text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                           num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0, max_position_embeddings=2048,
                           vocab_size=49152, tie_word_embeddings=True),
                 vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
                 batch=1, length=512),
}


def sequence(b, length, image_rows, image_token):
    tokens = [1] + [100 + i for i in range(8)] + [image_token] * image_rows
    prefix = len(tokens)
    k = 0
    while len(tokens) < length:
        tokens.append(((k + 1000 * b) * 7919 + 13) % image_token)
        k += 1
    labels = [-100 if i < prefix else t for i, t in enumerate(tokens)]
    return tokens, labels


def model_flops(c, text, vision, image_rows, tower_every_step):
    t = c["length"]
    head_dim = text.hidden_size // text.num_attention_heads
    q_width, kv_width = text.num_attention_heads * head_dim, text.num_key_value_heads * head_dim
    h, inter = text.hidden_size, text.intermediate_size
    per_layer = h * (q_width + 2 * kv_width) + q_width * h + 3 * h * inter
    lm = 2 * t * (per_layer * text.num_hidden_layers + text.vocab_size * h)
    attention = 4 * t * (t + 1) / 2 * q_width * text.num_hidden_layers
    vin, out = vision.hidden_size, h
    projector = 2 * image_rows * (3 * out * out + 2 * vin * out)
    per_sequence = 3 * (lm + attention) + projector
    if tower_every_step:
        n = image_rows + 1
        vh = vision.hidden_size
        layers = vision.num_hidden_layers - 1
        patch_vector = 3 * vision.patch_size ** 2
        per_sequence += 2 * (n * (4 * vh * vh + 2 * vh * vision.intermediate_size) * layers + image_rows * patch_vector * vh)
        per_sequence += 4 * n * n * vh * layers
    return per_sequence * c["batch"]


def sgemm_peak(size=1024, repetitions=5):
    a, b = torch.rand(size, size), torch.rand(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repetitions):
        torch.mm(a, b)
    return 2 * size ** 3 * repetitions / (time.perf_counter() - start) / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    # The tower runs every step (no feature cache: what LlavaForConditionalGeneration training does).
    parser.add_argument("--tower", default="step", choices=["step"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = CONFIGS[args.config]
    text = LlamaConfig(bos_token_id=1, eos_token_id=2, **c["text"])
    vision = CLIPVisionConfig(image_size=224, patch_size=16, layer_norm_eps=1e-5, hidden_act="quick_gelu", **c["vision"])
    image_rows = (224 // 16) ** 2
    image_token = text.vocab_size - 1
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token, projector_hidden_act="gelu",
                         vision_feature_layer=-2, vision_feature_select_strategy="default", image_seq_length=image_rows,
                         tie_word_embeddings=text.tie_word_embeddings)
    model = LlavaForConditionalGeneration(config).float()
    model.train()
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.0)
    pixel_values = (torch.arange(3 * 224 * 224, dtype=torch.float32) % 255 / 128 - 1).reshape(1, 3, 224, 224)
    pixel_values = pixel_values.expand(c["batch"], 3, 224, 224).contiguous()
    pairs = [sequence(b, c["length"], image_rows, image_token) for b in range(c["batch"])]
    input_ids = torch.tensor([p[0] for p in pairs])
    labels = torch.tensor([p[1] for p in pairs])
    peak = sgemm_peak()

    step_seconds, losses = [], []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=input_ids, pixel_values=pixel_values, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        seconds = time.perf_counter() - start
        if step >= args.warmup:
            step_seconds.append(seconds)
        losses.append(float(loss.detach()))

    median = statistics.median(step_seconds)
    tokens = c["batch"] * c["length"]
    flops = model_flops(c, text, vision, image_rows, args.tower == "step")
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "config": args.config, "batch": c["batch"], "sequence_length": c["length"],
        "tower": args.tower, "trainable_params": sum(p.numel() for p in trainable),
        "frozen_params": sum(p.numel() for p in model.model.vision_tower.parameters()),
        "step_seconds": step_seconds, "median_step_seconds": median, "tokens_per_second": tokens / median, "losses": losses,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "model_gflop_per_step": flops / 1e9, "gflops": flops / median / 1e9, "sgemm_peak_gflops": peak,
        "percent_of_sgemm_peak": 100 * flops / median / 1e9 / peak, "threads": torch.get_num_threads(),
        "attention": model.config.text_config._attn_implementation, "loadavg": load,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
