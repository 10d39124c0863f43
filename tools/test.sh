#!/usr/bin/env bash
# tools/test.sh — the README's test command, and CI's (.ci/run): installs the
# dependencies, then runs seven parts, each whatever the others did, and fails
# if any failed:
#   format   tools/format.sh --check: every tracked .cpp/.hpp clang-formatted
#   release  build/ (Release, -DFACEQ_WERROR=ON): the whole suite, slow tests
#            included, on the real photos in ../shared/data
#   browser  the web page of `faceq serve` in Debian's chromium (headless),
#            driven by puppeteer-core (tests/browser/, `npm ci` from its lock
#            file) on a gallery built with build/'s faceq from real photos;
#            screenshots in build/browser/ (~1.5 min)
#   asan     build-asan/ (-DFACEQ_SANITIZE=ON: ASan + UBSan, the core at -O1,
#            CLI and tests at -O0, -DFACEQ_WERROR=ON): the suite minus the slow
#            tests ([.slow]) and the dataset tests ([dataset]: a model over
#            dozens to hundreds of labelled photos, its figures checked, mostly
#            dlib's and OpenCV's arithmetic, which this build leaves
#            unsanitized; 4 minutes of CI's 60), both of which the release
#            part runs; the CLI gallery tests on SQLite only but those about
#            processes at once and kill -9 (tests/test_gallery_db.hpp)
#   fuzz     build-fuzz/ (-DFACEQ_FUZZ=ON, clang++-14: ASan + UBSan + libFuzzer,
#            a few of the core's files, no dlib): each harness in fuzz/ for
#            FACEQ_FUZZ_SECONDS (45) on a copy of its seed corpus; a crash, a
#            leak or a 10 s input fails it and names the saved input
#            (docs/fuzzing.md)
#   deploy   tools/check_deploy.sh: deploy/'s Kubernetes manifests parse and
#            hold together, and the Slurm array script, run through bash as
#            2 tasks with build/'s faceq, covers a photo folder once (~10 s;
#            after release, whose build and test home it uses)
#   package  tools/check_package.sh: `cpack -G DEB` of build/, the package's
#            fields and files, lintian, installed on this machine (apt-get
#            install ./faceq_*.deb), the installed faceq, man page, models
#            downloaded as the user faceq into /var/lib/faceq, the unit's
#            command line serving with the API key, systemd-analyze verify,
#            the bash and zsh completions; then purged (~1 min; after
#            release, whose build it packages)
# The release and asan parts run the gallery tests on SQLite and on a real
# PostgreSQL server that this script starts (postgresql-15, a throw-away
# cluster in /tmp run by an unprivileged user: tools/pg_cluster.sh) and stops
# at exit, pass or fail.
# The same on a developer's machine as in CI (CI=true changes nothing). The
# tests install their models once per build tree (test-home/) from the mirror.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
# Environment: FACEQ_REQUIRE_DATA (default 1: a test whose data — ../shared,
# the model mirror — is missing fails, naming it; 0: such tests are skipped and
# the run's summary says how many and why), FACEQ_TEST_PARTS (default
# "format release browser deploy package asan fuzz"; e.g. "release" runs one part),
# FACEQ_FUZZ_SECONDS (per harness, default 45), and setup.sh's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export FACEQ_REQUIRE_DATA="${FACEQ_REQUIRE_DATA:-1}"
parts="${FACEQ_TEST_PARTS:-format release browser deploy package asan fuzz}"
tsay() { printf 'test: %s\n' "$*" >&2; }

# Runs the test binary of build directory $1 with the test spec $2, its output
# also kept in $1/faceq_tests.log; notes a run that skipped test cases.
run_tests() {
  local rc=0
  (cd "$1" && ./faceq_tests "$2" --durations no) 2>&1 | tee "$1/faceq_tests.log" || rc=$?
  note="$(sed -n 's/^faceq_tests: \(NOT A FULL RUN: .*\)/\1/p' "$1/faceq_tests.log")"
  return "$rc"
}

part_format() {
  bash "$FACEQ_ROOT/tools/format.sh" --check
}

part_release() {
  build_faceq -DFACEQ_BUILD_TESTS=ON -DFACEQ_WERROR=ON || return
  run_tests "$FACEQ_BUILD_DIR" "~[.],[.slow]"
}

