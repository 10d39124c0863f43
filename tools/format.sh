#!/usr/bin/env bash
# tools/format.sh [--check] — clang-format 14 (Debian package clang-format)
# with the committed .clang-format over every tracked .cpp and .hpp file.
# Without --check it formats them in place; with --check it changes nothing
# and fails, naming the files that are not formatted (tools/test.sh runs it).
# Another clang-format version formats differently, so it must be 14.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: tools/format.sh [--check]" >&2; exit 2 ;;
esac

say() { printf 'format: %s\n' "$*" >&2; }

command -v clang-format >/dev/null || { say "error: no clang-format (Debian package clang-format, version 14)"; exit 1; }
version="$(clang-format --version)"
[[ "$version" == *"version 14."* ]] || { say "error: need clang-format 14, found: $version"; exit 1; }

mapfile -d '' files < <(git ls-files -z -- '*.cpp' '*.hpp')
[ ${#files[@]} -gt 0 ] || { say "error: no tracked .cpp/.hpp files (not a git checkout?)"; exit 1; }

if [ "$check" = 0 ]; then
  clang-format -i --style=file "${files[@]}"
  say "formatted ${#files[@]} files"
  exit 0
fi

# One clang-format for all files (per file is ~10x slower); its diagnostics
# ("FILE:LINE:COL: error: code should be clang-formatted") name the files.
out="$(clang-format --dry-run -Werror --style=file "${files[@]}" 2>&1)" && rc=0 || rc=$?
if [ "$rc" -ne 0 ]; then
  mapfile -t bad < <(printf '%s\n' "$out" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' | sort -u)
  if [ ${#bad[@]} -eq 0 ]; then
    printf '%s\n' "$out" >&2
    say "error: clang-format failed (exit code $rc)"
    exit 1
  fi
  say "${#bad[@]} of ${#files[@]} files are not clang-formatted (fix: bash tools/format.sh):"
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
say "all ${#files[@]} .cpp/.hpp files are clang-formatted"
