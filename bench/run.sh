#!/usr/bin/env bash
# The scanner benchmark in one command (see bench/README.md).
#
#   bench/run.sh [--bin PATH] [run.py options...]
#
# Without --bin it builds a Release scanner in build-bench/ first: a
# benchmark of a Debug or sanitizer build would measure the wrong thing.
# Everything runs inside the lab's private network namespace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

args=("$@")
have_bin=0
for a in "$@"; do
  case $a in --bin | --bin=*) have_bin=1 ;; esac
done
if [ $have_bin = 0 ]; then
  build="$root/build-bench"
  echo "bench: building a Release scanner in $build" >&2
  cmake -S "$root" -B "$build" -DSTLS_TESTS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j "$(nproc)" >/dev/null
  args=(--bin "$build/scanner/starttls-scan" "${args[@]}")
fi

exec "$root/tests/lab/netns-run.sh" /usr/bin/python3 "$here/run.py" \
  --command "bench/run.sh${*:+ $*}" "${args[@]}"
