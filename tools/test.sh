#!/usr/bin/env bash
# tools/test.sh — install dependencies, build faceq and its tests, and run the
# whole test suite (slow tests included) on the real photos in ../shared/data.
# The tests install their models once into build/test-home from the mirror.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

install_packages
build_faceq -DFACEQ_BUILD_TESTS=ON
default_mirror
cd "$FACEQ_BUILD_DIR"
ctest --output-on-failure
