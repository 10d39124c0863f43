#!/usr/bin/env bash
# tools/run.sh [PHOTO|FOLDER ...] — the main job: install dependencies, build,
# fetch the models, then analyze photos (default: data/samples), printing one
# JSON line per image. Extra analyze options can follow `--`:
#   tools/run.sh ~/Pictures -- -r --format csv
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

paths=()
extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  paths+=("$1"); shift
done
[ ${#paths[@]} -gt 0 ] || paths=("$FACEQ_ROOT/data/samples")

install_packages
build_faceq -DFACEQ_BUILD_TESTS=OFF
default_mirror
# Its per-model records go to stderr: stdout carries only the analysis records.
"$FACEQ_BUILD_DIR/faceq" download models >&2
exec "$FACEQ_BUILD_DIR/faceq" analyze "${extra[@]}" "${paths[@]}"
