# tools/serve_bench_lib.sh — what tools/bench_serve.sh and
# tools/bench_serve_attack.sh share, sourced by both after they define ROOT,
# FACEQ_BIN, say and die: where the models are, a process's RSS and CPU time,
# the 640x480 crop of the bench photo, the wrk script, and starting `faceq
# serve` on a fresh home until /health answers 200.

# The models/ directory the server's home links to.
models_dir() {
  if [ -n "${FACEQ_BENCH_MODELS:-}" ]; then echo "$FACEQ_BENCH_MODELS"
  elif [ -d "$ROOT/build/test-home/models" ]; then echo "$ROOT/build/test-home/models"
  elif [ -n "${FACEQ_HOME:-}" ]; then echo "$FACEQ_HOME/models"
  else echo "${XDG_DATA_HOME:-$HOME/.local/share}/faceq/models"; fi
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU seconds the process used so far (user + system), whatever else runs on the machine.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }

# crop_640x480 PHOTO OUT: a lossless crop of the middle 640x480 of a JPEG
# (offsets on the 16-pixel MCU grid; jpegtran from libjpeg-turbo-progs).
crop_640x480() {
  local size width x0
  size="$(file -L "$1" | grep -o ', [0-9]*x[0-9]*,' | tail -1 | tr -d ', ')"
  width="${size%x*}"
  [ -n "$width" ] && [ "$width" -ge 640 ] && [ "${size#*x}" -ge 480 ] || die "$1 is not a JPEG of at least 640x480"
  x0=$(( ( (width - 640) / 2 ) / 16 * 16 ))
  jpegtran -crop "640x480+${x0}+0" -copy none -outfile "$2" "$1"
  file "$2" | grep -q ', 640x480,' || die "could not make a 640x480 JPEG from $1"
}

# write_wrk_script OUT: the wrk Lua script. With BENCH_PHOTO set it POSTs the
# photo as multipart field "file" (else the URL's GET); BENCH_KEY, when set,
# goes in X-API-Key; PACE_MS (> 0) paces each connection. done() prints one
# JSON line: requests, seconds, rps, p50/p90/p99/max/mean in ms, errors (all
# kinds) and each kind (connect, read, write, timeout, status = answers other
# than 2xx/3xx).
write_wrk_script() {
  cat >"$1" <<'LUA'
local photo_path = os.getenv("BENCH_PHOTO") or ""
local pace = tonumber(os.getenv("PACE_MS") or "0")
wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
if photo_path ~= "" then
  local f = assert(io.open(photo_path, "rb"))
  local photo = f:read("*a")
  f:close()
  local boundary = "faceqbenchboundary7MA4YWxkTrZu0gW"
  wrk.method = "POST"
  wrk.body = "--" .. boundary .. "\r\n" ..
    "Content-Disposition: form-data; name=\"file\"; filename=\"face640.jpg\"\r\n" ..
    "Content-Type: image/jpeg\r\n\r\n" .. photo .. "\r\n--" .. boundary .. "--\r\n"
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
end
if pace > 0 then
  function delay() return pace end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"rps":%.2f,"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,' ..
    '"mean_ms":%.2f,"errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, latency.mean / 1e3, e.connect + e.read + e.write + e.timeout + e.status,
    e.connect, e.read, e.write, e.timeout, e.status))
end
LUA
}

# start_serve: `faceq --home $WORK/home serve --port 0 SERVE_ARGS...` in the
# background (FACEQ_API_KEY=$BENCH_KEY when BENCH_KEY is set), its log in
# $WORK/server.log; sets SERVER_PID, PORT and URL once it listens and /health
# answers 200; dies when it exits or does not get there (60 s, 120 s).
start_serve() {
  local key_header=()
  [ -z "${BENCH_KEY:-}" ] || key_header=(-H "X-API-Key: $BENCH_KEY")
  say "starting: $FACEQ_BIN serve ${SERVE_ARGS[*]:-}"
  if [ -n "${BENCH_KEY:-}" ]; then
    FACEQ_API_KEY="$BENCH_KEY" "$FACEQ_BIN" --home "$WORK/home" serve --port 0 "${SERVE_ARGS[@]}" 2>"$WORK/server.log" &
  else
    "$FACEQ_BIN" --home "$WORK/home" serve --port 0 "${SERVE_ARGS[@]}" 2>"$WORK/server.log" &
  fi
  SERVER_PID=$!
  PORT=""
  local _
  for _ in $(seq 1 600); do
    PORT="$(grep -o 'listening on http://[^ ]*' "$WORK/server.log" | sed 's/.*://' || true)"
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
    sleep 0.1
  done
  [ -n "$PORT" ] || die "the server did not start listening"
  URL="http://127.0.0.1:$PORT"
  for _ in $(seq 1 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${key_header[@]}" "$URL/health")" = 200 ] && break
    sleep 0.1
  done
  curl -sf -o /dev/null "${key_header[@]}" "$URL/health" || die "the server did not get ready"
}
