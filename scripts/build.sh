#!/usr/bin/env bash
# Configures and builds flexnas (Release, Ninja, ccache) into build/ (or $FLEXNAS_BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${FLEXNAS_BUILD_DIR:-build}"
JOBS="${FLEXNAS_JOBS:-$(nproc)}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
# Each LibTorch translation unit needs ~1.1 GB while compiling; cap jobs by memory too.
mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
if [ "$mem_gb" -lt $((JOBS * 2)) ]; then JOBS=$(( mem_gb / 2 > 0 ? mem_gb / 2 : 1 )); fi
cmake --build "$BUILD_DIR" -j "$JOBS" "$@"
