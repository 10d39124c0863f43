#!/usr/bin/env bash
# tools/run.sh [PHOTO|FOLDER ...] — the main job: install dependencies, build,
# fetch the models, make sure an age/gender model is deployed (on a fresh
# machine: download the UTKFace archive, prepare, train, register, deploy —
# about 5 minutes on 2 cores), then analyze photos (default: data/samples),
# printing one JSON line per image. Extra analyze options can follow `--`:
#   tools/run.sh ~/Pictures -- -r --format csv
# FACEQ_SKIP_TRAINING=1 skips the age/gender step (ages stay null).
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

# An age/gender head for the installed embedder, unless one is deployed. The
# steps' records go to stderr too; a failure (say, no dataset archive
# reachable) leaves ages null but still analyzes.
faceq="$FACEQ_BUILD_DIR/faceq"
train_age_gender() {
  "$faceq" download dataset utkface >&2 &&
    "$faceq" prepare utkface >&2 &&
    "$faceq" train age-gender >&2 &&
    "$faceq" register-model --name age-gender >&2 &&
    "$faceq" deploy --name age-gender >&2
}
if [ "${FACEQ_SKIP_TRAINING:-0}" != 1 ] && ! "$faceq" -q models check --name age-gender >/dev/null; then
  say "no age/gender model deployed for the installed embedder: training one (download, prepare, train, register, deploy)"
  train_age_gender || say "warning: could not train an age/gender model (see above); ages stay null"
fi
exec "$faceq" analyze "${extra[@]}" "${paths[@]}"
