#!/usr/bin/env bash
# tools/setup.sh — installs faceq's build dependencies (Debian 12 packages) and
# builds faceq into build/. Idempotent: installs only missing packages and
# rebuilds only what changed. Sourced by tools/run.sh and tools/test.sh.
#
# Environment: FACEQ_BUILD_DIR (default build), FACEQ_BUILD_TYPE (Release),
# FACEQ_JOBS (make jobs, default: number of cores).
set -euo pipefail

FACEQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACEQ_BUILD_DIR="${FACEQ_BUILD_DIR:-$FACEQ_ROOT/build}"
FACEQ_BUILD_TYPE="${FACEQ_BUILD_TYPE:-Release}"
FACEQ_JOBS="${FACEQ_JOBS:-$(nproc)}"

FACEQ_PACKAGES=(
  cmake g++ make pkg-config ccache
  libdlib-dev libdlib-data libopenblas-dev liblapack-dev
  libopencv-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libsqlite3-dev libpq-dev libfmt-dev libcli11-dev catch2 nlohmann-json3-dev
  libcpp-httplib-dev libboost-dev libhnswlib-dev libcurl4-openssl-dev libarchive-dev libssl-dev
  libexiv2-dev
)

say() { printf 'setup: %s\n' "$*" >&2; }

# install_packages [EXTRA_PACKAGE ...]: the build's packages and any extra
# ones a script needs (tools/test.sh: clang-format).
install_packages() {
  local missing=() wanted=("${FACEQ_PACKAGES[@]}" "$@")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages: all ${#wanted[@]} present"
    return
  fi
  say "installing ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "error: need root (or sudo) to install: ${missing[*]}"; exit 1; }
    sudo="sudo"
  fi
  # apt's and the build's progress go to stderr: run.sh's stdout carries only records.
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# build_faceq [CMAKE_OPTION ...]: configures and builds FACEQ_BUILD_DIR as
# FACEQ_BUILD_TYPE (callers may set both for one call: tools/test.sh builds
# build-asan/ so); only FACEQ_BUILD_TARGET when that is set (tools/test.sh's
# browser part needs faceq, not the test binary).
build_faceq() {
  # dlib's DNN convolutions run through BLAS: make sure libblas.so.3 is OpenBLAS.
  local blas
  blas="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)"
  case "$blas" in
    *openblas*) ;;
    *) say "warning: libblas.so.3 resolves to '${blas:-nothing}', not OpenBLAS (update-alternatives --config libblas.so.3-x86_64-linux-gnu)";;
  esac
  # `|| return`: tools/test.sh calls this where set -e does not stop a failure.
  cmake -S "$FACEQ_ROOT" -B "$FACEQ_BUILD_DIR" -DCMAKE_BUILD_TYPE="$FACEQ_BUILD_TYPE" "$@" >/dev/null || return
  cmake --build "$FACEQ_BUILD_DIR" -j"$FACEQ_JOBS" ${FACEQ_BUILD_TARGET:+--target "$FACEQ_BUILD_TARGET"} >&2
}

# A sibling ../shared/mirror (this project's offline copy of upstream model
# files) is used when FACEQ_MIRROR is not set.
default_mirror() {
  if [ -z "${FACEQ_MIRROR:-}" ] && [ -d "$FACEQ_ROOT/../shared/mirror" ]; then
    export FACEQ_MIRROR="$FACEQ_ROOT/../shared/mirror"
    say "using mirror $FACEQ_MIRROR"
  fi
}
