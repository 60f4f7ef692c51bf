#!/usr/bin/env bash
# Single-thread timing and accuracy of the AVX-512 VNNI block kernels (Sources/CInferenceKernels/
# InterleavedKernels.c) on SmolLM2-135M's matrix shapes, 1 and 8 activation vectors: the per-vector
# cost a batched decode step pays (bench/decode_bench.sh measures the whole step). Pure C, no Swift
# build.
#
#   bench/block_kernel_bench.sh [--against GIT_REV] [--repeats N]
#
# --against REV also builds that revision's pair kernels (PairKernels.c, the layout before the
# interleaved one, e.g. a5bdc2d; symbols renamed) and runs both alternately in one process, so the
# ratio is measured under the same load. Times are thread CPU
# time, min over the repeats. Prints one JSON line per (kernel, shape, vectors) and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
AGAINST=""
REPEATS=15
while [ $# -gt 0 ]; do
  case "$1" in
    --against) AGAINST="$2"; shift ;;
    --repeats) REPEATS="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
CC=${CC:-clang}
INC=Sources/CInferenceKernels/include
$CC -O3 -mavx2 -mfma -mf16c -I"$INC" -c Sources/CInferenceKernels/InterleavedKernels.c -o "$OUT/this.o"
EXTRA=()
DEFS=()
if [ -n "$AGAINST" ]; then
  git show "$AGAINST:Sources/CInferenceKernels/PairKernels.c" > "$OUT/other.c"
  git show "$AGAINST:Sources/CInferenceKernels/Reductions.h" > "$OUT/Reductions.h" 2>/dev/null || true
  $CC -O3 -mavx2 -mfma -mf16c -I"$INC" -Dlf_quantize_pairs=other_quantize_pairs -Dlf_rows_pairs=other_rows_pairs \
      -Dlf_has_vnni=other_has_vnni -Dlf_pair_sums_stride=other_pair_sums_stride -c "$OUT/other.c" -o "$OUT/other.o"
  EXTRA=("$OUT/other.o")
  DEFS=(-DLF_OTHER="\"$AGAINST\"")
fi
$CC -O2 -mf16c "${DEFS[@]}" -I"$INC" bench/BlockKernelBench/main.c "$OUT/this.o" "${EXTRA[@]}" -o "$OUT/bench" -lm
echo "== load: $(uptime)"
"$OUT/bench" "$REPEATS" | tee "$OUT/lines.jsonl"
python3 - "$OUT/lines.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["kernel"], r["shape"], r["vectors"]): r for r in rows if r["what"] == "block_kernel"}
kernels = sorted({k for k, _, _ in by}, key=lambda k: k != "this tree")
print("\n| shape | kernel | ns/row-vector, 1 vector | 8 vectors | 1 → 8 per-vector speedup | GMAC/s at 8 | max abs error (8) |")
print("|---|---|---:|---:|---:|---:|---:|")
for shape in dict.fromkeys(s for _, s, _ in by):
    for k in kernels:
        one, eight = by[(k, shape, 1)], by[(k, shape, 8)]
        print(f"| {shape} | {k} | {one['ns_per_row_vector']:.1f} | {eight['ns_per_row_vector']:.1f} | "
              f"{one['ns_per_row_vector'] / eight['ns_per_row_vector']:.2f}× | {eight['gmac_per_second']:.1f} | {eight['max_abs_error']:.2g} |")
if len(kernels) == 2:
    print("\nthis tree / other, time ratio (lower is faster):")
    for shape in dict.fromkeys(s for _, s, _ in by):
        print(f"  {shape}: 1 vector {by[(kernels[0], shape, 1)]['ns_per_row_vector'] / by[(kernels[1], shape, 1)]['ns_per_row_vector']:.2f}, "
              f"8 vectors {by[(kernels[0], shape, 8)]['ns_per_row_vector'] / by[(kernels[1], shape, 8)]['ns_per_row_vector']:.2f}")
PY
