#!/usr/bin/env bash
# The main job on the embedded default: `llava-forge run pipelines/demo.yaml` over seeds/ (real
# photos, our COCO captions and boxes): ingest → contexts → sample-images → generate ×3 → parse →
# filter → dedup → LLaVA JSON in out/demo/export/. A second run does nothing and says so.
#
# The LLM: with LLAVA_FORGE_BASE_URL (e.g. http://127.0.0.1:8080/v1 or https://api.openai.com/v1),
# LLAVA_FORGE_MODEL and, if the server wants one, OPENAI_API_KEY, any OpenAI-compatible server.
# Without them, offline: SmolLM2-135M-Instruct (GGUF, ~98 MB from its PyPI wheel) served by our own
# `llava-forge serve` on 127.0.0.1, which the generate stages start and stop themselves. A 135M
# model writes weak samples — this shows the machinery; real data needs a capable model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product llava-forge
BIN=.build/release/llava-forge
PIPELINE=pipelines/demo.yaml
DB=out/demo/demo.db

if [[ -z "${LLAVA_FORGE_BASE_URL:-}" || -z "${LLAVA_FORGE_MODEL:-}" ]]; then
  unset LLAVA_FORGE_BASE_URL LLAVA_FORGE_MODEL
  bash scripts/fetch_model.sh
  echo "demo: no LLAVA_FORGE_BASE_URL/LLAVA_FORGE_MODEL: generating offline with SmolLM2-135M-Instruct (weak content; use a capable model for real data)" >&2
fi

# The generate stages find the server executable through this (the pipeline runs in this binary anyway).
export LLAVA_FORGE_EXECUTABLE="$PWD/$BIN"
$BIN run "$PIPELINE"
$BIN stats --db "$DB"
for t in conversation detail reasoning; do
  $BIN inspect --db "$DB" --type "$t" --limit 1
done
