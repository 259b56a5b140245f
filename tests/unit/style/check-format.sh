#!/usr/bin/env bash
# Every C source and header of the project is in the style of .clang-format.
# Prints the first differences and fails when one file is not; fix with
#   clang-format -i FILE
# Usage: check-format.sh SOURCE_DIR [CLANG_FORMAT]
set -euo pipefail
src=${1:?usage: check-format.sh SOURCE_DIR [CLANG_FORMAT]}
cf=${2:-clang-format}
cd "$src"
command -v "$cf" >/dev/null || { echo "check-format: $cf not found" >&2; exit 1; }
[ -f .clang-format ] || { echo "check-format: no .clang-format in $src" >&2; exit 1; }
mapfile -t files < <(find scanner include tests bench targets \
  -path tests/fuzz/corpus -prune -o \
  -type f \( -name '*.c' -o -name '*.h' \) -print 2>/dev/null | LC_ALL=C sort)
[ "${#files[@]}" -gt 0 ] || { echo "check-format: no C files found" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
bad=0
for f in "${files[@]}"; do
  if ! "$cf" --style=file "$f" | diff -u --label "$f" --label "$f (formatted)" "$f" - >"$tmp"; then
    bad=$((bad + 1))
    [ "$bad" -le 5 ] && head -40 "$tmp"
  fi
done
if [ "$bad" -gt 0 ]; then
  echo "check-format: $bad of ${#files[@]} files differ from .clang-format ($($cf --version))" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
