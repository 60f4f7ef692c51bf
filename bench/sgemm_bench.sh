#!/usr/bin/env bash
# Measured sgemm peak on this machine: the OpenBLAS core Debian's library picks by itself vs the
# core llava-forge switches to (BLASRuntime, e.g. Prescott → SkylakeX on an AVX-512 CPU), with 1
# and 2 threads. Later benchmarks report achieved GFLOP/s against these figures.
#
#   bash bench/sgemm_bench.sh                  # default shapes, best of 5
#   REPEAT=3 SHAPES="1024 1024 1024" bash bench/sgemm_bench.sh
#   CORE=Haswell bash bench/sgemm_bench.sh     # compare against another core
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out"
mkdir -p "$out"
bin="$out/sgemm_bench"
repeat="${REPEAT:-5}"
# Square 1024³ plus shapes of the engine: 512 tokens through SmolLM2's MLP (576 → 1536) and a
# ViT-B/16 MLP (197 tokens, 768 → 3072).
shapes="${SHAPES:-1024 1024 1024  512 1536 576  512 576 1536  197 3072 768}"

cc -O2 -o "$bin" "$here/sgemm_bench.c" $(pkg-config --cflags --libs openblas) -ldl

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
     "avx512f: $(grep -m1 -o -w avx512f /proc/cpuinfo || echo no)"
chosen="$(OPENBLAS_NUM_THREADS=1 "$bin" --repeat 1 8 8 8 | awk '{print $1}')"
echo "# OpenBLAS $(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo '?'): the library itself chose $chosen;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine inflates every time)"
core="${CORE:-}"
if [[ -z "$core" ]]; then
    if grep -q -w avx512f /proc/cpuinfo && grep -q -w avx512vl /proc/cpuinfo; then core=SkylakeX
    elif grep -q -w avx2 /proc/cpuinfo; then core=Haswell
    else core=""; fi
fi
for threads in 1 2; do
    echo "## library's choice ($chosen), $threads thread(s)"
    OPENBLAS_NUM_THREADS=$threads "$bin" --repeat "$repeat" $shapes
    # Prescott is what 0.3.21 falls back to on CPU models newer than its tables: the baseline the
    # switch fixes. Forced here so the cost is visible even where detection works.
    echo "## forced Prescott (the mis-detection fallback), $threads thread(s)"
    OPENBLAS_NUM_THREADS=$threads "$bin" --switch Prescott --repeat "$repeat" $shapes
    if [[ -n "$core" ]]; then
        echo "## switched in-process to $core (what BLASRuntime does), $threads thread(s)"
        OPENBLAS_NUM_THREADS=$threads "$bin" --switch "$core" --repeat "$repeat" $shapes
    fi
done
