#!/usr/bin/env python3
"""Golden fixtures for Tests/TrainingTests: a tiny random LLaVA, one masked batch, PyTorch's loss,
the gradient of every trainable tensor (projector + language model; the CLIP tower frozen), and the
losses of a few AdamW steps with a cosine-with-warmup schedule and global-norm clipping.

Run from the repository root (needs torch, transformers, safetensors, numpy):

    python3 tools/reference/make_training_fixtures.py

Check mode (by hand): `LLAVA_FORGE_KEEP_CHECKPOINT=/tmp/ck swift test --filter
TrainerTests/testCheckpointHasTransformersKeysAndReloads` keeps a checkpoint written by the Swift
trainer plus its logits; `python3 tools/reference/make_training_fixtures.py --check-checkpoint /tmp/ck`
loads it with `LlavaForConditionalGeneration.from_pretrained` and compares logits and loss.

Everything runs in float32 on the CPU with eager attention, seeded, so a rerun with the same
library versions writes the same bytes. The Swift side starts from the tower's selected-layer
features (what the trainer caches), written here as `features.f32`.

Gradient names in `gradients.safetensors` are the trainable buffer's names in llava-forge:
`multi_modal_projector.*` and `language_model.*` (transformers' `model.multi_modal_projector.*` /
`model.language_model.*`; the tied lm_head has no tensor of its own, its gradient is summed into
the embedding's, as autograd does for a shared parameter).
"""
import argparse
import copy
import json
import math
import os
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
import transformers
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration,
                          get_cosine_schedule_with_warmup)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "TrainingTests", "Fixtures", "tiny_llava_train")

