#!/usr/bin/env bash
# tools/pg_cluster.sh — a throw-away PostgreSQL server for faceq's tests and
# benchmarks: Debian's postgresql-15 binaries, a new cluster in DIR, owned and
# run by an unprivileged user (`postgres` when called as root: initdb refuses
# root), listening on 127.0.0.1 at a free port and on a socket in DIR, trust
# authentication (nothing but this machine can reach it), superuser `faceq`.
#
#   tools/pg_cluster.sh start DIR   creates and starts it; prints the URL of its
#                                   `postgres` database (also kept in DIR/url)
#   tools/pg_cluster.sh stop DIR    stops it (fast shutdown) and deletes DIR
#
# Environment: FACEQ_PG_SETTINGS, extra `-c name=value` server settings
# (default none: the server's own defaults, fsync and synchronous_commit on).
# Errors: a one-line message and exit 1 (the server's log is in DIR/server.log
# and is printed when starting fails).
set -euo pipefail

die() { printf 'pg_cluster: %s\n' "$*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: pg_cluster.sh start|stop DIR"
cmd="$1"
dir="$2"

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -x "$bin/initdb" ] || die "no PostgreSQL server binaries in /usr/lib/postgresql (install postgresql-15)"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    [ ! -e "$dir/data" ] || die "'$dir' holds a cluster already"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U faceq --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; die "initdb failed in '$dir'"; }
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # shellcheck disable=SC2086  # FACEQ_PG_SETTINGS is a list of -c options
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 ${FACEQ_PG_SETTINGS:-}" \
        start >/dev/null; then
      cat "$dir/server.log" >&2 || true
      die "the server in '$dir' did not start"
    fi
    echo "postgresql://faceq@127.0.0.1:$port/postgres" | tee "$dir/url"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *) die "unknown command '$cmd' (start|stop)";;
esac
