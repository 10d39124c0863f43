#!/usr/bin/env bash
# tools/bench_thumbnails_store.sh — what storing face thumbnails costs
# `faceq analyze --store`: the same folder analysed into a fresh gallery with
# thumbnails and with --no-thumbnails, the two interleaved ROUNDS times in one
# run (so both see the same neighbours), printing per run the wall time,
# images/s, the process's CPU time (user + system, which other processes on
# the machine do not change) and the gallery's size; then the means and the
# change. A thumbnail is made on the worker that analysed the photo and
# written with its detection (docs/benchmarks.md, "Face thumbnails").
#
#   bash tools/bench_thumbnails_store.sh [DIR] [-- ANALYZE OPTIONS...]
#
# DIR defaults to ../shared/data/wider-dev/images (279 photos, ~3 faces each).
# Environment: FACEQ_BIN (build/faceq), FACEQ_BENCH_MODELS (a models/ dir:
# build/test-home/models, else $FACEQ_HOME/models), ROUNDS (3), JOBS (2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACEQ_BIN="${FACEQ_BIN:-$ROOT/build/faceq}"
ROUNDS="${ROUNDS:-3}"
JOBS="${JOBS:-2}"
DIR="$ROOT/../shared/data/wider-dev/images"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then DIR="$1"; shift; fi
ARGS=()
if [ "${1:-}" = "--" ]; then shift; ARGS=("$@"); fi

say() { printf 'bench_thumbnails_store: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

models_dir() {
  if [ -n "${FACEQ_BENCH_MODELS:-}" ]; then echo "$FACEQ_BENCH_MODELS"
  elif [ -d "$ROOT/build/test-home/models" ]; then echo "$ROOT/build/test-home/models"
  else echo "${FACEQ_HOME:-$HOME/.faceq}/models"; fi
}

[ -x "$FACEQ_BIN" ] || die "no faceq binary at $FACEQ_BIN (build first: cmake --build build -j2)"
[ -d "$DIR" ] || die "no folder $DIR"
[ -d "$(models_dir)" ] || die "no models at $(models_dir) (set FACEQ_BENCH_MODELS)"
WORK="$(mktemp -d /tmp/faceq-bench-thumbnails-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# One run into a fresh home: prints "wall_s cpu_s images faces db_bytes thumbnails".
run_once() {
  local home="$WORK/home-$1-$2"
  mkdir -p "$home"
  ln -s "$(models_dir)" "$home/models"
  shift 2
  /usr/bin/time -f '%e %U %S' -o "$WORK/time" \
    "$FACEQ_BIN" --home "$home" analyze --store -r -j "$JOBS" "$@" "${ARGS[@]}" "$DIR" >"$WORK/out.jsonl" 2>"$WORK/err" \
    || { cat "$WORK/err" >&2; die "faceq analyze failed"; }
  local images faces db thumbs
  images=$(grep -c '"type":"analysis"' "$WORK/out.jsonl" || true)
  faces=$(grep -o '"bbox"' "$WORK/out.jsonl" | wc -l)
  db=$(( $(stat -c %s "$home/faceq.db") + $(stat -c %s "$home/faceq.db-wal" 2>/dev/null || echo 0) ))
  thumbs=$(sqlite3 "$home/faceq.db" "SELECT count(*) FROM detection_thumbnails" 2>/dev/null || echo 0)
  read -r wall user sys <"$WORK/time"
  echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $images $faces $db $thumbs"
  rm -rf "$home"
}

say "$ROUNDS rounds over $DIR, -j $JOBS, with and without thumbnails, interleaved"
printf '%-6s %-14s %8s %8s %8s %7s %7s %10s %7s  %s\n' round mode wall_s img/s cpu_s images faces db_bytes thumbs load
for round in $(seq 1 "$ROUNDS"); do
  for mode in thumbnails no-thumbnails; do
    extra=()
    [ "$mode" = no-thumbnails ] && extra=(--no-thumbnails)
    load="$(cut -d' ' -f1 /proc/loadavg)"
    read -r wall cpu images faces db thumbs < <(run_once "$round" "$mode" "${extra[@]}")
    printf '%-6s %-14s %8.2f %8.2f %8.2f %7s %7s %10s %7s  %s\n' "$round" "$mode" "$wall" \
      "$(awk -v n="$images" -v w="$wall" 'BEGIN {print n / w}')" "$cpu" "$images" "$faces" "$db" "$thumbs" "$load" \
      | tee -a "$WORK/table"
  done
done
awk '
  { wall[$2] += $3; cpu[$2] += $5; db[$2] += $8; n[$2]++; faces[$2] = $7 }
  END {
    w1 = wall["thumbnails"] / n["thumbnails"]; w0 = wall["no-thumbnails"] / n["no-thumbnails"]
    c1 = cpu["thumbnails"] / n["thumbnails"]; c0 = cpu["no-thumbnails"] / n["no-thumbnails"]
    d1 = db["thumbnails"] / n["thumbnails"]; d0 = db["no-thumbnails"] / n["no-thumbnails"]
    printf "mean wall %.2f s with, %.2f s without: %+.1f%% (images/s %+.1f%%)\n", w1, w0, (w1 - w0) * 100 / w0, (w0 / w1 - 1) * 100
    printf "mean CPU  %.2f s with, %.2f s without: %+.1f%%, %.2f ms per face\n", c1, c0, (c1 - c0) * 100 / c0, (c1 - c0) * 1000 / faces["thumbnails"]
    printf "gallery   %.0f bytes with, %.0f without: %.0f bytes per face\n", d1, d0, (d1 - d0) / faces["thumbnails"]
  }' "$WORK/table"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
