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
#   PYCOCO_STEPS=both                          # which pycocotools rows (default: captions instances both)
#   BASELINE_BIN=/path/to/older/llava-forge    # also measure another build, same runs ("before" rows)
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
PYCOCO_STEPS="${PYCOCO_STEPS:-captions instances both}"
BASELINE_BIN="${BASELINE_BIN:-}"

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
printf 'step\trun\twall_s\tpeak_rss_kib\tinput_bytes\tstatus\tcpu_s\n' > "$RESULTS"

# measure NAME RUN INPUT_BYTES CMD...: one fresh process, appends a row to $RESULTS
measure() {
    local name=$1 run=$2 input=$3; shift 3
    local tfile="$OUT/$name.$run.time" lfile="$OUT/$name.$run.log" status=ok t0 t1 wall rss
    t0=$(date +%s%N)
    if ! /usr/bin/time -v -o "$tfile" "$@" >"$lfile" 2>&1; then status=failed; fi
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tfile" 2>/dev/null || true)
    cpu=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$tfile" 2>/dev/null || true)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$wall" "${rss:-0}" "$input" "$status" "${cpu:-0}" >> "$RESULTS"
    log "$name (run $run): ${wall} s, cpu ${cpu:-?} s, peak RSS ${rss:-?} KiB, $status"
    if [ "$status" != ok ]; then tail -n 5 "$lfile" | sed 's/^/    /' >&2; return 1; fi
}

# One loop over runs, every side measured in each run, so load changes on a shared machine
# hit pycocotools and llava-forge alike.
FORGE_NOTE=""
HAVE_FORGE=""
if [ -z "${SKIP_FORGE:-}" ]; then
    if [ ! -x "$BIN" ] && [ -z "${LLAVA_FORGE_BIN:-}" ]; then
        log "building llava-forge (swift build -c release --product llava-forge)"
        if ! (cd "$ROOT" && swift build -c release --product llava-forge) > "$OUT/swift_build.log" 2>&1; then
            log "swift build failed; see $OUT/swift_build.log"
        fi
    fi
    if [ -x "$BIN" ]; then
        HAVE_FORGE=1
    else
        FORGE_NOTE="llava-forge binary not available at $BIN: llava-forge rows skipped"
        log "$FORGE_NOTE"
    fi
fi
if [ -n "$BASELINE_BIN" ] && [ ! -x "$BASELINE_BIN" ]; then
    log "BASELINE_BIN=$BASELINE_BIN is not executable"; exit 1
fi
# Does the binary know `ingest --timings` (per-phase times on stderr)?
TIMINGS_FLAG=()
if [ -n "$HAVE_FORGE" ] && "$BIN" ingest --help 2>/dev/null | grep -q -- '--timings'; then TIMINGS_FLAG=(--timings); fi

# forge_pair STEP_PREFIX BINARY RUN EXTRA...: fresh-db ingest, then context --all
forge_pair() {
    local prefix=$1 bin=$2 run=$3; shift 3
    rm -f "$DB" "$DB-wal" "$DB-shm" "$DB-journal" "$CTX"
    if measure "${prefix}_ingest" "$run" "$BOTH_BYTES" \
        "$bin" ingest --captions "$CAP" --instances "$INST" --db "$DB" "$@"; then
        measure "${prefix}_context" "$run" "$BOTH_BYTES" \
            "$bin" context --db "$DB" --all --type detail --out "$CTX" || true
    fi
}

for run in $(seq 1 "$RUNS"); do
    if [ -z "${SKIP_PYCOCO:-}" ]; then
        for step in $PYCOCO_STEPS; do
            case "$step" in
                captions) measure pycoco_captions "$run" "$CAP_BYTES" python3 "$HERE/pycoco_load.py" "$CAP" || true ;;
                instances) measure pycoco_instances "$run" "$INST_BYTES" python3 "$HERE/pycoco_load.py" "$INST" || true ;;
                both) measure pycoco_both "$run" "$BOTH_BYTES" python3 "$HERE/pycoco_load.py" "$CAP" "$INST" || true ;;
            esac
        done
    fi
    if [ -n "$HAVE_FORGE" ]; then
        forge_pair forge "$BIN" "$run" "${TIMINGS_FLAG[@]}"
        if [ -s "$CTX" ]; then
            FORGE_NOTE="contexts.jsonl: $(wc -l < "$CTX") lines, $(stat -c %s "$CTX") bytes, sha1 $(sha1sum "$CTX" | cut -c1-12); bench.db: $(stat -c %s "$DB") bytes"
        fi
    fi
    if [ -n "$BASELINE_BIN" ]; then
        forge_pair base "$BASELINE_BIN" "$run"
        if [ -s "$CTX" ]; then
            FORGE_NOTE="$FORGE_NOTE; baseline contexts.jsonl sha1 $(sha1sum "$CTX" | cut -c1-12)"
        fi
    fi
