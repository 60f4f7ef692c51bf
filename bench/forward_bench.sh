#!/usr/bin/env bash
# Forward-throughput benchmark of the engine core (Models on OpenBLAS): one LLaVA forward of a
# 512-token prompt holding one image, release build, 2 threads, for
#   (a) a tiny random LLaVA (LM hidden 512 × 8 layers, GQA 8/4, vocab 32000; ViT 384 × 6, patch 16, 224 px)
#   (b) SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantized Float32 path) + a random ViT-B/16-sized tower
# reporting tokens/s and achieved GFLOP/s (matrix products + attention QKᵀ/AV; see
# bench/ForwardBench/main.swift) against the measured sgemm 1024³ peak. Run it once, on a quiet
# machine: it reports the load (uptime) it ran under.
#
#   bench/forward_bench.sh [MODEL.gguf]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}"
echo "== machine load before: $(uptime)"
echo "== building (release)"
swift build -c release --product ForwardBench 2>&1 | tail -1
export OPENBLAS_NUM_THREADS=2
echo "== forward throughput (2 threads)"
.build/release/ForwardBench "$MODEL" | tee /tmp/llava_forge_forward_bench.jsonl
echo "== machine load after: $(uptime)"
