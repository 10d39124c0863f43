#!/usr/bin/env bash
# tools/bench_page.sh — how fast `faceq serve` answers what the web page's
# first screens ask for, on a gallery of PERSONS known persons and thousands of
# strangers (issue 14's target: the people page's first page ready in <= 300 ms
# of server time at 10,000 persons and strangers):
#   - GET /api/persons for the people page (known, by name), the strangers page
#     (unknown, most-seen first, with their "looks like" suggestions), every
#     person by last seen, and a name filter; REPS times each: median and p95;
#   - the 50 thumbnails of the people page's first page, one request each.
# Times are curl's on loopback from the request to the last byte: server time
# plus a loopback round trip.
#
#   bash tools/bench_page.sh
#
# The gallery is written by `faceq bench store` (synthetic descriptors, 2 faces
# an image, half of them new strangers, for WRITE_SECONDS), then every face
# and sample is given a real thumbnail: the one faceq stores for a face of a
# real photo (analyze --store in a scratch home). The descriptors are recorded
# under the installed embedder's id, so the strangers page pays for its "looks
# like" suggestions (one index query per stranger listed); being random, they
# find no one near.
#
# Environment: FACEQ_BIN (build/faceq), FACEQ_BENCH_MODELS (see
# serve_bench_lib.sh), PERSONS (10000), WRITE_SECONDS (6), REPS (20).
# Needs sqlite3's Python module (python3) and curl. The server runs on a fresh
# home on a free port and is stopped at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FACEQ_BIN="${FACEQ_BIN:-$ROOT/build/faceq}"
PERSONS="${PERSONS:-10000}"
WRITE_SECONDS="${WRITE_SECONDS:-6}"
REPS="${REPS:-20}"
PHOTO="$ROOT/../shared/data/face_recognition_examples/examples/obama-480p.jpg"
SERVE_ARGS=()

say() { printf 'bench_page: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

source "$ROOT/tools/serve_bench_lib.sh"

[ -x "$FACEQ_BIN" ] || die "no faceq binary at $FACEQ_BIN (build first: cmake --build build -j2)"
[ -f "$PHOTO" ] || die "no photo at $PHOTO (../shared/data)"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -z "$SERVER_PID" ] || { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/home" "$WORK/real"
ln -s "$(models_dir)" "$WORK/home/models"
ln -s "$(models_dir)" "$WORK/real/models"

say "a real face's thumbnail: analyze --store $PHOTO"
"$FACEQ_BIN" --home "$WORK/real" analyze --store "$PHOTO" >/dev/null
say "the gallery: bench store --persons $PERSONS for ${WRITE_SECONDS} s, half the faces new strangers"
EMBEDDER="$("$FACEQ_BIN" --home "$WORK/real" stats --format json |
  /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["embedder"]["installed"])')"
"$FACEQ_BIN" bench store --to "$WORK/home/faceq.db" --persons "$PERSONS" --writers 2 --embedder "$EMBEDDER" \
  --seconds "$WRITE_SECONDS" --new-share 0.5 --format jsonl >"$WORK/store.json"
read -r KNOWN UNKNOWN DETECTIONS THUMB_BYTES < <(/usr/bin/python3 - "$WORK/real/faceq.db" "$WORK/home/faceq.db" <<'PY'
import sqlite3, sys
real = sqlite3.connect(sys.argv[1])
(jpeg,) = real.execute("SELECT jpeg FROM detection_thumbnails LIMIT 1").fetchone()
g = sqlite3.connect(sys.argv[2])
g.execute("INSERT OR IGNORE INTO detection_thumbnails (detection_id, jpeg) SELECT id, ? FROM detections", (jpeg,))
g.execute("INSERT OR IGNORE INTO sample_thumbnails (sample_id, jpeg) SELECT id, ? FROM samples", (jpeg,))
g.commit()
count = lambda q, *a: g.execute(q, a).fetchone()[0]
print(count("SELECT count(*) FROM persons WHERE kind = ?", "known"), count("SELECT count(*) FROM persons WHERE kind = ?", "unknown"),
      count("SELECT count(*) FROM detections"), len(jpeg))
PY
)
say "gallery: $KNOWN known persons, $UNKNOWN strangers, $DETECTIONS detections, thumbnails of $THUMB_BYTES bytes"

start_serve

# times_ms URL: REPS request times in ms, one a line (after one untimed warm-up).
times_ms() {
  curl -sf -o /dev/null "$1" || die "GET $1 failed"
  local _
  for _ in $(seq 1 "$REPS"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$1" | awk '{printf "%.2f\n", $1 * 1000}'
  done
}
# stats: median and p95 of the numbers on stdin.
stats() { sort -n | awk '{a[NR] = $1} END {printf "%.1f %.1f\n", a[int((NR + 1) / 2)], a[int(NR * 0.95 + 0.999)]}'; }

results=()
for query in "kind=known&order=name&limit=50" "kind=unknown&order=detections&limit=50" \
  "kind=all&order=last_seen&limit=50" "kind=all&q=person_1&order=name&limit=50"; do
  read -r p50 p95 < <(times_ms "$URL/api/persons?$query" | stats)
  results+=("$(printf '%-56s %8s %8s' "/api/persons?$query" "$p50" "$p95")")
done

# The people page's thumbnails: the 50 of its first page, each fetched once.
curl -sf "$URL/api/persons?kind=known&order=name&limit=50" >"$WORK/page.json"
/usr/bin/python3 -c '
import json, sys
for p in json.load(open(sys.argv[1]))["persons"]:
    if p.get("thumbnail"): print(p["thumbnail"])' "$WORK/page.json" >"$WORK/thumbs.txt"
[ -s "$WORK/thumbs.txt" ] || die "the first page lists no thumbnail"
while read -r path; do
  curl -sf -o /dev/null -w '%{time_total}\n' "$URL$path" | awk '{printf "%.2f\n", $1 * 1000}'
done <"$WORK/thumbs.txt" >"$WORK/thumb_ms.txt"
read -r tp50 tp95 < <(stats <"$WORK/thumb_ms.txt")
total="$(awk '{s += $1} END {printf "%.1f", s}' "$WORK/thumb_ms.txt")"

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "faceq bench_page — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($cpu), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "gallery: $KNOWN known persons, $UNKNOWN strangers, $DETECTIONS detections (SQLite); $REPS requests each"
printf '%-56s %8s %8s\n' "request" "p50 ms" "p95 ms"
printf '%s\n' "${results[@]}"
printf '%-56s %8s %8s   (%s requests, %s ms one after another)\n' "thumbnails of the first page" "$tp50" "$tp95" \
  "$(wc -l <"$WORK/thumbs.txt")" "$total"
