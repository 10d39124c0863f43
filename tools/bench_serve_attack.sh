#!/usr/bin/env bash
# tools/bench_serve_attack.sh — issue 12's load test: does `faceq serve` keep
# serving well-behaved clients while hostile ones hit it? For each route, wrk
# (2 threads, 8 connections, 60 s, after a warm-up) runs once on a quiet server
# and once while tools/serve_attack.py runs slow-body, oversize-chunked and
# (optionally) idle clients that reconnect for the whole run. Prints per
# route: requests/s, wrk's errors (socket errors and non-2xx answers),
# p50/p99 quiet and under attack and their ratio, the server's RSS before and
# after the attack and its growth, the attack connections made, refused and
# how they ended; then PASS or NOT MET for each of the issue's targets:
#   0 errors for the well-behaved clients; their p99 under attack within 25%
#   of the quiet run; server RSS growth under attack < 10%.
# Exit 0 when the harness ran (whatever the figures), 1 when it failed.
#
#   bash tools/bench_serve_attack.sh [-- SERVE OPTIONS...]
#
# Environment: FACEQ_BIN (build/faceq), FACEQ_BENCH_MODELS (a models/ dir,
# as in tools/bench_serve.sh), FACEQ_BENCH_PHOTO (a JPEG of at least 640x480,
# cropped losslessly to 640x480 for /analyze), ROUTES ("health analyze"),
# DURATION (60), CONNECTIONS (8), WRK_THREADS (2), WARMUP (5), PACE_MS (0: wrk
# sends as fast as answers come; N: each connection waits N ms between
# requests), SLOW (1), CHUNKED (1), IDLE (0): attack clients of each kind,
# INTERVAL (3): seconds between two bytes of a slow body, ROUNDS (1): quiet and
# attack runs alternate this many times; the targets are judged on the medians
# (the machine's other load moves a single p99 by as much as an attack: run an
# A/A check with SLOW=0 CHUNKED=0 IDLE=0 to see how much).
# The server: a fresh home (models/ a symlink, empty gallery), a random API
# key, `--max-upload-mb 1 --min-face 80` then SERVE OPTIONS (later options
# win). Installs the Debian packages wrk and libjpeg-turbo-progs when missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/setup.sh
source "$ROOT/tools/setup.sh"
FACEQ_BIN="${FACEQ_BIN:-$ROOT/build/faceq}"
ROUTES="${ROUTES:-health analyze}"
DURATION="${DURATION:-60}"
CONNECTIONS="${CONNECTIONS:-8}"
WRK_THREADS="${WRK_THREADS:-2}"
WARMUP="${WARMUP:-5}"
PACE_MS="${PACE_MS:-0}"
SLOW="${SLOW:-1}"
CHUNKED="${CHUNKED:-1}"
IDLE="${IDLE:-0}"
INTERVAL="${INTERVAL:-3}"
ROUNDS="${ROUNDS:-1}"
PHOTO="${FACEQ_BENCH_PHOTO:-$ROOT/../shared/data/face_recognition_examples/examples/obama-480p.jpg}"
PYTHON=/usr/bin/python3
SERVE_ARGS=(--max-upload-mb 1 --min-face 80)
if [ "${1:-}" = "--" ]; then shift; SERVE_ARGS+=("$@"); fi

say() { printf 'bench_serve_attack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

for v in DURATION CONNECTIONS WRK_THREADS WARMUP PACE_MS SLOW CHUNKED IDLE ROUNDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$ROUNDS" -ge 1 ] || die "ROUNDS must be at least 1"
for r in $ROUTES; do
  case "$r" in health|analyze) ;; *) die "ROUTES: unknown route '$r' (health, analyze)";; esac
done

source "$ROOT/tools/serve_bench_lib.sh"
json_num() { printf '%s' "$1" | grep -o "\"$2\":[0-9.]*" | head -1 | cut -d: -f2; }

