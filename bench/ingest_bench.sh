#!/usr/bin/env bash
# Ingest benchmark: pycocotools COCO() loads vs `llava-forge ingest` + `llava-forge context`
# on synthetic COCO train2017-sized JSON. See bench/README.md.
#
#   bash bench/ingest_bench.sh                 # full size (118,287 images; ~560 MB of JSON)
#   SCALE=0.1 bash bench/ingest_bench.sh       # 10% data, quick
#   RUNS=3 bash bench/ingest_bench.sh          # median of 3 runs per step
#   SKIP_PYCOCO=1 / SKIP_FORGE=1               # leave one side out
#   REGEN=1                                    # regenerate the synthetic JSON
#   DATA_DIR=/elsewhere/bench/out              # use JSON generated there (never regenerated)
#   WORK_DIR=/tmp/x                            # where bench.db and contexts.jsonl go (default: out/)
#
# Every measured step runs in its own fresh process under /usr/bin/time -v (wall time
# measured around it with nanosecond clock, peak RSS from time's "Maximum resident set size").
# Results: bench/out/ingest_results.md (also printed); raw logs: bench/out/*.log, *.time.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
OUT="$HERE/out"
SCALE="${SCALE:-1.0}"
SEED="${SEED:-2017}"
RUNS="${RUNS:-1}"
BIN="${LLAVA_FORGE_BIN:-$ROOT/.build/release/llava-forge}"
DATA="${DATA_DIR:-$OUT}"
WORK="${WORK_DIR:-$OUT}"
CAP="$DATA/captions_train2017.json"
INST="$DATA/instances_train2017.json"
DB="$WORK/bench.db"
CTX="$WORK/contexts.jsonl"
RESULTS="$OUT/results.tsv"

mkdir -p "$OUT" "$WORK"
log() { printf '[ingest_bench] %s\n' "$*" >&2; }

# --- dependencies -------------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    log "installing GNU time (Debian package 'time')"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi
if ! python3 -c 'import pycocotools.coco' 2>/dev/null; then
    log "installing pycocotools"
    python3 -m pip install -q pycocotools
fi

# --- data ----------------------------------------------------------------------------------
META="$DATA/synthetic.meta"
WANT_META="scale=$SCALE seed=$SEED generator=$(sha1sum "$HERE/make_synthetic_coco.py" | cut -c1-12)"
if [ -n "${REGEN:-}" ] || [ ! -s "$CAP" ] || [ ! -s "$INST" ] || [ "$(cat "$META" 2>/dev/null)" != "$WANT_META" ]; then
    if [ -n "${DATA_DIR:-}" ]; then
        log "DATA_DIR=$DATA_DIR does not hold the synthetic COCO for $WANT_META (not regenerating someone else's data)"
        exit 1
    fi
    log "generating synthetic COCO ($WANT_META)"
    python3 "$HERE/make_synthetic_coco.py" --scale "$SCALE" --seed "$SEED" --out-dir "$OUT"
    echo "$WANT_META" > "$META"
fi
CAP_BYTES=$(stat -c %s "$CAP")
INST_BYTES=$(stat -c %s "$INST")
BOTH_BYTES=$((CAP_BYTES + INST_BYTES))

# --- measurement ---------------------------------------------------------------------------
printf 'step\trun\twall_s\tpeak_rss_kib\tinput_bytes\tstatus\n' > "$RESULTS"

# measure NAME RUN INPUT_BYTES CMD...: one fresh process, appends a row to $RESULTS
measure() {
    local name=$1 run=$2 input=$3; shift 3
    local tfile="$OUT/$name.$run.time" lfile="$OUT/$name.$run.log" status=ok t0 t1 wall rss
    t0=$(date +%s%N)
    if ! /usr/bin/time -v -o "$tfile" "$@" >"$lfile" 2>&1; then status=failed; fi
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tfile" 2>/dev/null || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$wall" "${rss:-0}" "$input" "$status" >> "$RESULTS"
    log "$name (run $run): ${wall} s, peak RSS ${rss:-?} KiB, $status"
    if [ "$status" != ok ]; then tail -n 5 "$lfile" | sed 's/^/    /' >&2; return 1; fi
}

