#!/usr/bin/env bash
# tools/check_package.sh — the Debian package, built and installed for real
# (tools/test.sh's `package` part; docs/packaging.md):
#   1. `cpack -G DEB` in build/ makes faceq_<version>_amd64.deb;
#   2. dpkg-deb --info: Depends names the packages of the linked libraries
#      (dpkg-shlibdeps) and adduser, /etc/default/faceq is a conffile, the
#      maintainer scripts are there; dpkg-deb --contents: every promised file,
#      the binary stripped; lintian: no error or warning;
#   3. installs it on this machine (apt-get install ./faceq_*.deb), then:
#      the installed faceq's --version and its data directory
#      (/usr/share/faceq), `man -l` and `mandoc -T lint` of the installed page,
#      the system user faceq, /var/lib/faceq and the API key (0600, root's);
#      installed again over itself: an edited /etc/default/faceq and the key
#      are kept;
#   4. `faceq --home /var/lib/faceq download models` as the user faceq, from
#      the mirror (FACEQ_MIRROR, else ../shared/mirror): the models land in the
#      service's state directory, owned by faceq;
#   5. the unit's own ExecStart line (with /etc/default/faceq, FACEQ_HOME and a
#      credentials directory as systemd would give it) run as faceq: it loads
#      those models, answers /health, refuses /stats without the key (401)
#      and answers it with the key, and stops on SIGTERM with exit 0;
#   6. `systemd-analyze verify` on the installed unit: no output at all;
#   7. the installed completion sourced in bash — plain, and with
#      bash-completion loaded — and asked for `faceq an<TAB>`, a nested
#      subcommand, an option, an option's value and a directory argument;
#      the zsh one autoloaded by compinit in a real zsh (zpty), the same;
#   8. purges the package, removes the user faceq (postrm leaves it, as
#      Debian packages do) and checks that nothing of it is left.
# Refuses to start when faceq is installed already, or a user faceq or
# /var/lib/faceq exists: it would purge them. Cleans up at exit, pass or fail.
# Needs build/ built (tools/setup.sh) and root (or sudo). Takes ~40 s.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
psay() { printf 'check_package: %s\n' "$*" >&2; }
fail() {
  psay "FAILED: $*"
  exit 1
}

install_packages dpkg-dev lintian mandoc man-db systemd bash-completion zsh curl
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
[ -x "$FACEQ_BUILD_DIR/faceq" ] || fail "no faceq binary in $FACEQ_BUILD_DIR: build first (tools/setup.sh)"
if dpkg-query -W -f='${Status}' faceq 2>/dev/null | grep -q installed || getent passwd faceq >/dev/null ||
  [ -e /var/lib/faceq ]; then
  fail "faceq is installed on this machine (the package, the user faceq or /var/lib/faceq): this check would purge it"
fi
default_mirror
[ -n "${FACEQ_MIRROR:-}" ] || fail "no model mirror: set FACEQ_MIRROR (or put it at ../shared/mirror)"

