#!/usr/bin/env bash
# tools/bench_serve.sh — load benchmark of `faceq serve`: POST /analyze with a
# one-face 640x480 JPEG from N connections for D seconds (wrk), after a
# warm-up; prints requests/s, p50/p90/p99 latency, errors, the server's CPU
# time per request (which other processes on the machine do not change), and
# its RSS before and after the measured run, with the machine and its load.
#
#   bash tools/bench_serve.sh [-- SERVE OPTIONS...]      e.g. -- --min-face 80
#
# Environment: FACEQ_BIN (build/faceq), FACEQ_BENCH_MODELS (a models/ dir:
# build/test-home/models, else $FACEQ_HOME/models), FACEQ_BENCH_PHOTO (the
# photo cropped to 640x480: ../shared/data/.../obama-480p.jpg),
# FACEQ_BENCH_REGISTRY (a registry/ dir, copied into the fresh home: its
# deployed age/gender head then answers ages; default none, ages null),
# DURATION (30), CONNECTIONS (4), WARMUP (5), WRK_THREADS (2).
# Installs the Debian packages wrk and libjpeg-turbo-progs (jpegtran, for a
# lossless crop) when missing. The server runs on a fresh home (models/ is a
# symlink, the gallery starts empty) on a free port, and is stopped with
# SIGTERM at the end (its exit code is checked).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACEQ_BIN="${FACEQ_BIN:-$ROOT/build/faceq}"
DURATION="${DURATION:-30}"
CONNECTIONS="${CONNECTIONS:-4}"
WARMUP="${WARMUP:-5}"
WRK_THREADS="${WRK_THREADS:-2}"
PHOTO="${FACEQ_BENCH_PHOTO:-$ROOT/../shared/data/face_recognition_examples/examples/obama-480p.jpg}"
SERVE_ARGS=()
if [ "${1:-}" = "--" ]; then shift; SERVE_ARGS=("$@"); fi

say() { printf 'bench_serve: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_packages() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v jpegtran >/dev/null || missing+=(libjpeg-turbo-progs)
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing ${missing[*]}"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

source "$ROOT/tools/serve_bench_lib.sh"

[ -x "$FACEQ_BIN" ] || die "no faceq binary at $FACEQ_BIN (build first: cmake --build build -j2)"
[ -f "$PHOTO" ] || die "no photo at $PHOTO (set FACEQ_BENCH_PHOTO)"
need_packages

WORK="$(mktemp -d /tmp/faceq-bench-serve-XXXXXX)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/home"
ln -s "$(models_dir)" "$WORK/home/models"
if [ -n "${FACEQ_BENCH_REGISTRY:-}" ]; then
  [ -d "$FACEQ_BENCH_REGISTRY" ] || die "FACEQ_BENCH_REGISTRY: no directory $FACEQ_BENCH_REGISTRY"
  cp -r "$FACEQ_BENCH_REGISTRY" "$WORK/home/registry"
fi
crop_640x480 "$PHOTO" "$WORK/face640.jpg"

write_wrk_script "$WORK/post.lua"

start_serve
curl -sf -F "file=@$WORK/face640.jpg" "$URL/analyze" | grep -q '"faces":\[{' || die "the photo shows no face"
age_model="$(curl -sf "$URL/health" | grep -o '"age":[^,}]*' | head -1 | cut -d: -f2- | tr -d '"')"

export BENCH_PHOTO="$WORK/face640.jpg"
say "warm-up ${WARMUP}s"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$WORK/post.lua" "$URL/analyze" >/dev/null
rss_before=$(rss_kb "$SERVER_PID")
cpu_before=$(cpu_s "$SERVER_PID")
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
say "measuring ${DURATION}s, $CONNECTIONS connections"
wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$WORK/post.lua" "$URL/analyze" >"$WORK/wrk.out"
rss_after=$(rss_kb "$SERVER_PID")
cpu_after=$(cpu_s "$SERVER_PID")
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
summary="$(grep '^{' "$WORK/wrk.out" | tail -1)"
[ -n "$summary" ] || { cat "$WORK/wrk.out" >&2; die "no summary from wrk"; }
non2xx="$(grep -o 'Non-2xx or 3xx responses: [0-9]*' "$WORK/wrk.out" | grep -o '[0-9]*$' || echo 0)"

kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""

requests="$(printf '%s' "$summary" | grep -o '"requests":[0-9]*' | cut -d: -f2)"
cpu_ms="$(awk -v a="$cpu_before" -v b="$cpu_after" -v n="$requests" 'BEGIN {printf "%.1f", (n > 0 ? (b - a) * 1000 / n : 0)}')"
capacity="$(awk -v c="$cpu_ms" -v n="$(nproc)" 'BEGIN {printf "%.1f", (c > 0 ? n * 1000 / c : 0)}')"
growth="$(awk -v a="$rss_before" -v b="$rss_after" 'BEGIN {printf "%.1f", (b - a) * 100.0 / a}')"
cat <<EOF
date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)
machine:     $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')
load avg:    before $load_before, after $load_after (1/5/15 min)
server:      faceq serve ${SERVE_ARGS[*]:-} (exit code after SIGTERM: $rc); age model: ${age_model:-none}
load:        POST /analyze, one-face 640x480 JPEG ($(stat -c %s "$WORK/face640.jpg") bytes), $CONNECTIONS connections, ${DURATION}s after ${WARMUP}s warm-up
result:      $summary
non-2xx:     $non2xx
server cpu:  $cpu_ms ms per request (user + system): $capacity requests/s if the $(nproc) cores were the server's alone
rss:         before $((rss_before / 1024)) MiB, after $((rss_after / 1024)) MiB (growth $growth%)
EOF
