#!/usr/bin/env bash
# tools/bench_gallery.sh — the gallery's measurements: identification curves
# and sample aggregation on lfw-dev (docs/identification.md), search speed
# against 100,000 descriptors, the HNSW graph against the exact scan at
# 10,000 to 1,000,000 persons (~10 min, ~2 GB) and opening a 100,000-sample
# gallery (docs/benchmarks.md). Needs a built tree (build/faceq_tests) and
# ../shared/data; the first run computes the lfw-dev descriptors (~2-6 min on
# 2 cores) and caches them in the build tree. The curves take ~10 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD="${FACEQ_BUILD_DIR:-build}"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%Y-%m-%d)"
exec "$BUILD/faceq_tests" "${1:-[.bench][gallery]}"