work="$(mktemp -d /tmp/faceq-package.XXXXXX)"
chmod 755 "$work"
serve_pid=""
cleanup() {
  [ -z "$serve_pid" ] || kill "$serve_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' faceq 2>/dev/null | grep -q "ok installed\|config-files"; then
    $sudo apt-get purge -y -q -o DPkg::Lock::Timeout=300 faceq >/dev/null 2>&1 || true
  fi
  if getent passwd faceq >/dev/null; then $sudo deluser --system faceq >/dev/null 2>&1 || true; fi
  if getent group faceq >/dev/null; then $sudo delgroup --system faceq >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The package.
rm -f "$FACEQ_BUILD_DIR"/faceq_*.deb
(cd "$FACEQ_BUILD_DIR" && cpack -G DEB >"$work/cpack.log" 2>&1) || {
  cat "$work/cpack.log" >&2
  fail "cpack -G DEB"
}
version="$("$FACEQ_BUILD_DIR/faceq" --version | cut -d' ' -f2)"
deb="$FACEQ_BUILD_DIR/faceq_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || fail "no $deb (cpack made: $(ls "$FACEQ_BUILD_DIR"/*.deb 2>/dev/null))"
psay "built $(basename "$deb") ($(du -k "$deb" | cut -f1) kB)"

# 2. What it declares and holds.
info="$(dpkg-deb --info "$deb")"
depends="$(dpkg-deb --field "$deb" Depends)"
# One package per library linked into the binary (ldd), as dpkg-shlibdeps found them.
for lib in libdlib libopencv-core libopencv-dnn libsqlite3 libpq5 libcurl libarchive libssl libfmt libjpeg libpng libexiv2; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
# The libraries linked after the package was first written (e.g. exiv2) are
# found the same way: every NEEDED library's package must be in Depends.
ldcache="$(ldconfig -p)"
declare -A lib_path
for so in $(objdump -p "$FACEQ_BUILD_DIR/faceq" | awk '/NEEDED/ {print $2}'); do
  lib_path[$so]="$(awk -v so="$so" '$1 == so && /x86-64/ {print $NF; exit}' <<<"$ldcache")"
done
# Who owns each SONAME link, where ldconfig found it or in the real directory
# (merged /usr: dpkg knows some libraries as /lib/..., others as /usr/lib/...):
# one dpkg-query for all (each call reads dpkg's whole file list).
candidates=()
for so in "${!lib_path[@]}"; do
  [ -n "${lib_path[$so]}" ] || continue
  candidates+=("${lib_path[$so]}" "$(readlink -f "$(dirname "${lib_path[$so]}")")/$so")
done
owners="$(dpkg-query -S "${candidates[@]}" 2>/dev/null || true)"
for so in "${!lib_path[@]}"; do
  [ -n "${lib_path[$so]}" ] || continue
  owner="$(awk -v so="/$so" 'substr($NF, length($NF) - length(so) + 1) == so {sub(/:.*/, "", $1); print $1; exit}' \
    <<<"$owners")"
  # No owner: an alternative (libblas.so.3), declared by its SONAME.
  if [ -z "$owner" ]; then
    grep -qF "$so" <<<"$depends" || fail "Depends lacks $so: $depends"
    continue
  fi
  case "$owner" in libc6 | libgcc-s1 | libstdc++6 | libgomp1) continue ;; esac
  grep -qE "(^|[ ,|])$owner( |,|$)" <<<"$depends" || fail "Depends lacks $owner (for $so): $depends"
done
grep -q "adduser" <<<"$depends" || fail "Depends lacks adduser"
grep -q "libopencv-imgcodecs" <<<"$depends" || fail "Depends lacks the dlopened libopencv-imgcodecs"
for field in Maintainer Description Section; do
  [ -n "$(dpkg-deb --field "$deb" "$field")" ] || fail "no $field"
done
for script in postinst prerm postrm conffiles; do
  grep -qw "$script" <<<"$info" || fail "no $script in the control archive"
done
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/default/faceq ] ||
  fail "conffiles is not /etc/default/faceq"
contents="$(dpkg-deb --contents "$deb" | awk '{print $NF}')"
for f in ./usr/bin/faceq ./usr/share/faceq/models.json ./usr/share/faceq/datasets.json \
  ./usr/share/man/man1/faceq.1.gz ./usr/share/bash-completion/completions/faceq \
  ./usr/share/zsh/vendor-completions/_faceq \
  ./lib/systemd/system/faceq.service ./etc/default/faceq ./usr/share/doc/faceq/copyright; do
  grep -qx -- "$f" <<<"$contents" || fail "the package lacks $f"
done
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/faceq >"$work/faceq.bin"
file "$work/faceq.bin" | grep -q ", stripped" || fail "/usr/bin/faceq is not stripped"
psay "dpkg-deb: Depends ($depends), conffiles and every promised file present"
# Debian's own checker: no error, no warning (its informational tags, e.g.
# the build's hardening flags, are not failures).
lintian --fail-on error,warning --tag-display-limit 0 "$deb" >"$work/lintian.log" 2>&1 || {
  cat "$work/lintian.log" >&2
  fail "lintian"
}
psay "lintian: no error or warning"

# 3. Installed.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 \
  "$deb" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  fail "apt-get install $deb"
}
[ "$(/usr/bin/faceq --version)" = "faceq $version" ] || fail "installed faceq --version: $(/usr/bin/faceq --version)"
/usr/bin/faceq -v --version | grep -qx "data: /usr/share/faceq" ||
  fail "the installed faceq does not use /usr/share/faceq: $(/usr/bin/faceq -v --version)"
man -l /usr/share/man/man1/faceq.1.gz 2>"$work/man.err" | grep -q "faceq gallery export" ||
  fail "man -l of the installed page: $(cat "$work/man.err")"