[ -x "$FACEQ_BIN" ] || die "no faceq binary at $FACEQ_BIN (build first: cmake --build build -j2)"
[ -x "$PYTHON" ] || die "no $PYTHON (the attack clients need Python 3)"
if ! command -v wrk >/dev/null || ! command -v jpegtran >/dev/null; then install_packages wrk libjpeg-turbo-progs; fi
command -v wrk >/dev/null || die "wrk is not installed"
[ -d "$(models_dir)" ] || die "no models at $(models_dir) (set FACEQ_BENCH_MODELS)"

WORK="$(mktemp -d /tmp/faceq-bench-attack-XXXXXX)"
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/home"
ln -s "$(models_dir)" "$WORK/home/models"
if [[ " $ROUTES " == *" analyze "* ]]; then
  [ -f "$PHOTO" ] || die "no photo at $PHOTO (set FACEQ_BENCH_PHOTO)"
  crop_640x480 "$PHOTO" "$WORK/face640.jpg"
fi

# One script for both routes (serve_bench_lib.sh): /analyze posts the photo.
write_wrk_script "$WORK/load.lua"

KEY="bench-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
BENCH_KEY="$KEY" start_serve
if [ -f "$WORK/face640.jpg" ]; then
  curl -sf -H "X-API-Key: $KEY" -F "file=@$WORK/face640.jpg" "$URL/analyze" | grep -q '"faces":\[{' \
    || die "the photo shows no face"
fi
export BENCH_KEY="$KEY" PACE_MS

# wrk_run ROUTE SECONDS OUT: one wrk run; its JSON summary line in OUT.
wrk_run() {
  local route="$1" seconds="$2" out="$3" path="/health"
  BENCH_PHOTO=""
  if [ "$route" = analyze ]; then path="/analyze"; BENCH_PHOTO="$WORK/face640.jpg"; fi
  BENCH_PHOTO="$BENCH_PHOTO" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s \
    -s "$WORK/load.lua" "$URL$path" >"$out.raw" 2>&1 || { cat "$out.raw" >&2; die "wrk failed"; }
  grep '^{' "$out.raw" | tail -1 >"$out"
  [ -s "$out" ] || { cat "$out.raw" >&2; die "no summary from wrk"; }
}

# The server's RSS every 0.5 s into FILE (for the peak), until killed.
sample_rss() { while kill -0 "$SERVER_PID" 2>/dev/null; do rss_kb "$SERVER_PID" >>"$1" || true; sleep 0.5; done; }

pass() { if [ "$1" = 1 ]; then echo PASS; else echo "NOT MET"; fi; }
cpu_ms() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.2f", (n > 0 ? (b - a) * 1000 / n : 0)}'; }

report="$WORK/report.txt"
{
  echo "date:        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine:     $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "server:      faceq serve ${SERVE_ARGS[*]} (API key set), $(threads_of "$SERVER_PID") threads once ready"
  echo "load:        wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s, pace ${PACE_MS} ms, $ROUNDS round(s) of quiet then attack; attack: $SLOW slow-body (1 B / ${INTERVAL} s), $CHUNKED oversize-chunked, $IDLE idle"
} >"$report"

