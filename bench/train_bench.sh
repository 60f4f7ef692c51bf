#!/usr/bin/env bash
# Training throughput, llava-forge vs PyTorch, side by side on this machine: 2 threads, fp32,
# random weights, the same LLaVA shapes and sequences on both sides (bench/TrainBench/main.swift,
# bench/train_bench.py):
#   tiny  — 59M trainable LLaMA-style LM (hidden 512 × 8 layers, 32k untied vocabulary) + mlp2x
#           projector, frozen 11M ViT (384 × 6, patch 16, 224 px); batch 4 × 512 tokens
#   smol  — SmolLM2-135M's shape (576 × 30, GQA 9/3, tied 49k vocabulary) + frozen ViT-B/16-sized
#           tower (86M); batch 1 × 512 tokens
# A step = frozen tower forward of each sequence's image, projector + LM forward, loss on the
# text after the image, backward, clip_grad_norm 1.0, AdamW. Each side runs in its own process
# (peak RSS = that process's ru_maxrss); the order alternates every repetition, and the summary
# gives medians, the spread (min–max) and the ratios. The machine is shared: read the load line.
#
#   bench/train_bench.sh                         # REPEAT=2 STEPS=3 WARMUP=1 CONFIGS="tiny smol"
#   REPEAT=3 CONFIGS=tiny bench/train_bench.sh
#   SKIP_BUILD=1 PROFILE=1 bench/train_bench.sh  # + per-op / per-sgemm-shape time of our steps
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT="${REPEAT:-2}"
CONFIGS="${CONFIGS:-tiny smol}"
STEPS="${STEPS:-3}"
WARMUP="${WARMUP:-1}"
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
mkdir -p bench/out
out="bench/out/train_bench.jsonl"
: > "$out"
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -z "${SKIP_BUILD:-}" ]]; then
    echo "== building TrainBench (release)"
    swift build -c release --product TrainBench 2>&1 | tail -1
fi
bin=".build/release/TrainBench"
profile=()
[[ -n "${PROFILE:-}" ]] && profile=(--profile)
have_torch=1
if ! python3 -c "import torch, transformers" 2>/dev/null; then
    have_torch=0
    echo "== PyTorch or transformers is not installed: the PyTorch side is skipped (pip install torch transformers to compare)"
fi
for rep in $(seq 1 "$REPEAT"); do
    for config in $CONFIGS; do
        if (( rep % 2 == 1 )); then order="ours torch"; else order="torch ours"; fi
        for side in $order; do
            echo "== repetition $rep, $config, $side (load $(cut -d' ' -f1 /proc/loadavg))"
            if [[ $side == ours ]]; then
                "$bin" --config "$config" --steps "$STEPS" --warmup "$WARMUP" "${profile[@]}" | tee -a "$out"
            elif (( have_torch )); then
                python3 bench/train_bench.py --config "$config" --steps "$STEPS" --warmup "$WARMUP" | tee -a "$out"
            fi
        done
    done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 bench/train_bench_summary.py "$out"
