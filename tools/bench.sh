#!/usr/bin/env bash
# tools/bench.sh [faceq bench options] — builds faceq, installs the models and
# prints the pipeline benchmark for ../shared/data/lfw-dev (4,992 LFW photos)
# and ../shared/data/dlib_faces (12 group photos), for 1 worker and for all
# cores. Figures go into docs/benchmarks.md with the machine and date.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
install_packages
build_faceq -DFACEQ_BUILD_TESTS=OFF
default_mirror
faceq="$FACEQ_BUILD_DIR/faceq"
"$faceq" -q download models
data="$FACEQ_ROOT/../shared/data"
echo "# $(date -u +%F) $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
echo "## lfw-dev"
"$faceq" bench -r "$data/lfw-dev/lfw-deepfunneled" "$@"
echo "## dlib_faces (x20)"
"$faceq" bench "$data/dlib_faces" --repeat 20 "$@"