if [ -z "${SKIP_PYCOCO:-}" ]; then
    for run in $(seq 1 "$RUNS"); do
        measure pycoco_captions "$run" "$CAP_BYTES" python3 "$HERE/pycoco_load.py" "$CAP" || true
        measure pycoco_instances "$run" "$INST_BYTES" python3 "$HERE/pycoco_load.py" "$INST" || true
        measure pycoco_both "$run" "$BOTH_BYTES" python3 "$HERE/pycoco_load.py" "$CAP" "$INST" || true
    done
fi

FORGE_NOTE=""
if [ -z "${SKIP_FORGE:-}" ]; then
    if [ ! -x "$BIN" ] && [ -z "${LLAVA_FORGE_BIN:-}" ]; then
        log "building llava-forge (swift build -c release --product llava-forge)"
        if ! (cd "$ROOT" && swift build -c release --product llava-forge) > "$OUT/swift_build.log" 2>&1; then
            log "swift build failed; see $OUT/swift_build.log"
        fi
    fi
    if [ -x "$BIN" ]; then
        for run in $(seq 1 "$RUNS"); do
            rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal" "$CTX"
            if measure forge_ingest "$run" "$BOTH_BYTES" \
                "$BIN" ingest --captions "$CAP" --instances "$INST" --db "$DB"; then
                measure forge_context "$run" "$BOTH_BYTES" \
                    "$BIN" context --db "$DB" --all --type detail --out "$CTX" || true
            fi
        done
        if [ -s "$CTX" ]; then
            FORGE_NOTE="contexts.jsonl: $(wc -l < "$CTX") lines, $(stat -c %s "$CTX") bytes; bench.db: $(stat -c %s "$DB") bytes"
        fi
    else
        FORGE_NOTE="llava-forge binary not available at $BIN: llava-forge rows skipped"
        log "$FORGE_NOTE"
    fi
fi

# --- report --------------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT/ingest_results.md" "$CAP_BYTES" "$INST_BYTES" "$SCALE" "$FORGE_NOTE" "$BIN" <<'PY'
import csv, os, platform, statistics, subprocess, sys, time

results, md_path, cap_b, inst_b, scale, forge_note, binary = sys.argv[1:8]
cap_b, inst_b = int(cap_b), int(inst_b)
rows = list(csv.DictReader(open(results), delimiter="\t"))
MiB = 2 ** 20

def agg(step):
    rs = [r for r in rows if r["step"] == step]
    if not rs:
        return None
    ok = [r for r in rs if r["status"] == "ok"]
    if not ok:
        return {"status": "failed", "runs": len(rs)}
    return {"status": "ok", "runs": len(ok),
            "wall": statistics.median(float(r["wall_s"]) for r in ok),
            "rss": statistics.median(int(r["peak_rss_kib"]) for r in ok) * 1024,
            "input": int(ok[0]["input_bytes"])}

labels = [
    ("pycoco_captions", "pycocotools COCO(captions)", "captions JSON"),
    ("pycoco_instances", "pycocotools COCO(instances)", "instances JSON"),
    ("pycoco_both", "pycocotools COCO(captions) + COCO(instances), one process", "both JSON"),
    ("forge_ingest", "llava-forge ingest (fresh db)", "both JSON"),
    ("forge_context", "llava-forge context --all --type detail", "both JSON"),
]
stats = {k: agg(k) for k, _, _ in labels}

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
    except Exception:
        return "n/a"