done

# --- report --------------------------------------------------------------------------------
python3 - "$RESULTS" "$OUT/ingest_results.md" "$CAP_BYTES" "$INST_BYTES" "$SCALE" "$FORGE_NOTE" "$BIN" "$OUT" <<'PY'
import csv, glob, os, platform, re, statistics, subprocess, sys, time

results, md_path, cap_b, inst_b, scale, forge_note, binary, out_dir = sys.argv[1:9]
cap_b, inst_b = int(cap_b), int(inst_b)
rows = list(csv.DictReader(open(results), delimiter="\t"))
MiB = 2 ** 20
ok = lambda s: bool(s) and s.get("status") == "ok"

def agg(step):
    rs = [r for r in rows if r["step"] == step]
    if not rs:
        return None
    good = [r for r in rs if r["status"] == "ok"]
    if not good:
        return {"status": "failed", "runs": len(rs)}
    walls = [float(r["wall_s"]) for r in good]
    return {"status": "ok", "runs": len(good), "walls": walls, "wall": statistics.median(walls),
            "cpu": statistics.median(float(r["cpu_s"]) for r in good),
            "by_run": {r["run"]: float(r["wall_s"]) for r in good},
            "rss": statistics.median(int(r["peak_rss_kib"]) for r in good) * 1024,
            "input": int(good[0]["input_bytes"])}

labels = [
    ("pycoco_captions", "pycocotools COCO(captions)", "captions JSON"),
    ("pycoco_instances", "pycocotools COCO(instances)", "instances JSON"),
    ("pycoco_both", "pycocotools COCO(captions) + COCO(instances), one process", "both JSON"),
    ("forge_ingest", "llava-forge ingest (fresh db)", "both JSON"),
    ("forge_context", "llava-forge context --all --type detail", "both JSON"),
    ("base_ingest", "baseline llava-forge ingest (fresh db)", "both JSON"),
    ("base_context", "baseline llava-forge context --all --type detail", "both JSON"),
]
stats = {k: agg(k) for k, _, _ in labels}

# Time inside COCO() (json.load + createIndex, both files) per run, from pycoco_both's log.
# Only the runs of this invocation (results.tsv), not logs left by an earlier one.
this_run = lambda step: {r["run"] for r in rows if r["step"] == step and r["status"] == "ok"}
inside = {}
for path in sorted(glob.glob(os.path.join(out_dir, "pycoco_both.*.log"))):
    run = path.rsplit(".", 2)[1]
    if run not in this_run("pycoco_both"):
        continue
    found = [float(x) for x in re.findall(r"annotations, \d+ categories in ([0-9.]+) s", open(path).read())]
    if len(found) == 2:
        inside[run] = sum(found)

def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[0]
    except Exception:
        return "n/a"

def spread(v):
    return f"{min(v):.2f}–{max(v):.2f}" if len(v) > 1 else "—"

lines = ["# Ingest benchmark results", ""]
lines.append(f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; machine: {platform.machine()}, "
             f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
             f"load average at the end {os.getloadavg()[0]:.1f}")
lines.append(f"- data: synthetic COCO train2017 shape, scale {scale}: captions {cap_b:,} bytes "
             f"({cap_b / MiB:.1f} MiB), instances {inst_b:,} bytes ({inst_b / MiB:.1f} MiB)")
pycoco_version = version([sys.executable, "-c", "import importlib.metadata as m; print(m.version('pycocotools'))"])
swift_version = version(["swift", "--version"])
lines.append(f"- python {platform.python_version()}, pycocotools {pycoco_version}; swift: {swift_version}")
lines.append("- each step: fresh process, wall time (median of runs, min–max spread), peak RSS from /usr/bin/time -v; "
             "JSON files are in the page cache (warm) for every step; every run measures every side in turn")