[ ! -s "$work/man.err" ] || fail "man -l warns: $(cat "$work/man.err")"
lint="$(mandoc -T lint -W all /usr/share/man/man1/faceq.1.gz 2>&1 || true)"
[ -z "$lint" ] || fail "mandoc -T lint: $lint"
getent passwd faceq | grep -q ":/var/lib/faceq:" || fail "no system user faceq with home /var/lib/faceq"
[ "$(stat -c '%U %a' /var/lib/faceq)" = "faceq 750" ] || fail "/var/lib/faceq: $(stat -c '%U %a' /var/lib/faceq)"
[ "$(stat -c '%U %a' /etc/faceq/api-key)" = "root 600" ] || fail "/etc/faceq/api-key: $(stat -c '%U %a' /etc/faceq/api-key)"
[ "$(wc -c </etc/faceq/api-key)" -eq 64 ] || fail "the API key is not 64 hex digits"
psay "installed: $(/usr/bin/faceq --version), man page lint-clean, user faceq, /var/lib/faceq, API key"

# Installed again over itself (as an upgrade runs the scripts): an edited
# conffile and the key stay, without a question (stdin is /dev/null).
key_before="$(cat /etc/faceq/api-key)"
echo "# edited by check_package.sh" | $sudo tee -a /etc/default/faceq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --reinstall --no-install-recommends \
  -o DPkg::Lock::Timeout=300 "$deb" </dev/null >"$work/reinstall.log" 2>&1 || {
  cat "$work/reinstall.log" >&2
  fail "apt-get install --reinstall $deb"
}
grep -q "^# edited by check_package.sh" /etc/default/faceq || fail "reinstalling lost the edit of /etc/default/faceq"
[ "$(cat /etc/faceq/api-key)" = "$key_before" ] || fail "reinstalling changed the API key"
psay "reinstalled: the edited /etc/default/faceq and the API key kept"

# 4. Models into the service's state directory, as the README says.
$sudo env FACEQ_MIRROR="$FACEQ_MIRROR" runuser -u faceq -- faceq --home /var/lib/faceq download models \
  >"$work/download.jsonl" 2>"$work/download.err" || {
  cat "$work/download.err" >&2
  fail "faceq --home /var/lib/faceq download models as faceq"
}
for role in detector_yunet embedder landmarks; do
  grep "\"role\":\"$role\"" "$work/download.jsonl" | grep -q '"status":"installed"' || fail "no $role model installed"
done
for f in face_detection_yunet_2023mar.onnx faceapi_resnet_v1.dat; do
  [ "$(stat -c %U "/var/lib/faceq/models/$f" 2>/dev/null)" = faceq ] || fail "/var/lib/faceq/models/$f missing or not faceq's"
done
psay "models downloaded as faceq into /var/lib/faceq/models ($(du -sh /var/lib/faceq/models | cut -f1))"

# 5. The unit's command line, as systemd would run it.
unit=/lib/systemd/system/faceq.service
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
mkdir "$work/credentials"
install -o faceq -m 0400 /etc/faceq/api-key "$work/credentials/api-key"
chown faceq "$work/credentials"
(
  set -a
  source /etc/default/faceq
  set +a
  FACEQ_PORT=0 # any free port: this machine may run a faceq already
  FACEQ_HOME="$(sed -n 's/^Environment=FACEQ_HOME=//p' "$unit")"
  eval "set -- ${exec_start//%d/$work/credentials}"
  # setpriv execs (runuser would fork): SIGTERM reaches faceq itself.
  exec setpriv --reuid=faceq --regid=faceq --init-groups -- env FACEQ_HOME="$FACEQ_HOME" "$@"
) 2>"$work/serve.err" &
serve_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/serve.err")"
  grep -q "ready:" "$work/serve.err" && break
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.2
done
grep -q "ready:.*API key required" "$work/serve.err" || {
  cat "$work/serve.err" >&2
  fail "the unit's ExecStart did not get ready with the API key"
}
key="$(cat /etc/faceq/api-key)"
health="$(curl -sS "http://127.0.0.1:$port/health")"
[ "$health" = '{"status":"ok"}' ] || fail "/health: $health"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/stats")" = 401 ] || fail "/stats without the key is not 401"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $key" "http://127.0.0.1:$port/stats")" = 200 ] ||
  fail "/stats with the key is not 200"
kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM: $(tail -n 3 "$work/serve.err")"
psay "the unit's ExecStart as faceq: ready on port $port with the key, /health ok, /stats 401 without the key, 200 with it, exit 0 on SIGTERM"

# 6. The unit, as systemd reads it.
verify="$(systemd-analyze verify "$unit" 2>&1 || true)"
[ -z "$verify" ] || fail "systemd-analyze verify $unit: $verify"
psay "systemd-analyze verify: clean"

# 7. The completion: `faceq an<TAB>` and the like, in plain bash and with bash-completion.
mkdir -p "$work/photos/album" && touch "$work/photos/a.jpg"
cat >"$work/complete.sh" <<'EOF'
# complete WORD...: what bash offers for the last word (COMP_* as readline sets them).
complete_line() {
  COMP_WORDS=("$@")
  COMP_CWORD=$(($# - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  local fn
  fn="$(complete -p faceq | sed -n 's/.*-F \([^ ]*\) .*/\1/p')"
  "$fn" faceq "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  printf '%s\n' "${COMPREPLY[@]}" | sort | paste -sd' ' -
}
expect() {
  local want="$1" got
  shift
  got="$(complete_line "$@")"
  [ "$got" = "$want" ] || { echo "'$*<TAB>' gives '$got', not '$want'"; exit 1; }
}
[ "$1" = plain ] || source /usr/share/bash-completion/bash_completion
source /usr/share/bash-completion/completions/faceq
cd "$2"
expect analyze faceq an
expect "export" faceq gallery ex
expect "list" faceq models l
expect "--detector" faceq analyze --det
expect "yunet" faceq analyze --detector y
expect "always" faceq --color al
expect "photos/album" faceq bench detection photos/al
expect "photos/a.jpg photos/album" faceq analyze -r photos/a
EOF
for mode in plain bash-completion; do
  bash --norc --noprofile "$work/complete.sh" "$mode" "$work" || fail "completion ($mode bash)"
done
# zsh: a real interactive zsh in a pseudo-terminal (zsh/zpty), the packaged
# _faceq autoloaded by compinit from the vendor directory, asked for TABs.
cat >"$work/complete.zsh" <<'EOF'
zmodload zsh/zpty
zpty z 'PS1="> " TERM=dumb zsh -f -i'
zpty -w z 'autoload -U compinit && compinit -u -D && echo LOADED'
zpty -r z out '*LOADED*'
drain() { local o; sleep 0.3; while zpty -r -t z o; do :; done; }
drain
# expect LINE WANT: types LINE and TAB; the terminal must end with WANT within 10 s.
expect() {
  local out="" o deadline=$((SECONDS + 10))
  zpty -w -n z "$1"$'\t'
  while ((SECONDS < deadline)) && [[ $out != *"$2" ]]; do
    if zpty -r -t z o; then out+=$o; else sleep 0.1; fi
  done
  zpty -w -n z $'\C-u'
  drain
  [[ $out == *"$2" ]] || { print -r -- "zsh: '$1<TAB>' gives ${(q+)out}, not '$2'"; exit 1; }
}
expect 'faceq an' 'faceq analyze '
expect 'faceq gallery ex' 'faceq gallery export '
expect 'faceq analyze --detector y' 'faceq analyze --detector yunet '
zpty -d z
EOF
[ -f /usr/share/zsh/vendor-completions/_faceq ] || fail "no /usr/share/zsh/vendor-completions/_faceq"
(cd "$work" && timeout 60 zsh -f "$work/complete.zsh") || fail "completion (zsh)"
psay "completion: faceq an<TAB> = analyze, nested subcommands, options, values and paths: bash (plain and with bash-completion) and zsh"

# 8. Purged, nothing left.
$sudo apt-get purge -y -q -o DPkg::Lock::Timeout=300 faceq >"$work/purge.log" 2>&1 || {
  cat "$work/purge.log" >&2
  fail "apt-get purge faceq"
}
$sudo deluser --system faceq >/dev/null 2>&1
getent group faceq >/dev/null && $sudo delgroup --system faceq >/dev/null
for f in /usr/bin/faceq /usr/share/faceq /lib/systemd/system/faceq.service /etc/default/faceq /etc/faceq /var/lib/faceq; do
  [ ! -e "$f" ] || fail "$f is left after purge"
done
psay "purged: nothing of the package left, user faceq removed"
