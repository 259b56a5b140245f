#!/usr/bin/env bash
# Install everything starttls-scan needs to build, test and run its lab.
#
# Debian 12 ("bookworm") ships mbedTLS 2.28, which has no TLS 1.3. We take
# mbedTLS 3.6 from Debian 13 ("trixie") and pin that suite at priority 100,
# so apt never upgrades anything else from it. The trixie source entry is
# derived from the machine's own Debian source configuration (same mirror,
# same keyring), so no archive host is hard-coded here.
#
# On Debian 13+ / Ubuntu 25.04+ the distribution's packages are used as is.
#
# The scanner links a tuned mbedTLS statically: scripts/build-mbedtls.sh
# rebuilds the installed libmbedtls-dev version from Debian's own source
# package (hence the deb-src entry, pinned like the binary one) with the
# Everest x25519 and a deeper chain limit, once, into a cache directory.
# Idempotent: a second run changes nothing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# --no-lab: only what building needs (the container image's build stage);
# the lab's servers and tools are for the test suite.
with_lab=1
case "${1:-}" in
  --no-lab) with_lab=0 ;;
  "") ;;
  *) echo "usage: install-deps.sh [--no-lab]" >&2; exit 2 ;;
esac

BUILD_PKGS="build-essential cmake pkg-config git dpkg-dev libuv1-dev libcjson-dev libc-ares-dev libcmocka-dev libidn2-dev libsqlite3-dev"
# The lab: real Postfix (and posttls-finger), openssl for the test CA,
# unbound/ldnsutils for DNS, python3 + jsonschema for scripted peers and
# schema validation, iproute2 + util-linux for namespaces, valgrind, nginx
# for the MTA-STS policy hosts (tests/lab/sts; it is only ever started
# inside the lab namespace).
LAB_PKGS="postfix openssl unbound nsd ldnsutils python3 python3-jsonschema iproute2 util-linux procps jq valgrind time nginx"
# The service's tests: its OpenAPI document is read with python3-yaml and
# answers checked with jsonschema (Debian 12 has no python3-openapi-core,
# and trixie's pulls libc6 2.41 and Python 3.13: see README), /metrics goes
# through python3-prometheus-client's parser (and promtool, below), and the
# status page is loaded in headless chromium.
LAB_PKGS="$LAB_PKGS python3-yaml python3-prometheus-client chromium curl"
# The Kubernetes Job is checked against the API schema with the models of
# python3-kubernetes (docker/validate-k8s.py).
LAB_PKGS="$LAB_PKGS python3-kubernetes"
# Packaging and docs checks: the .deb build (debhelper, dpkg-dev), lintian,
# and man/groff to render the man page with warnings on; clang-format for the
# style check (the test "format").
PKG_PKGS="debhelper dpkg-dev lintian man-db groff-base clang-format"
# --no-lab: scripts/build-mbedtls.sh still runs mbedTLS's config.py.
if [ "$with_lab" = 0 ]; then
  LAB_PKGS="python3"
  PKG_PKGS=""
fi

. /etc/os-release
codename="${VERSION_CODENAME:-}"

mbedtls_ok() {
  # 3.6.1 or newer installed?
  local v
  v=$(dpkg-query -W -f='${Version}' libmbedtls-dev 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 3.6.1
}

# Where the machine's Debian archive is, from its own apt sources: prints
# "URIS|SIGNED-BY" for the stanza that carries the release's main suite.
archive_of_machine() {
  local uris="" signed=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # deb822: take the stanza that carries the main suite (not security).
    uris=$(awk -v RS= '/Suites:[^\n]*'"$codename"'([ \n]|$)/ && !/-security/ {
             match($0, /URIs:[^\n]*/); print substr($0, RSTART+6, RLENGTH-6); exit }' \
           /etc/apt/sources.list.d/debian.sources | xargs)
    signed=$(awk -v RS= '/Suites:[^\n]*'"$codename"'([ \n]|$)/ && !/-security/ {
             if (match($0, /Signed-By:[^\n]*/)) print substr($0, RSTART+11, RLENGTH-11); exit }' \
           /etc/apt/sources.list.d/debian.sources | xargs)
  fi
  if [ -z "$uris" ] && [ -f /etc/apt/sources.list ]; then
    # one-line format: "deb [opts] URI bookworm main"
    uris=$(awk -v c="$codename" '$1=="deb" { for (i=2;i<=NF;i++) if ($i==c) { print $(i-1); exit } }' \
           /etc/apt/sources.list)
  fi
  if [ -z "$uris" ]; then
    echo "install-deps: cannot find the Debian archive in the apt sources" >&2
    exit 1
  fi
  [ -n "$signed" ] || signed=/usr/share/keyrings/debian-archive-keyring.gpg
  printf '%s|%s\n' "$uris" "$signed"
}

# Write FILE with CONTENT unless it already says exactly that; a change
# means the package lists must be read again.
put_file() {
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
    printf '%s\n' "$2" >"$1"
    need_update=1
  fi
}

# Binary and/or source packages of SUITE from the machine's archive. On
# Debian 12 the suite is trixie, pinned at 100 so only what is asked for by
# name comes from it; on Debian 13+ it is the machine's own release, only
# the source entry is new (the binaries are already configured) and no pin
# is written.
add_suite_source() {
  local suite=$1 types=$2 name=$3 pin=$4 a
  a=$(archive_of_machine)
  put_file "/etc/apt/sources.list.d/$name.sources" \
    "$(printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s' \
        "$types" "${a%%|*}" "$suite" "${a#*|}")"
  if [ "$pin" = pin ]; then
    put_file "/etc/apt/preferences.d/$name" \
      "$(printf 'Package: *\nPin: release n=%s\nPin-Priority: 100' "$suite")"
  fi
}

need_update=1
case "$codename" in
  bookworm)
    add_suite_source trixie "deb deb-src" starttls-scan-trixie pin
    ;;
  *)
    add_suite_source "$codename" deb-src starttls-scan-src nopin
    ;;
