#!/usr/bin/env bash
# Installs what llava-forge needs on a fresh Debian machine (idempotent; apt-get update once, only
# when something is missing). The Swift toolchain itself is expected on PATH.
set -euo pipefail
need=()
for pkg in libcurl4-openssl-dev libsqlite3-dev libopenblas-dev libjpeg-dev libpng-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6 toolchain required)" >&2; exit 1; }
# The official OpenAI Python client, for the serving integration test (Tests/ServingTests skips
# that test when it is missing, so a failed install is a warning).
if command -v python3 >/dev/null && ! python3 -c "import openai" 2>/dev/null; then
  LOCK=(); command -v flock >/dev/null && LOCK=(flock /tmp/pip.lock)
  "${LOCK[@]}" python3 -m pip install -q openai >/dev/null 2>&1 \
    || echo "setup: could not install the openai Python package; its integration test will be skipped" >&2
fi
