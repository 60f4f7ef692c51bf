#!/usr/bin/env bash
# The main job on the embedded default: `llava-forge run pipelines/demo.yaml` over seeds/ (real
# photos, our COCO captions and boxes): ingest → contexts → sample-images → generate ×3 → parse →
# filter → dedup → LLaVA JSON in out/demo/export/. A second run does nothing and says so.
#
# The LLM: any OpenAI-compatible server. Set LLAVA_FORGE_BASE_URL (e.g. http://127.0.0.1:8080/v1
# or https://api.openai.com/v1), LLAVA_FORGE_MODEL, and OPENAI_API_KEY if the server wants one.
# Without them the stages before generation run, an image's symbolic contexts are printed, and the
# script says what to set (our own offline model server is the next milestone).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product llava-forge
BIN=.build/release/llava-forge
PIPELINE=pipelines/demo.yaml
DB=out/demo/demo.db

BASE_URL=${LLAVA_FORGE_BASE_URL:-}
if [[ -z "$BASE_URL" || -z "${LLAVA_FORGE_MODEL:-}" ]]; then
  for stage in ingest contexts sample-images; do
    $BIN run "$PIPELINE" --only "$stage"
  done
  FIRST=$(python3 -c "import json;print(json.load(open('seeds/coco/captions_seeds.json'))['images'][0]['id'])" 2>/dev/null || echo 1)
  for t in conversation detail; do
    echo "--- symbolic context of image $FIRST for $t (what the LLM sees) ---"
    $BIN context --db "$DB" --image-id "$FIRST" --type "$t"
  done
  cat >&2 <<MSG

Stopped before generation: no LLM is configured.
To generate samples, point llava-forge at any OpenAI-compatible server and rerun:
  export LLAVA_FORGE_BASE_URL=http://127.0.0.1:8080/v1   # vLLM, Ollama, llama.cpp, or https://api.openai.com/v1
  export LLAVA_FORGE_MODEL=<model name>
  export OPENAI_API_KEY=<key>                            # only if the server needs one
  bash scripts/demo.sh
MSG
  exit 0
fi

$BIN run "$PIPELINE"
$BIN stats --db "$DB"
$BIN inspect --db "$DB" --type conversation --limit 1