lines.append("")
lines.append("| step | runs | time (s) | spread (s) | CPU user+sys (s) | peak RSS (MiB) | RSS / JSON size | JSON measured against |")
lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
for key, label, against in labels:
    s = stats[key]
    if s is None:
        continue
    if s["status"] != "ok":
        lines.append(f"| {label} | {s['runs']} | failed | — | — | — | — | see bench/out/{key}.*.log |")
    else:
        lines.append(f"| {label} | {s['runs']} | {s['wall']:.2f} | {spread(s['walls'])} | {s['cpu']:.2f} | {s['rss'] / MiB:.0f} | "
                     f"{s['rss'] / s['input']:.2f}x | {against} ({s['input'] / MiB:.1f} MiB) |")
if inside:
    v = list(inside.values())
    lines.append(f"| pycocotools: time inside the two COCO() calls (json.load + createIndex) | {len(v)} | "
                 f"{statistics.median(v):.2f} | {spread(v)} | | | | both JSON |")

def side_by_side(prefix, title):
    pb, fi, fc = stats["pycoco_both"], stats[f"{prefix}_ingest"], stats[f"{prefix}_context"]
    if not (ok(fi) and ok(fc)):
        return
    lines.append("")
    lines.append(f"{title} (captions + instances; ratios are per run, then the median):")
    lines.append("")
    lines.append("| | pycocotools (COCO x2, one process) | llava-forge ingest | llava-forge ingest + context |")
    lines.append("|---|---:|---:|---:|")
    runs = sorted(set(fi["by_run"]) & set(fc["by_run"]))
    total = {r: fi["by_run"][r] + fc["by_run"][r] for r in runs}
    lines.append("| time (s) | %s | %.2f | %.2f |" % (f"{pb['wall']:.2f}" if ok(pb) else "—", fi["wall"], statistics.median(total.values())))
    lines.append("| peak RSS (MiB) | %s | %.0f | %.0f |" % (f"{pb['rss'] / MiB:.0f}" if ok(pb) else "—", fi["rss"] / MiB, max(fi["rss"], fc["rss"]) / MiB))
    lines.append("| RSS / JSON size | %s | %.2fx | %.2fx |" % (f"{pb['rss'] / pb['input']:.2f}x" if ok(pb) else "—", fi["rss"] / fi["input"], max(fi["rss"], fc["rss"]) / fi["input"]))
    if ok(pb):
        def ratios(num):
            rs = [num[r] / total[r] for r in runs if r in num]
            ri = [num[r] / fi["by_run"][r] for r in runs if r in num]
            return rs, ri
        rs, ri = ratios(pb["by_run"])
        lines.append("| pycocotools process wall / llava-forge | 1.00 | %.2f (%s) | **%.2f** (%s) |" % (
            statistics.median(ri), spread(ri), statistics.median(rs), spread(rs)))
        if inside:
            rs, ri = ratios(inside)
            if rs:
                lines.append("| time inside COCO() / llava-forge (the goal: ≥ 5) | — | %.2f (%s) | **%.2f** (%s) |" % (
                    statistics.median(ri), spread(ri), statistics.median(rs), spread(rs)))

side_by_side("forge", "Side by side")
side_by_side("base", "Baseline build, same runs")

# Per-phase times of `ingest --timings` (median over runs).
phases = {}
for path in sorted(glob.glob(os.path.join(out_dir, "forge_ingest.*.log"))):
    if path.rsplit(".", 2)[1] not in this_run("forge_ingest"):
        continue
    for name, secs in re.findall(r"^timing: (.+) ([0-9.]+) s$", open(path).read(), re.M):
        phases.setdefault(name, []).append(float(secs))
if phases:
    lines.append("")
    lines.append("llava-forge ingest phases (`--timings`, median s; parse runs on two threads, so phases overlap):")
    lines.append("")
    lines.append("| phase | s | spread |")
    lines.append("|---|---:|---:|")
    for name, v in phases.items():
        lines.append(f"| {name} | {statistics.median(v):.2f} | {spread(v)} |")
if forge_note:
    lines.append("")
    lines.append(f"Note: {forge_note}")
text = "\n".join(lines) + "\n"
open(md_path, "w").write(text)
print(text)
PY
