#!/usr/bin/env bash
# The service benchmark (bench/serve.py): builds a Release binary in
# build-bench/ unless --bin is given, runs on loopback inside the lab
# namespace, appends its section to bench/RESULTS.md with --write.
#   bench/serve.sh [--bin PATH] [--write] [serve.py options]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bin="" write=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --write) write=(--write "$here/RESULTS.md"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$bin" ]; then
  cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release -DSTLS_TESTS=OFF >/dev/null
  cmake --build "$repo/build-bench" -j "$(nproc)" --target starttls-scan >/dev/null
  bin="$repo/build-bench/scanner/starttls-scan"
fi
exec bash "$repo/tests/lab/netns-run.sh" /usr/bin/python3 "$here/serve.py" --bin "$bin" \
  "${write[@]}" "${args[@]}"
