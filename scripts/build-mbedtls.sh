#!/usr/bin/env bash
# Build the tuned mbedTLS that starttls-scan links statically (CMake option
# STLS_MBEDTLS=tuned, the default), once, into a cache directory.
#
#   scripts/build-mbedtls.sh            (run by scripts/install-deps.sh, as root)
#   scripts/build-mbedtls.sh --check    exit 0 if the cache is complete
#
# The source is Debian's own source package of the installed libmbedtls-dev
# (same version, same Debian patches, same options Debian sets in
# debian/rules), with two changes:
#   - MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED: the formally verified x25519 in
#     3rdparty/everest, about twice as fast as the generic bignum code. The
#     Debian packaging takes 3rdparty/ out of the CMake build; it goes back.
#   - MBEDTLS_X509_MAX_INTERMEDIATE_CA 9: Postfix's default verify depth
#     (smtp_tls_scert_verifydepth), instead of mbedTLS's 8.
#
# Output: $STLS_MBEDTLS_CACHE/mbedtls-VERSION-RECIPE/{include,lib} and the
# symlink $STLS_MBEDTLS_CACHE/mbedtls-tuned pointing at it (default cache:
# /var/cache/starttls-scan). RECIPE is a hash of this script, so editing it
# rebuilds; a new libmbedtls-dev version rebuilds too. Nothing is rebuilt
# when the directory is complete. Takes about a minute on 2 CPUs.
set -euo pipefail

cache=${STLS_MBEDTLS_CACHE:-/var/cache/starttls-scan}
version=$(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null || true)
if [ -z "$version" ]; then
  echo "build-mbedtls: libmbedtls-dev is not installed (run scripts/install-deps.sh)" >&2
  exit 1
fi
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dest="$cache/mbedtls-$version-$recipe"
link="$cache/mbedtls-tuned"

# --check: exit 0 if the cache is complete for this version and recipe.
if [ "${1:-}" = --check ]; then
  [ -f "$dest/.complete" ] && [ "$(readlink "$link" 2>/dev/null)" = "$(basename "$dest")" ]
  exit
fi

if [ -f "$dest/.complete" ]; then
  [ "$(readlink "$link" 2>/dev/null)" = "$(basename "$dest")" ] ||
    ln -sfn "$(basename "$dest")" "$link"
  echo "build-mbedtls: cached $dest"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get source downloads as the unprivileged _apt user where it can.
chmod 755 "$work"
cd "$work"
echo "build-mbedtls: building mbedTLS $version (Everest x25519, 9 intermediates) in $work" >&2
apt-get source -qq "mbedtls=$version" >/dev/null
src=$(find . -mindepth 1 -maxdepth 1 -type d -name 'mbedtls-*' | head -n1)
[ -n "$src" ] || { echo "build-mbedtls: no source tree unpacked" >&2; exit 1; }
cd "$src"

# Put 3rdparty/ (Everest, p256-m) back into the CMake build.
if ! grep -q '^add_subdirectory(3rdparty)' CMakeLists.txt; then
  sed -i 's/^add_subdirectory(library)$/add_subdirectory(3rdparty)\n&/' CMakeLists.txt
fi
grep -q '^add_subdirectory(3rdparty)' CMakeLists.txt || {
  echo "build-mbedtls: cannot re-add 3rdparty/ to the CMake build" >&2; exit 1; }
[ -f 3rdparty/everest/library/everest.c ] || {
  echo "build-mbedtls: 3rdparty/everest is missing from the source package" >&2; exit 1; }

# Debian's own configuration (every "config.py set" in debian/rules, e.g.
# the threading options), then ours.
for opt in $(sed -n 's/.*scripts\/config\.py set \([A-Z0-9_]*\).*/\1/p' debian/rules); do
  python3 scripts/config.py set "$opt"
done
python3 scripts/config.py set MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED
python3 scripts/config.py set MBEDTLS_X509_MAX_INTERMEDIATE_CA 9

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$work/install" -DCMAKE_INSTALL_LIBDIR=lib \
  -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
  -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DMBEDTLS_FATAL_WARNINGS=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
cmake --install build >/dev/null

# The configuration we asked for is the one installed.
grep -q '^#define MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED' \
  "$work/install/include/mbedtls/mbedtls_config.h"
grep -q '^#define MBEDTLS_X509_MAX_INTERMEDIATE_CA *9' \
  "$work/install/include/mbedtls/mbedtls_config.h"
for l in mbedtls mbedx509 mbedcrypto everest; do
  [ -f "$work/install/lib/lib$l.a" ] || {
    echo "build-mbedtls: lib$l.a was not built" >&2; exit 1; }
done
printf '%s\n' "$version" >"$work/install/VERSION"
touch "$work/install/.complete"

rm -rf "$dest"
mv "$work/install" "$dest"
ln -sfn "$(basename "$dest")" "$link"
# Older builds (another version or recipe) are no longer used.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'mbedtls-*' ! -path "$dest" \
  -exec rm -rf {} +
echo "build-mbedtls: built $dest"