IMAGE_TOKEN = 299
IMAGE_SIZE, PATCH = 42, 14
IMAGE_ROWS = (IMAGE_SIZE // PATCH) ** 2  # 9 patches, CLS dropped ("default" strategy)

# Optimizer settings the Swift test replays.
STEPS = 5
LR_LLM, LR_PROJECTOR = 3e-3, 1e-2
BETAS, EPS, WEIGHT_DECAY = (0.9, 0.95), 1e-8, 0.1
WARMUP_RATIO = 0.3
MAX_GRAD_NORM = 1.0


def write_f32(name, tensor):
    array = np.ascontiguousarray(tensor.detach().cpu().numpy().astype("<f4"))
    array.tofile(os.path.join(OUT, name + ".f32"))
    return {"file": name + ".f32", "shape": list(array.shape)}


def randomize(model, seed):
    """O(1) activations (the default std-0.02 init would make every check weak); same recipe as
    make_model_fixtures.py."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "norm" in name:
                p.copy_((1 + 0.2 * noise) if name.endswith("weight") else 0.2 * noise)
            elif p.dim() == 1:
                p.copy_(0.3 * noise)
            elif "embed" in name and "patch" not in name:
                p.copy_(0.5 * noise)
            else:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(noise / np.sqrt(fan_in))


def make_float64_exact():
    """transformers' Llama upcasts to float32 inside RMSNorm and the eager softmax (and its loss
    upcasts logits), which would put float32 rounding noise into a float64 model's loss and ruin
    finite differences. For the float64 copy only, redo those two ops in the input dtype."""
    from transformers.models.llama import modeling_llama

    def rms_norm_forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))

    original_attention = modeling_llama.eager_attention_forward

    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        if query.dtype != torch.float64:
            return original_attention(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
        key = modeling_llama.repeat_kv(key, module.num_key_value_groups)
        value = modeling_llama.repeat_kv(value, module.num_key_value_groups)
        weights = torch.matmul(query, key.transpose(2, 3)) * scaling
        if attention_mask is not None:
            weights = weights + attention_mask[:, :, :, : key.shape[-2]]
        weights = torch.softmax(weights, dim=-1)
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    original_norm = modeling_llama.LlamaRMSNorm.forward

    def norm(self, hidden_states):
        if hidden_states.dtype == torch.float64:
            return rms_norm_forward(self, hidden_states)
        return original_norm(self, hidden_states)

    modeling_llama.LlamaRMSNorm.forward = norm
    modeling_llama.eager_attention_forward = attention


def our_name(hf_name):
    for prefix, ours in (("model.multi_modal_projector.", "multi_modal_projector."),
                         ("model.language_model.", "language_model."),
                         ("lm_head.", "language_model.lm_head.")):
        if hf_name.startswith(prefix):
            return ours + hf_name[len(prefix):]
    return None  # the tower


def is_no_decay(name):
    # Norm scales and biases (every 1-D tensor) get no weight decay, as LLaVA's / HF's Trainer.
    return name.endswith(".bias") or "norm" in name


def main():
    torch.set_num_threads(2)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=IMAGE_SIZE, patch_size=PATCH, layer_norm_eps=1e-5,
                              hidden_act="quick_gelu", projection_dim=32)
    # Tied embeddings, GQA (4 heads / 2 kv heads) and q/k/v/o biases: every gradient path at once.
    text = LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, attention_bias=True,
                       bos_token_id=1, eos_token_id=2)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN,
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=IMAGE_ROWS,
                         tie_word_embeddings=True)
    config._attn_implementation = "eager"
    torch.manual_seed(5)
    model = LlavaForConditionalGeneration(config)
    randomize(model, 51)
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr(), "lm_head not tied"
    model.train()  # no dropout in this config; train() only to be explicit
    model64 = copy.deepcopy(model).double()  # for the float64 finite differences, before any step
    assert model64.lm_head.weight is model64.model.language_model.embed_tokens.weight

    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    model.save_pretrained(os.path.join(OUT, "model"), safe_serialization=True)
    for extra in os.listdir(os.path.join(OUT, "model")):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(OUT, "model", extra))

    gen = torch.Generator().manual_seed(52)
    pixel_values = torch.randn((1, 3, IMAGE_SIZE, IMAGE_SIZE), generator=gen)

    def rand_ids(n):
        return torch.randint(3, 290, (n,), generator=gen).tolist()

    # Sequence A: prompt with the image expanded, then an answer + EOS (trained).
    prompt_a = [1] + rand_ids(3) + [IMAGE_TOKEN] * IMAGE_ROWS + rand_ids(2)
    answer_a = rand_ids(6) + [2]
    ids_a = prompt_a + answer_a
    labels_a = [-100] * len(prompt_a) + answer_a
    # Sequence B: text only, two trained spans (a two-turn conversation's shape).
    ids_b = [1] + rand_ids(13)
    labels_b = [-100] * 5 + ids_b[5:9] + [-100] * 2 + ids_b[11:]
    length = max(len(ids_a), len(ids_b))
    pad = length - len(ids_b)
    input_ids = torch.tensor([ids_a, ids_b + [0] * pad])
    labels = torch.tensor([labels_a, labels_b + [-100] * pad])
    attention_mask = torch.tensor([[1] * len(ids_a), [1] * len(ids_b) + [0] * pad])

    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        hidden = model.model.vision_tower(pixel_values, output_hidden_states=True).hidden_states
        features = hidden[-2][0, 1:]  # [rows, vision hidden]

    def loss_of_batch():
        return model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask, labels=labels).loss

    trainable = [(our_name(n), p) for n, p in model.named_parameters() if p.requires_grad]
    assert all(name is not None for name, _ in trainable)

    # One backward: loss and every trainable gradient.
    model.zero_grad()
    loss = loss_of_batch()
    loss.backward()
    gradients = {name: p.grad.detach().clone().contiguous() for name, p in trainable}
    save_file(gradients, os.path.join(OUT, "gradients.safetensors"), metadata={"format": "pt"})
    first_loss = float(loss.detach())

    # Float64 central differences of the same batch's loss w.r.t. the two largest-gradient entries
    # of every trainable tensor: an autograd-free reference. With the float32 upcasts removed
    # (make_float64_exact) the quotient converges: h = 1e-3…1e-6 agree to ~1e-9 relative.
    params64 = dict((our_name(n), p) for n, p in model64.named_parameters() if our_name(n))
    pixels64 = pixel_values.double()

    def loss64():
        # transformers' loss upcasts logits to float32, so the cross-entropy is done here in float64.
        logits = model64(input_ids=input_ids, pixel_values=pixels64, attention_mask=attention_mask).logits
        return float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                       labels[:, 1:].reshape(-1), ignore_index=-100))

    make_float64_exact()
    finite_differences = []
    h = 1e-4
    with torch.no_grad():
        for name, _ in trainable:
            flat = params64[name].view(-1)
            for index in gradients[name].abs().view(-1).topk(2).indices.tolist():
                original = float(flat[index])
                flat[index] = original + h
                plus = loss64()
                flat[index] = original - h
                minus = loss64()
                flat[index] = original
                finite_differences.append({"name": name, "index": index, "value": (plus - minus) / (2 * h)})

    # AdamW steps: projector / LLM learning rates, no decay on norms and biases.
    groups = {}
    for name, p in trainable:
        key = ("projector" if name.startswith("multi_modal_projector.") else "llm", is_no_decay(name))
        groups.setdefault(key, []).append(p)
    param_groups = [{"params": ps, "lr": LR_PROJECTOR if kind == "projector" else LR_LLM,
                     "weight_decay": 0.0 if no_decay else WEIGHT_DECAY} for (kind, no_decay), ps in sorted(groups.items())]
    optimizer = torch.optim.AdamW(param_groups, betas=BETAS, eps=EPS, foreach=False)
    warmup = math.ceil(STEPS * WARMUP_RATIO)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=STEPS)
    losses, norms, lrs = [], [], []
    for _ in range(STEPS):
        optimizer.zero_grad()
        step_loss = loss_of_batch()
        step_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p for _, p in trainable], MAX_GRAD_NORM)
        lrs.append(scheduler.get_last_lr())
        optimizer.step()
        scheduler.step()
        losses.append(float(step_loss))
        norms.append(float(norm))
    with torch.no_grad():
        losses.append(float(loss_of_batch()))

    case = {
        "notes": "tiny LLaVA (tied embeddings, GQA 4/2, q/k/v/o biases, mlp2x_gelu projector); batch of 2: "
                 "A with 9 image rows, B text-only right-padded (pad rows dropped on the Swift side); "
                 "loss = mean over non-masked shifted labels of the batch",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sequences": [{"input_ids": ids_a, "labels": labels_a}, {"input_ids": ids_b, "labels": labels_b}],
        "features": write_f32("features", features),
        "loss": first_loss,
        "optimizer": {"steps": STEPS, "lr_llm": LR_LLM, "lr_projector": LR_PROJECTOR, "betas": list(BETAS), "eps": EPS,
                      "weight_decay": WEIGHT_DECAY, "no_decay": "1-D tensors (norm scales, biases)",
                      "warmup_ratio": WARMUP_RATIO, "warmup_steps": warmup, "max_grad_norm": MAX_GRAD_NORM},
        "finite_differences": finite_differences,
        "step_losses": losses,
        "grad_norms": norms,
        "learning_rates": lrs,
    }
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print("loss", first_loss, "steps", losses, "norms", norms)
    print("lrs", lrs)


def check_checkpoint(folder):
    """Loads a checkpoint the Swift trainer wrote and compares transformers' logits and loss with
    the ones the Swift side stored next to it (the image rows come from the cached features)."""
    with open(os.path.join(OUT, "case.json")) as f:
        case = json.load(f)
    model = LlavaForConditionalGeneration.from_pretrained(folder, attn_implementation="eager").eval()
    features = torch.from_numpy(np.fromfile(os.path.join(OUT, case["features"]["file"]), dtype="<f4")
                                .reshape(case["features"]["shape"]))
    swift = np.fromfile(os.path.join(folder, "swift_logits.f32"), dtype="<f4")
    offset, total, counted, worst = 0, 0.0, 0, 0.0
    with torch.no_grad():
        for sequence in case["sequences"]:
            ids = torch.tensor([sequence["input_ids"]])
            image = ids == IMAGE_TOKEN
            embeds = model.get_input_embeddings()(ids.masked_fill(image, 0))
            if image.any():
                projected = model.model.multi_modal_projector(features)
                embeds[image] = projected
            logits = model(inputs_embeds=embeds).logits[0]
            ours = swift[offset:offset + logits.numel()].reshape(logits.shape)
            offset += logits.numel()
            worst = max(worst, float(np.abs(ours - logits.numpy()).max()))
            labels = torch.tensor(sequence["labels"][1:])
            mask = labels != -100
            losses = torch.nn.functional.cross_entropy(logits[:-1][mask], labels[mask], reduction="sum")
            total += float(losses)
            counted += int(mask.sum())
    with open(os.path.join(folder, "swift_loss.json")) as f:
        swift_loss = json.load(f)["loss"]
    print(f"checkpoint {folder}: transformers {transformers.__version__} loads it; logits max |diff| {worst:.3g}, "
          f"loss transformers {total / counted:.6f} vs swift {swift_loss:.6f}")
    assert worst <= 1e-4, "logits differ"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--check-checkpoint", help="a checkpoint folder written by the Swift trainer")
    arguments = parser.parse_args()
    if arguments.check_checkpoint:
        check_checkpoint(arguments.check_checkpoint)
    else:
        main()
