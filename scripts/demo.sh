#!/usr/bin/env bash
# The main job: installs the dependencies, builds flexnas and compiles the reference test design
# space into a graph library (9,312 architectures: graphs, hashes, distances, embeddings,
# neighbours), then prints its summary. Output goes to runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BUILD_DIR="${FLEXNAS_BUILD_DIR:-build}"
FLEXNAS="$BUILD_DIR/bin/flexnas"
mkdir -p runs/demo
"$FLEXNAS" space count --design-space examples/design_space_test.yaml
"$FLEXNAS" library generate --design-space examples/design_space_test.yaml --out runs/demo/library_test.json
"$FLEXNAS" library info runs/demo/library_test.json
