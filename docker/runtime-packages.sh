#!/usr/bin/env bash
# The Debian packages that hold the shared libraries BINARY loads, one per
# line: what the image's runtime stage must install.
#
#   docker/runtime-packages.sh BINARY
#
# Fails when a library is not found or belongs to no package, so the image
# build stops instead of shipping a binary that cannot start.
set -euo pipefail
bin=${1:?usage: runtime-packages.sh BINARY}
if ldd "$bin" | grep -q 'not found'; then
  ldd "$bin" >&2
  echo "runtime-packages: $bin has unresolved libraries" >&2
  exit 1
fi
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
  real=$(realpath "$lib")
  # dpkg knows a file under the path its package installed it at: /usr/lib
  # on Debian 13, /lib for some packages on older releases.
  pkg=$(dpkg-query -S "$real" 2>/dev/null || dpkg-query -S "${real#/usr}" 2>/dev/null ||
        dpkg-query -S "$lib" 2>/dev/null || true)
  if [ -z "$pkg" ]; then
    echo "runtime-packages: no package owns $lib" >&2
    exit 1
  fi
  echo "${pkg%%:*}"
done | sort -u
