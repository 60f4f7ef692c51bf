#!/usr/bin/env bash
# Near-duplicate detection over 158K synthetic LLaVA-shaped samples (realistic lengths and mix,
# planted near and exact copies): MinHash LSH (128 permutations, 16 bands x 8 rows) with exact
# Jaccard confirmation, in memory and through the store (DedupRunner, bands persisted), plus an
# incremental rerun. Goal: detection <= 60 s on this machine (2 cores).
#
#   bench/dedup_bench.sh [N]        # default N = 158000
#
# Measured 2026-12-01 (2 cores shared with other jobs, load average 4-9): 158K samples, 157 words
# on average; in-memory detection 21-45 s depending on load (shingles+MinHash+bands on both
# cores 18-40 s, LSH + exact Jaccard 2-5 s); the stored path (DedupRunner: load, exact, near,
# persist) 25.9 s; incremental rerun 0.75 s; recall on planted pairs with Jaccard >= 0.8: 0.992;
# no false marks (every mark is confirmed by exact Jaccard >= 0.7); peak RSS 0.86 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-158000}"
mkdir -p bench/out
swift build -c release --product llava-forge 2>&1 | tail -1
BIN="$(swift build -c release --show-bin-path)/llava-forge"
DB=bench/out/dedup-bench.db
if command -v /usr/bin/time >/dev/null; then
  /usr/bin/time -f "peak RSS %M KB, wall %e s" stdbuf -oL "$BIN" dedup --synthetic "$N" --store --db "$DB"
else
  time "$BIN" dedup --synthetic "$N" --store --db "$DB"
fi
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.lock"