# median of the numbers on stdin
median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for route in $ROUTES; do
  say "$route: warm-up ${WARMUP}s"
  wrk_run "$route" "$WARMUP" "$WORK/warm.json"
  : >"$WORK/rss.samples"
  rss_before=""
  {
    echo
    echo "== $route"
  } >>"$report"
  for round in $(seq 1 "$ROUNDS"); do
    say "$route: round $round/$ROUNDS: quiet run ${DURATION}s"
    load0="$(cut -d' ' -f1 /proc/loadavg)"
    cpu0=$(cpu_s "$SERVER_PID")
    wrk_run "$route" "$DURATION" "$WORK/quiet.$round.json"
    cpu1=$(cpu_s "$SERVER_PID")
    q="$(cat "$WORK/quiet.$round.json")"
    {
      echo "quiet $round:     $q"
      echo "             load avg $load0 -> $(cut -d' ' -f1 /proc/loadavg); server CPU $(cpu_ms "$cpu0" "$cpu1" "$(json_num "$q" requests)") ms/request"
    } >>"$report"

    say "$route: round $round/$ROUNDS: attack run ${DURATION}s"
    [ -n "$rss_before" ] || rss_before=$(rss_kb "$SERVER_PID")
    sample_rss "$WORK/rss.samples" &
    SAMPLER_PID=$!
    load0="$(cut -d' ' -f1 /proc/loadavg)"
    cpu0=$(cpu_s "$SERVER_PID")
    # The attackers start first (their first connections are in place when
    # wrk starts) and stop 2 s after it.
    "$PYTHON" "$ROOT/tools/serve_attack.py" --port "$PORT" --key "$KEY" \
      --duration $((DURATION + 3)) --slow "$SLOW" --chunked "$CHUNKED" --idle "$IDLE" --interval "$INTERVAL" \
      >"$WORK/attack.$round.clients" 2>"$WORK/attack.err" &
    attack_pid=$!
    sleep 1
    threads_attack=$(threads_of "$SERVER_PID")
    wrk_run "$route" "$DURATION" "$WORK/attack.$round.json"
    cpu1=$(cpu_s "$SERVER_PID")
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    wait "$attack_pid" || { cat "$WORK/attack.err" >&2; die "the attack clients failed"; }
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=""
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server died under attack"; }
    a="$(cat "$WORK/attack.$round.json")"
    {
      echo "attack $round:    $a"
      echo "             load avg $load0 -> $load1; server CPU $(cpu_ms "$cpu0" "$cpu1" "$(json_num "$a" requests)") ms/request (attack included); server threads $threads_attack"
      echo "attackers:   $(cat "$WORK/attack.$round.clients")"
    } >>"$report"
  done
  sleep 1
  rss_after=$(rss_kb "$SERVER_PID")
  rss_peak=$(sort -n "$WORK/rss.samples" | tail -1)
  rss_peak=${rss_peak:-$rss_after}

  pick() { for f in "$WORK"/"$1".*.json; do json_num "$(cat "$f")" "$2"; done; }
  sum() { awk '{s += $1} END {print s + 0}'; }
  p99q=$(pick quiet p99_ms | median)
  p99a=$(pick attack p99_ms | median)
  errq=$(pick quiet errors | sum)
  erra=$(pick attack errors | sum)
  ratio=$(awk -v a="$p99a" -v q="$p99q" 'BEGIN {printf "%.2f", (q > 0 ? a / q : 0)}')
  growth=$(awk -v a="$rss_before" -v b="$rss_after" 'BEGIN {printf "%.1f", (b - a) * 100.0 / a}')
  peak_growth=$(awk -v a="$rss_before" -v b="$rss_peak" 'BEGIN {printf "%.1f", (b - a) * 100.0 / a}')
  m="median of $ROUNDS"
  {
    echo "requests/s:  quiet $(pick quiet rps | median), attack $(pick attack rps | median) ($m)"
    echo "p50:         quiet $(pick quiet p50_ms | median) ms, attack $(pick attack p50_ms | median) ms ($m)"
    echo "p99:         quiet $p99q ms, attack $p99a ms, ratio $ratio ($m; each: quiet $(pick quiet p99_ms | tr '\n' ' ')/ attack $(pick attack p99_ms | tr '\n' ' '))"
    echo "rss:         before the first attack $((rss_before / 1024)) MiB, after the last $((rss_after / 1024)) MiB ($growth%), peak $((rss_peak / 1024)) MiB ($peak_growth%)"
    echo "target 0 errors:            $(pass "$([ "$errq" = 0 ] && [ "$erra" = 0 ] && echo 1)") (quiet $errq, attack $erra)"
    echo "target p99 within 25%:      $(pass "$(awk -v r="$ratio" 'BEGIN {print (r <= 1.25 ? 1 : 0)}')") (ratio $ratio)"
    echo "target RSS growth < 10%:    $(pass "$(awk -v g="$growth" -v p="$peak_growth" 'BEGIN {print (g < 10 && p < 10 ? 1 : 0)}')") (after $growth%, peak $peak_growth%)"
  } >>"$report"
done

kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
echo "server exit code after SIGTERM: $rc" >>"$report"
cat "$report"
[ "$rc" = 0 ] || { tail -20 "$WORK/server.log" >&2; die "the server did not stop cleanly"; }