lines = []
lines.append("# Ingest benchmark results")
lines.append("")
lines.append(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; machine: {platform.machine()}, "
             f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM")
lines.append(f"- data: synthetic COCO train2017 shape, scale {scale}: captions {cap_b:,} bytes "
             f"({cap_b / MiB:.1f} MiB), instances {inst_b:,} bytes ({inst_b / MiB:.1f} MiB)")
pycoco_version = version([sys.executable, "-c", "import importlib.metadata as m; print(m.version('pycocotools'))"])
swift_version = version(["swift", "--version"])
lines.append(f"- python {platform.python_version()}, pycocotools {pycoco_version}; swift: {swift_version}")
lines.append("- each step: fresh process, wall time (median of runs), peak RSS from /usr/bin/time -v; "
             "JSON files are in the page cache (warm) for every step")
lines.append("")
lines.append("| step | runs | time (s) | peak RSS (MiB) | RSS / JSON size | JSON measured against |")
lines.append("|---|---:|---:|---:|---:|---|")
for key, label, against in labels:
    s = stats[key]
    if s is None:
        lines.append(f"| {label} | 0 | — | — | — | not run |")
    elif s["status"] != "ok":
        lines.append(f"| {label} | {s['runs']} | failed | — | — | see bench/out/{key}.*.log |")
    else:
        lines.append(f"| {label} | {s['runs']} | {s['wall']:.2f} | {s['rss'] / MiB:.0f} | "
                     f"{s['rss'] / s['input']:.2f}x | {against} ({s['input'] / MiB:.1f} MiB) |")

pb, fi, fc = stats["pycoco_both"], stats["forge_ingest"], stats["forge_context"]
lines.append("")
lines.append("Side by side (captions + instances):")
lines.append("")
lines.append("| | pycocotools (COCO x2, one process) | llava-forge ingest | llava-forge ingest + context |")
lines.append("|---|---:|---:|---:|")
def cell(s, f):
    return f(s) if s and s.get("status") == "ok" else "—"
both_forge = (fi and fi.get("status") == "ok" and fc and fc.get("status") == "ok")
lines.append("| time (s) | %s | %s | %s |" % (
    cell(pb, lambda s: f"{s['wall']:.2f}"), cell(fi, lambda s: f"{s['wall']:.2f}"),
    f"{fi['wall'] + fc['wall']:.2f}" if both_forge else "—"))
lines.append("| peak RSS (MiB) | %s | %s | %s |" % (
    cell(pb, lambda s: f"{s['rss'] / MiB:.0f}"), cell(fi, lambda s: f"{s['rss'] / MiB:.0f}"),
    f"{max(fi['rss'], fc['rss']) / MiB:.0f}" if both_forge else "—"))
lines.append("| RSS / JSON size | %s | %s | %s |" % (
    cell(pb, lambda s: f"{s['rss'] / s['input']:.2f}x"), cell(fi, lambda s: f"{s['rss'] / s['input']:.2f}x"),
    f"{max(fi['rss'], fc['rss']) / fi['input']:.2f}x" if both_forge else "—"))
ok = lambda s: s and s.get("status") == "ok"
if ok(pb) and ok(fi):
    lines.append("| pycocotools_time / llava_forge_time | 1.00 | %.2f | %s |" % (
        pb["wall"] / fi["wall"], f"{pb['wall'] / (fi['wall'] + fc['wall']):.2f}" if both_forge else "—"))
else:
    lines.append("| pycocotools_time / llava_forge_time | — | — | — |")
import glob, re
loads = []
for path in sorted(glob.glob(os.path.join(os.path.dirname(results), "pycoco_both.*.log"))):
    loads.append(sum(float(x) for x in re.findall(r"annotations, \d+ categories in ([0-9.]+) s", open(path).read())))
if loads and ok(pb):
    lines.append("")
    lines.append(f"pycocotools time inside the process (json.load + createIndex, both files): "
                 f"{statistics.median(loads):.2f} s; the rest of its wall time is interpreter start-up "
                 f"and freeing the Python objects at exit.")
if forge_note:
    lines.append("")
    lines.append(f"Note: {forge_note}")
text = "\n".join(lines) + "\n"
open(md_path, "w").write(text)
print(text)
PY
