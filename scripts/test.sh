#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs every test (unit, CLI, mpi, slurm).
# Usage: scripts/test.sh [ctest arguments, e.g. -L mpi or -R design_space]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR="${FLEXNAS_BUILD_DIR:-build}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
