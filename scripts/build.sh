#!/usr/bin/env bash
# Configures and builds flexnas (Release, Ninja, ccache) into build/ (or $FLEXNAS_BUILD_DIR).
# The compiler's output goes to $BUILD_DIR/build.log; a progress line is shown, and the log's
# errors are printed if the build fails. FLEXNAS_VERBOSE=1 shows everything. Extra arguments go to
# `cmake --build` (e.g. --target flexnas).
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
if [ "${FLEXNAS_VERBOSE:-0}" = 1 ]; then
  exec cmake --build "$BUILD_DIR" -j "$JOBS" "$@"
fi
echo "build: compiling into $BUILD_DIR with $JOBS jobs (a first build takes 20-30 minutes on 2 cores; log: $BUILD_DIR/build.log)"
start=$(date +%s)
set +e
cmake --build "$BUILD_DIR" -j "$JOBS" "$@" 2>&1 | tee "$BUILD_DIR/build.log" | grep --line-buffered -E '^\[[0-9]+/[0-9]+\]' |
  awk '{ n++; if (n % 10 == 0) { print "build: " $1; fflush() } }'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "build: FAILED (exit $status); errors from $BUILD_DIR/build.log:" >&2
  grep -E 'error|FAILED' "$BUILD_DIR/build.log" | head -40 >&2
  exit "$status"
fi
echo "build: done in $(( $(date +%s) - start )) s"
