#!/usr/bin/env python3
"""Summary table of bench/train_bench.sh's JSON lines: per config and side the median tokens/s
over repetitions (spread min–max), peak RSS, model GFLOP/s and percent of the sgemm 1024³ peak
measured in the same process; then llava-forge / PyTorch ratios (speed: higher is better; memory:
lower is better) and the per-repetition speed ratios of adjacent runs.

    python3 bench/train_bench_summary.py bench/out/train_bench.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

runs = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
by = defaultdict(list)
for r in runs:
    by[(r["config"], r["impl"])].append(r)
gib = 1024 ** 3
print("| config | side | tokens/s median (min–max, n) | peak RSS GiB | GFLOP/s | % of sgemm peak (peak GFLOP/s) |")
print("|---|---|---|---|---|---|")
for (config, impl), rs in sorted(by.items()):
    tps = [r["tokens_per_second"] for r in rs]
    print(f"| {config} | {impl} | {statistics.median(tps):.0f} ({min(tps):.0f}–{max(tps):.0f}, {len(tps)}) "
          f"| {max(r['peak_rss_bytes'] for r in rs) / gib:.2f} | {statistics.median(r['gflops'] for r in rs):.0f} "
          f"| {statistics.median(r['percent_of_sgemm_peak'] for r in rs):.0f} % ({statistics.median(r['sgemm_peak_gflops'] for r in rs):.0f}) |")
print()
for config in sorted({c for c, _ in by}):
    ours, torch = by.get((config, "llava-forge")), by.get((config, "pytorch"))
    if not ours or not torch:
        continue
    speed = statistics.median(r["tokens_per_second"] for r in ours) / statistics.median(r["tokens_per_second"] for r in torch)
    memory = max(r["peak_rss_bytes"] for r in ours) / max(r["peak_rss_bytes"] for r in torch)
    paired = [o["tokens_per_second"] / t["tokens_per_second"] for o, t in zip(ours, torch)]
    print(f"{config}: llava-forge / PyTorch tokens/s = {speed:.2f}× (per repetition: {', '.join(f'{p:.2f}' for p in paired)}); "
          f"peak RSS ratio = {memory:.2f}")
for r in runs:
    if "profile_seconds_per_step" in r:
        print(f"\nprofile, llava-forge {r['config']} (seconds per step; sections nest):")
        for e in r["profile_seconds_per_step"][:25]:
            extra = f", {e['gflops']:.0f} GFLOP/s" if "gflops" in e else ""
            print(f"  {e['name']:<34} {e['seconds_per_step']:8.3f} s  {e['percent_of_step']:5.1f} %  ×{e['calls_per_step']:.0f}{extra}")
