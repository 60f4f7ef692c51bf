#!/usr/bin/env bash
# Generation at scale (issue 3): end-to-end `llava-forge generate` (call + parse + store, release
# build) against forge-mock, the test suite's loopback mock run as a process (bench/forge-mock,
# 127.0.0.1 only, thread per keep-alive connection).
#
#   bench/generation_bench.sh [quick|full] [scenario...]
#     scenarios: zero  (zero latency, goal ≥ 2,000 req/s)
#                lat200 (200 ms latency, concurrency 64, goal ≥ 95 % of 320 req/s)
#                limited (mock enforcing 600 RPM / 200K TPM with headers, goal ≥ 95 % of the
#                         binding limit, < 1 % answered 429)
#                mix   (LLaVA-158K mix 58K/23K/77K at 50 ms latency, goal ≤ 10 min, 0 lost,
#                       0 duplicated; `quick` runs it at 1/10 scale and says so)
#   default: quick, all scenarios.
#
# Req/s is reported for the sending phase (first request out → last result committed) and for
# the whole command (planning + journal + sending). Prints one summary block per scenario.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-quick}
shift || true
SCENARIOS=${*:-zero lat200 limited mix}
case "$MODE" in
  quick) SCALE=10; IMAGES=8000; ZERO_N=20000; LAT_N=3200; LIMITED_N=150 ;;
  full)  SCALE=1;  IMAGES=80000; ZERO_N=40000; LAT_N=6400; LIMITED_N=300 ;;
  *) echo "usage: $0 [quick|full] [zero lat200 limited mix]" >&2; exit 64 ;;
esac

cd "$ROOT"
# BIN / MOCK override the binaries (e.g. a saved "before" build for a side-by-side run).
if [ -z "${BIN:-}" ]; then
  swift build -c release --product llava-forge >/dev/null
  swift build -c release --product forge-mock >/dev/null
fi
BIN=${BIN:-"$ROOT/.build/release/llava-forge"}
MOCK=${MOCK:-"$ROOT/.build/release/forge-mock"}
WORK=$(mktemp -d /tmp/genbench.XXXXXX)
MOCK_PID=""
cleanup() { [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# A synthetic COCO set of $IMAGES images (5 captions, 3–8 boxes each), ingested once.
python3 - "$WORK" "$IMAGES" <<'PY'
import json, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
cats = [{"id": i + 1, "name": name} for i, name in enumerate(
    ["person", "dog", "cat", "car", "bicycle", "chair", "cup", "bench", "umbrella", "kite"])]
images, caps, boxes = [], [], []
for i in range(1, n + 1):
    images.append({"id": i, "file_name": "%012d.jpg" % i, "width": 640, "height": 480})
    for k in range(5):
        caps.append({"id": i * 10 + k, "image_id": i, "caption": "A %s next to a %s in picture %d, view %d." % (
            rng.choice(cats)["name"], rng.choice(cats)["name"], i, k)})
    for k in range(rng.randint(3, 8)):
        x, y = rng.uniform(0, 500), rng.uniform(0, 380)
        boxes.append({"id": i * 10 + k, "image_id": i, "category_id": rng.randint(1, 10),
                      "bbox": [round(x, 2), round(y, 2), round(rng.uniform(5, 140), 2), round(rng.uniform(5, 100), 2)],
                      "iscrowd": 0, "area": 100.0})
json.dump({"images": images, "annotations": caps}, open(out + "/captions.json", "w"))
json.dump({"images": images, "annotations": boxes, "categories": cats}, open(out + "/instances.json", "w"))
PY
"$BIN" ingest --captions "$WORK/captions.json" --instances "$WORK/instances.json" --db "$WORK/base.db" >/dev/null

fresh_db() { rm -f "$WORK/run.db"*; cp "$WORK/base.db" "$WORK/run.db"; [ -f "$WORK/base.db-wal" ] && cp "$WORK/base.db-wal" "$WORK/run.db-wal"; true; }

start_mock() {  # args: forge-mock options
  # The mock exits when its stdin closes: hold a fifo's write end open on fd 7 (a `sleep |`
  # pipeline would leave `wait` hanging on the sleep after the mock is killed).
  rm -f "$WORK/mock.hold"; mkfifo "$WORK/mock.hold"
  "$MOCK" "$@" <"$WORK/mock.hold" >"$WORK/mock.out" 2>"$WORK/mock.err" &
  MOCK_PID=$!
  exec 7>"$WORK/mock.hold"
  for _ in $(seq 100); do grep -q listening "$WORK/mock.out" 2>/dev/null && break; sleep 0.05; done
  BASE_URL=$(awk '{print $2}' "$WORK/mock.out")
}
mock_cpu() {  # CPU seconds (user+system) the mock has used so far
  awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$MOCK_PID/stat" 2>/dev/null || echo "?"
}
stop_mock() { echo "mock     CPU $(mock_cpu) s (user+system)"; exec 7>&-; kill "$MOCK_PID" 2>/dev/null || true; wait "$MOCK_PID" 2>/dev/null || true; MOCK_PID=""; cat "$WORK/mock.err"; }

generate() {  # args: type limit concurrency [extra...]; prints the summary JSON path
  local type=$1 limit=$2 conc=$3; shift 3
  perf stat -x, -e task-clock -o "$WORK/$type.cpu" -- "$BIN" generate --db "$WORK/run.db" --type "$type" --limit "$limit" --base-url "$BASE_URL" --model gpt-4o-mini \
    --concurrency "$conc" --progress-interval 10 --json "$@" >"$WORK/$type.json" 2>>"$WORK/progress.log"
}

report() {  # args: label json
  python3 - "$@" <<'PY'
import json, os, sys
label, path = sys.argv[1], sys.argv[2]
s = json.load(open(path))
cpu_path = path[:-len(".json")] + ".cpu"
for line in open(cpu_path) if os.path.exists(cpu_path) else []:
    if "task-clock" in line:
        ms = float(line.split(",")[0])
        print("%-8s client CPU %.2f s (user+system) = %.3f ms CPU per request" % (label, ms / 1000, ms / max(1, s["sent"])))
send = max(s["sendSeconds"], 1e-9)
print("%-8s %-12s sent %6d in %7.2f s send phase = %7.1f req/s (whole command %.2f s = %.1f req/s); ok %d, truncated %d, parse failed %d, failed %d, 429s %d, errors %s"
      % (label, s["type"], s["sent"], send, s["sent"] / send, s["seconds"], s["sent"] / max(s["seconds"], 1e-9),
         s["samplesOK"], s["truncated"], s["parseFailed"], s["failed"], s["http429"], s["errorsByClass"]))
PY
}

echo "mode $MODE: $IMAGES images, machine $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), binary $BIN"
for scenario in $SCENARIOS; do
  case "$scenario" in
    zero)
      fresh_db; start_mock --latency-ms 0
      generate conversation "$ZERO_N" 32
      report zero "$WORK/conversation.json"; stop_mock ;;
    lat200)
      fresh_db; start_mock --latency-ms 200
      generate conversation "$LAT_N" 64
      report lat200 "$WORK/conversation.json"
      python3 -c "import json;s=json.load(open('$WORK/conversation.json'));r=s['sent']/s['sendSeconds'];print('lat200   %.1f req/s = %.1f %% of the ideal 320 req/s' % (r, r/3.2))"
      stop_mock ;;
    limited)
      fresh_db; start_mock --latency-ms 20 --rpm 600 --tpm 200000
      generate conversation "$LIMITED_N" 32
      report limited "$WORK/conversation.json"
      python3 - "$WORK/conversation.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