# Its optimisation levels are set in cmake/options.cmake whatever the build
# type says (compile time was what kept this part out of CI: 23.5 min at -O2
# -g, 9 min so); dlib's compute kernels are built unsanitized, exactly as in
# the release part, whose ccache entries they reuse: hence Release here too
# (CMakeLists.txt, faceq_kernels).
part_asan() {
  FACEQ_BUILD_DIR="$FACEQ_ROOT/build-asan" FACEQ_BUILD_TYPE=Release \
    build_faceq -DFACEQ_BUILD_TESTS=ON -DFACEQ_SANITIZE=ON -DFACEQ_WERROR=ON || return
  UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" run_tests "$FACEQ_ROOT/build-asan" "~[.slow]~[dataset]"
}

# Each harness runs in build-fuzz/run/<harness>/ on a fresh copy of
# fuzz/corpus/<harness>/ (libFuzzer adds what it finds to the copy, never to
# the repository), its output in log there and a failing input in crashes/.
# Its scratch files go to a TMPDIR made here, on /dev/shm when there is one
# (fuzz_registry writes five files per input: 8x faster than on disk), and
# removed here: libFuzzer's _Exit leaves a harness no way to clean up.
# A libFuzzer process uses one core: FACEQ_JOBS harnesses run at once.
# Fuzzing is random: a run that passes proves little, one that fails has found
# an input to turn into a test (docs/fuzzing.md says how).
# fuzz_one DIR SECONDS HARNESS: one harness's run; its exit code in run/<harness>/rc.
fuzz_one() {
  local dir="$1" secs="$2" h="$3" work="$1/run/$3" scratch rc=0
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/crashes"
  scratch="$(mktemp -d -p /dev/shm faceq-fuzz.XXXXXX 2>/dev/null || mktemp -d)"
  cp "$FACEQ_ROOT/fuzz/corpus/$h/"* "$work/corpus/"
  (cd "$work" && TMPDIR="$scratch" "$dir/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/crashes/" corpus >"$work/log" 2>&1) || rc=$?
  rm -rf "$scratch"
  echo "$rc" >"$work/rc"
}

part_fuzz() {
  local dir="$FACEQ_ROOT/build-fuzz" secs="${FACEQ_FUZZ_SECONDS:-45}" rc=0 h work
  local harnesses=(image multipart manifest registry) pids=()
  cmake -S "$FACEQ_ROOT" -B "$dir" -DFACEQ_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 -DFACEQ_WERROR=ON >/dev/null || return
  cmake --build "$dir" -j"$FACEQ_JOBS" >&2 || return
  for h in "${harnesses[@]}"; do
    fuzz_one "$dir" "$secs" "$h" &
    pids+=($!)
    # At most FACEQ_JOBS at once: wait for the oldest still running.
    if [ "${#pids[@]}" -ge "$FACEQ_JOBS" ]; then
      wait "${pids[0]}" || true
      pids=("${pids[@]:1}")
    fi
  done
  wait || true
  for h in "${harnesses[@]}"; do
    work="$dir/run/$h"
    if [ "$(cat "$work/rc" 2>/dev/null)" = 0 ]; then
      tsay "fuzz_$h: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$work/log"), $(grep -E '^#[0-9]+' "$work/log" | tail -n 1 | grep -o 'cov: [0-9]* ft: [0-9]*'), corpus $(ls "$work/corpus" | wc -l) inputs"
    else
      rc=1
      # OpenCV's imgcodecs prints a line for each image it cannot read: not the news.
      grep -v '^imdecode_' "$work/log" | tail -n 60 >&2
      tsay "fuzz_$h FAILED; input: $(ls -d "$work/crashes/"* 2>/dev/null | head -n 1); replay: $dir/fuzz/fuzz_$h <input>"
    fi
  done
  return "$rc"
}

# The page in a real browser (tests/browser/test.mjs): build/'s faceq serves
# it, Debian's chromium shows it, puppeteer-core (npm, the version in
# package-lock.json; its .npmrc keeps registry addresses out of the lock
# file) drives it. Builds build/'s faceq when the release part did not.
part_browser() {
  FACEQ_BUILD_TARGET=faceq build_faceq -DFACEQ_BUILD_TESTS=ON -DFACEQ_WERROR=ON || return
  (cd "$FACEQ_ROOT/tests/browser" && npm ci --prefer-offline --no-audit --no-fund >&2) || return
  local log="$FACEQ_BUILD_DIR/browser/test.log" rc=0
  mkdir -p "$FACEQ_BUILD_DIR/browser"
  (cd "$FACEQ_ROOT/tests/browser" && FACEQ_BIN="$FACEQ_BUILD_DIR/faceq" FACEQ_BROWSER_OUT="$FACEQ_BUILD_DIR/browser" \
    node --test --test-reporter=spec test.mjs) 2>&1 | tee "$log" || rc=$?
  if grep -q '^ℹ skipped [1-9]' "$log"; then note="NOT A FULL RUN: browser tests skipped for missing test data"; fi
  return "$rc"
}

