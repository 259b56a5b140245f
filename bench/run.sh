#!/usr/bin/env bash
# The scanner benchmark in one command (see bench/README.md).
#
#   bench/run.sh [--bin PATH [--stock-bin PATH]] [run.py options...]
#
# Without --bin it builds two Release scanners first, in build-bench/ (the
# tuned mbedTLS, the default) and build-bench-stock/ (-DSTLS_MBEDTLS=stock,
# the system's mbedTLS), each with its stls-floor: a benchmark of a Debug or
# sanitizer build would measure the wrong thing. Everything runs inside the
# lab's private network namespace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

args=("$@")
have_bin=0
for a in "$@"; do
  case $a in --bin | --bin=*) have_bin=1 ;; esac
done
# The fast peer (bench/fastpeer.c) needs OpenSSL's headers; without them
# its phases are skipped.
if [ ! -f /usr/include/openssl/ssl.h ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "bench: installing libssl-dev for bench/fastpeer" >&2
  apt-get install -y -q libssl-dev >/dev/null
fi
if [ $have_bin = 0 ]; then
  for kind in tuned stock; do
    build="$root/build-bench"
    [ $kind = tuned ] || build="$root/build-bench-stock"
    echo "bench: building a Release scanner ($kind mbedTLS) in $build" >&2
    cmake -S "$root" -B "$build" -DSTLS_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
      -DSTLS_MBEDTLS=$kind >/dev/null
    cmake --build "$build" -j "$(nproc)" >/dev/null
  done
  args=(--bin "$root/build-bench/scanner/starttls-scan"
        --stock-bin "$root/build-bench-stock/scanner/starttls-scan" "${args[@]}")
fi

exec "$root/tests/lab/netns-run.sh" /usr/bin/python3 "$here/run.py" \
  --command "bench/run.sh${*:+ $*}" "${args[@]}"