esac

apt_update() {
  if [ "$need_update" -eq 1 ]; then
    apt-get update -qq
    need_update=0
  fi
}

# Postfix asks debconf questions; "No configuration" leaves it unconfigured
# and starts no service. The lab writes its own config directory.
if [ "$with_lab" = 1 ] && ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "ok installed"; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi

# Installing postfix, unbound, nsd or nginx must not start them: the lab
# runs its own instances inside a private namespace. Where the machine has
# no policy-rc.d, one that denies every service start is in place for the
# duration of this script.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

missing=""
for p in $BUILD_PKGS $LAB_PKGS $PKG_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt_update
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi

if ! mbedtls_ok; then
  apt_update
  if [ "$codename" = bookworm ]; then
    apt-get install -y -qq --no-install-recommends -t trixie libmbedtls-dev
  else
    apt-get install -y -qq --no-install-recommends libmbedtls-dev
  fi
fi

if ! mbedtls_ok; then
  echo "install-deps: libmbedtls-dev >= 3.6.1 could not be installed" >&2
  exit 1
fi

# llhttp (the MTA-STS policy fetch parses HTTP with it): Debian 12 has no
# package, so it comes from trixie like mbedTLS, pinned the same way.
if ! dpkg-query -W -f='${Status}' libllhttp-dev 2>/dev/null | grep -q "ok installed"; then
  apt_update
  if [ "$codename" = bookworm ]; then
    apt-get install -y -qq --no-install-recommends -t trixie libllhttp-dev
  else
    apt-get install -y -qq --no-install-recommends libllhttp-dev
  fi
fi
# The tuned mbedTLS the scanner links by default (CMake STLS_MBEDTLS=tuned):
# rebuilt once from Debian's source package of the version installed above,
# then cached (scripts/build-mbedtls.sh says how and where).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if ! bash "$here/build-mbedtls.sh" --check 2>/dev/null; then
  apt_update
  bash "$here/build-mbedtls.sh"
fi
# promtool (the service's metrics test runs `promtool check metrics`): it
# comes in Debian 12's prometheus package together with the server, which
# the lab does not want installed, so only promtool is taken out of the
# .deb into the cache. CMake finds it there (STLS_PROMTOOL).
promtool_dir=${STLS_MBEDTLS_CACHE:-/var/cache/starttls-scan}/promtool
if [ "$with_lab" = 1 ] && ! "$promtool_dir/promtool" --version >/dev/null 2>&1; then
  apt_update
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq prometheus && dpkg -x prometheus_*.deb x)
  mkdir -p "$promtool_dir"
  install -m 755 "$tmp/x/usr/bin/promtool" "$promtool_dir/promtool"
  rm -rf "$tmp"
  "$promtool_dir/promtool" --version >/dev/null
fi
# c-ares 1.34 (the DNS answers are parsed with its record API): the
# system's where it is new enough (Debian 13); on Debian 12, whose c-ares is
# 1.18, the static library and headers of trixie's libc-ares-dev, extracted
# once into the cache (scripts/fetch-cares.sh says how and why).
if ! pkg-config --atleast-version=1.34 libcares 2>/dev/null; then
  if ! bash "$here/fetch-cares.sh" --check 2>/dev/null; then
    apt_update
    bash "$here/fetch-cares.sh"
  fi
fi
echo "install-deps: ok (mbedTLS $(dpkg-query -W -f='${Version}' libmbedtls-dev), tuned build in ${STLS_MBEDTLS_CACHE:-/var/cache/starttls-scan}/mbedtls-tuned)"
