#!/usr/bin/env bash
# Fetch c-ares 1.34 for starttls-scan (CMake option STLS_CARES=bundled),
# once, into a cache directory.
#
#   scripts/fetch-cares.sh            (run by scripts/install-deps.sh, as root)
#   scripts/fetch-cares.sh --check    exit 0 if the cache is complete
#
# The DNS answers are parsed with c-ares' record API (ares_dns_parse and
# ares_dns_rr_*), which c-ares 1.34 has and Debian 12's 1.18 does not.
# Debian 13 ("trixie") packages 1.34; its runtime library cannot be
# installed on Debian 12 (it needs glibc 2.38), but the -dev package holds
# a static libcares.a and the headers. This script downloads that one .deb
# with apt-get (signed archive metadata, pinned version), checks its
# SHA-256 against the archive's package list, and extracts the headers and
# libcares.a. The archive calls one glibc 2.38 symbol, __isoc23_strtoul;
# scanner/compat_isoc23.c supplies it (see there).
#
# Output: $STLS_CARES_CACHE/cares-VERSION-RECIPE/{include,lib/libcares.a}
# and the symlink $STLS_CARES_CACHE/cares-bundled pointing at it (default
# cache: /var/cache/starttls-scan). RECIPE is a hash of this script, so
# editing it (say, a new pinned version) fetches again. On a system whose
# own libc-ares-dev is 1.34 or newer (Debian 13, the container image) this
# is not needed: CMake takes the system library.
set -euo pipefail

version=1.34.9-1~deb13u1
cache=${STLS_CARES_CACHE:-/var/cache/starttls-scan}
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
dest="$cache/cares-${version//\~/_}-$recipe"
link="$cache/cares-bundled"

# --check: exit 0 if the cache is complete for this version and recipe.
if [ "${1:-}" = --check ]; then
  [ -f "$dest/.complete" ] && [ "$(readlink "$link" 2>/dev/null)" = "$(basename "$dest")" ]
  exit
fi

if [ -f "$dest/.complete" ]; then
  [ "$(readlink "$link" 2>/dev/null)" = "$(basename "$dest")" ] ||
    ln -sfn "$(basename "$dest")" "$link"
  echo "fetch-cares: cached $dest"
  exit 0
fi

# The archive's own checksum of the package (apt-get download checks it
# too; this makes sure the file we extract is the one we asked for).
want=$(apt-cache show "libc-ares-dev=$version" 2>/dev/null |
         awk '/^SHA256:/ { print $2; exit }')
if [ -z "$want" ]; then
  echo "fetch-cares: libc-ares-dev $version is not in the apt sources" \
       "(run scripts/install-deps.sh, which adds trixie pinned at 100)" >&2
  exit 1
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.cares.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt-get download writes as the unprivileged _apt user where it can.
chmod 755 "$work"
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
cd "$work"
apt-get download -qq "libc-ares-dev=$version" >/dev/null
deb=$(find . -maxdepth 1 -name 'libc-ares-dev_*.deb' | head -n1)
[ -n "$deb" ] || { echo "fetch-cares: download failed" >&2; exit 1; }
got=$(sha256sum "$deb" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "fetch-cares: $deb has SHA-256 $got, the archive says $want" >&2
  exit 1
fi
dpkg-deb -x "$deb" x

mkdir -p out/include out/lib
cp x/usr/include/ares*.h out/include/
a=$(find x/usr/lib -name libcares.a | head -n1)
[ -n "$a" ] || { echo "fetch-cares: no libcares.a in $deb" >&2; exit 1; }
cp "$a" out/lib/libcares.a
grep -Eq '^#define ARES_VERSION_STR +"1\.34\.' out/include/ares_version.h || {
  echo "fetch-cares: the headers are not c-ares 1.34" >&2; exit 1; }
printf '%s\n' "$version" >out/VERSION
touch out/.complete

rm -rf "$dest"
mv out "$dest"
ln -sfn "$(basename "$dest")" "$link"
# Older fetches (another version or recipe) are no longer used.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'cares-*' ! -path "$dest" \
  -exec rm -rf {} +
echo "fetch-cares: extracted $dest"