# Builds build/ when the release part did not (FACEQ_TEST_PARTS=deploy).
part_deploy() {
  build_faceq -DFACEQ_BUILD_TESTS=ON -DFACEQ_WERROR=ON || return
  bash "$FACEQ_ROOT/tools/check_deploy.sh"
}

# Builds build/ when the release part did not (FACEQ_TEST_PARTS=package).
part_package() {
  build_faceq -DFACEQ_BUILD_TESTS=ON -DFACEQ_WERROR=ON || return
  bash "$FACEQ_ROOT/tools/check_package.sh"
}

# A throw-away PostgreSQL server for the release and asan parts' gallery
# tests (tools/pg_cluster.sh; test_gallery_db.hpp), stopped when this script
# exits, pass or fail. FACEQ_TEST_PG set by the caller is used instead.
pg_dir=""
stop_test_server() { [ -z "$pg_dir" ] || bash "$FACEQ_ROOT/tools/pg_cluster.sh" stop "$pg_dir"; }
start_test_server() {
  case " $parts " in *" release "* | *" asan "*) ;; *) return 0 ;; esac
  [ -z "${FACEQ_TEST_PG:-}" ] || { tsay "PostgreSQL test server: $FACEQ_TEST_PG (given)"; return 0; }
  pg_dir="$(mktemp -d /tmp/faceq-pg.XXXXXX)"
  rmdir "$pg_dir"
  trap stop_test_server EXIT
  FACEQ_TEST_PG="$(bash "$FACEQ_ROOT/tools/pg_cluster.sh" start "$pg_dir")"
  export FACEQ_TEST_PG
  tsay "PostgreSQL test server: $FACEQ_TEST_PG ($pg_dir)"
}

# A row of the summary: part, minutes and seconds since $2, outcome.
result_row() {
  local secs=$((SECONDS - $2))
  printf '%-8s %3dm%02ds  %s' "$1" $((secs / 60)) $((secs % 60)) "$3"
}

results=()
failed=0
partial=0
note=""
# Runs part $1 (part_$1), timing it; a failure is remembered, not fatal.
run_part() {
  local start=$SECONDS rc=0
  note=""
  tsay "== $1: start ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "part_$1" || rc=$?
  local outcome=passed
  [ "$rc" -eq 0 ] || { outcome="FAILED (exit code $rc)"; failed=1; }
  [ -z "$note" ] || { outcome="$outcome, $note"; partial=1; }
  results+=("$(result_row "$1" "$start" "$outcome")")
}

for part in $parts; do
  declare -F "part_$part" >/dev/null || { tsay "error: unknown part '$part' in FACEQ_TEST_PARTS"; exit 2; }
done
start=$SECONDS
# exiftool reads back the XMP sidecars faceq writes (tests/test_xmp.cpp).
extra_packages=(clang-format libimage-exiftool-perl)
# libFuzzer ships in libclang-rt-14-dev (libclang_rt.fuzzer*.a): Debian's
# libfuzzer-14-dev, a libFuzzer.a for other compilers, is not needed.
case " $parts " in *" fuzz "*) extra_packages+=(clang-14 libclang-rt-14-dev) ;; esac
# The gallery tests run on SQLite and on a real PostgreSQL server.
case " $parts " in *" release "* | *" asan "*) extra_packages+=(postgresql-15 python3) ;; esac
# The browser tests: Debian's chromium; Node.js and npm when the machine has none.
case " $parts " in *" browser "*)
  extra_packages+=(chromium)
  command -v npm >/dev/null || extra_packages+=(nodejs npm) ;;
esac
# The package: dpkg-shlibdeps, lintian, the man page's lint, systemd-analyze, the shells it completes in.
case " $parts " in *" package "*) extra_packages+=(dpkg-dev lintian mandoc man-db systemd bash-completion zsh curl) ;; esac
install_packages "${extra_packages[@]}"
default_mirror
start_test_server
results+=("$(result_row setup "$start" "packages present or installed")")
for part in $parts; do run_part "$part"; done
tsay "summary ($(nproc) cores, load average now $(cut -d' ' -f1-3 /proc/loadavg), FACEQ_REQUIRE_DATA=$FACEQ_REQUIRE_DATA):"
printf '  %s\n' "${results[@]}" >&2
[ "$failed" -eq 0 ] || { tsay "FAILED"; exit 1; }
if [ "$partial" -eq 1 ]; then
  tsay "passed, but NOT A FULL RUN: test cases were skipped for missing test data (FACEQ_REQUIRE_DATA=0)"
else
  tsay "all parts passed"
fi
