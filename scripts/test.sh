#!/usr/bin/env bash
# The test suite, from a fresh clone: installs system libraries, builds, runs every test.
# Tests build in debug mode; the parsing and numeric hot paths are compiled with -O regardless
# (Package.swift `hotPath`), so fixtures stay realistic without a release test build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build 2>&1 | tee /tmp/llava-forge-test.log
