#!/usr/bin/env bash
# The main job on the embedded default: seeds/ (real photos, our COCO captions and boxes)
# → SQLite → symbolic contexts → (LLM) samples of the three types → LLaVA JSON export.
#
# The LLM: any OpenAI-compatible server. Set LLAVA_FORGE_BASE_URL (e.g. http://127.0.0.1:8080/v1
# or https://api.openai.com/v1), LLAVA_FORGE_MODEL, and OPENAI_API_KEY if the server wants one.
# Without them the run stops after the contexts and says what to set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product llava-forge
BIN=.build/release/llava-forge
OUT=${LLAVA_FORGE_OUT:-out/demo}
mkdir -p "$OUT"
DB="$OUT/demo.db"

$BIN ingest --captions seeds/coco/captions_seeds.json --instances seeds/coco/instances_seeds.json \
  --images seeds/images --db "$DB"
$BIN context --db "$DB" --all --type detail --out "$OUT/contexts_detail.jsonl"
FIRST=$(python3 -c "import json;print(json.load(open('seeds/coco/captions_seeds.json'))['images'][0]['id'])" 2>/dev/null || echo 1)
for t in conversation detail; do
  echo "--- symbolic context of image $FIRST for $t ---"
  $BIN context --db "$DB" --image-id "$FIRST" --type "$t"
done

BASE_URL=${LLAVA_FORGE_BASE_URL:-${OPENAI_BASE_URL:-}}
if [[ -z "$BASE_URL" || -z "${LLAVA_FORGE_MODEL:-}" ]]; then
  cat >&2 <<MSG

Stopped after the contexts: no LLM is configured.
To generate samples, point llava-forge at any OpenAI-compatible server and rerun:
  export LLAVA_FORGE_BASE_URL=http://127.0.0.1:8080/v1   # vLLM, Ollama, llama.cpp, or https://api.openai.com/v1
  export LLAVA_FORGE_MODEL=<model name>
  export OPENAI_API_KEY=<key>                            # only if the server needs one
  bash scripts/demo.sh
MSG
  exit 0
fi

N=$(python3 -c "import json;print(len(json.load(open('seeds/coco/captions_seeds.json'))['images']))" 2>/dev/null || echo 12)
for t in conversation detail reasoning; do
  $BIN generate --db "$DB" --type "$t" --limit "$N" --concurrency "${LLAVA_FORGE_CONCURRENCY:-4}"
done
$BIN export --db "$DB" --out-dir "$OUT/export"
$BIN stats --db "$DB"
$BIN inspect --db "$DB" --type conversation --limit 1