minutes = s["sendSeconds"] / 60
rpm = s["sent"] / minutes
tpm = (s["promptTokens"] + s["completionTokens"]) / minutes
binding = max(rpm / 600, tpm / 200000)
print("limited  achieved %.0f RPM (%.1f %% of 600), %.0f TPM (%.1f %% of 200K): %.1f %% of the binding limit; 429s %d of %d attempts = %.2f %%"
      % (rpm, rpm / 6, tpm, tpm / 2000, binding * 100, s["http429"], s["attempts"], 100 * s["http429"] / max(1, s["attempts"])))
PY
      stop_mock ;;
    mix)
      fresh_db; start_mock --latency-ms 50
      conv=$((58000 / SCALE)); detail=$((23000 / SCALE)); reason=$((77000 / SCALE))
      t0=$(date +%s.%N)
      generate conversation "$conv" 64; report mix "$WORK/conversation.json"
      generate detail "$detail" 64; report mix "$WORK/detail.json"
      generate reasoning "$reason" 64; report mix "$WORK/reasoning.json"
      t1=$(date +%s.%N)
      stop_mock
      python3 - "$WORK/run.db" "$conv" "$detail" "$reason" "$t0" "$t1" "$SCALE" <<'PY'
import sqlite3, sys
db, conv, detail, reason, t0, t1, scale = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
c = sqlite3.connect(db)
want = {"conversation": conv, "detail": detail, "reasoning": reason}
lost = dup = 0
for t, n in want.items():
    have = c.execute("SELECT count(*), count(DISTINCT image_id) FROM samples WHERE type = ?", (t,)).fetchone()
    lost += max(0, n - have[1]); dup += have[0] - have[1]
reqs = c.execute("SELECT count(*), count(DISTINCT cache_key) FROM requests").fetchone()
ok = c.execute("PRAGMA integrity_check").fetchone()[0]
total = sum(want.values())
print("mix      %d samples (scale 1/%d of 158K) in %.1f s (goal ≤ 600 s at full scale): lost %d, duplicated %d, requests %d (distinct keys %d), integrity %s"
      % (total, scale, t1 - t0, lost, dup, reqs[0], reqs[1], ok))
PY
      ;;
    *) echo "unknown scenario $scenario" >&2; exit 64 ;;
  esac
done
