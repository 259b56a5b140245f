#!/usr/bin/env bash
# Install and package tests: what an operator gets from `cmake --install`
# and from the .deb.
#
#   install  `cmake --install BUILD` into a scratch DESTDIR installs the
#            binary, the man page, bash completion, the JSON Schema and the
#            docs, and the installed binary runs;
#   deb      `dpkg-buildpackage -us -uc -b` on a copy of the source tree
#            builds a .deb that lintian passes without errors, that installs
#            with dpkg into a scratch root (its own dpkg database), and whose
#            files are the same set, with a man page free of groff warnings.
#
# Usage: test_package.sh SOURCE-DIR BUILD-DIR
# Prints one "ok"/"FAIL" line per check and "N passed, M failed".
set -uo pipefail
src=$(cd "${1:?usage: test_package.sh SOURCE-DIR BUILD-DIR}" && pwd)
build=$(cd "${2:?usage: test_package.sh SOURCE-DIR BUILD-DIR}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/stls-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
  [ -z "${2:-}" ] || sed 's/^/     /' <<<"$2"
}
# check NAME CMD...: the command's exit status decides; its output is shown
# on failure.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$(tail -n 40 <<<"$out")"; fi
}

# The files every installation must have, relative to the prefix /usr.
want_files() {
  cat <<'LIST'
bin/starttls-scan
share/man/man1/starttls-scan.1
share/bash-completion/completions/starttls-scan
share/starttls-scan/starttls-scan.schema.json
share/doc/starttls-scan/README.md
share/doc/starttls-scan/output.md
share/doc/starttls-scan/examples/probe-tls13.json
LIST
}

# has_files ROOT: every wanted file is there (a .gz man page or doc counts).
has_files() {
  local root=$1 f missing=""
  while read -r f; do
    [ -e "$root/usr/$f" ] || [ -e "$root/usr/$f.gz" ] || missing="$missing $f"
  done < <(want_files)
  [ -z "$missing" ] || { echo "missing:$missing"; return 1; }
}

# runs ROOT: the installed binary runs and knows its version.
runs() {
  local v
  v=$("$1/usr/bin/starttls-scan" version) || return 1
  # "starttls-scan X.Y.Z (mbedTLS A.B.C, which build)"
  case "$v" in
    "starttls-scan $(sed -n 's/^project(starttls-scan VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt") (mbedTLS 3."*) ;;
    *) echo "version says '$v'"; return 1 ;;
  esac
  "$1/usr/bin/starttls-scan" help probe | grep >/dev/null '^usage: starttls-scan probe'
}

# man_clean FILE: groff renders the page without a warning.
man_clean() {
  local err
  err=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null) || return 1
  [ -z "$err" ] || { echo "$err"; return 1; }
}

# completes ROOT: the installed completion offers options after "probe --".
completes() {
  bash -c 'source "$1"; COMP_WORDS=(starttls-scan probe --); COMP_CWORD=2; _starttls_scan
           printf "%s\n" "${COMPREPLY[@]}"' _ "$1/usr/share/bash-completion/completions/starttls-scan" |
    grep -x -- --ca-file >/dev/null
}

# --- cmake --install ------------------------------------------------------
inst="$work/install"
check "cmake --install into a DESTDIR" env DESTDIR="$inst" cmake --install "$build" --prefix /usr
check "install: binary, man page, completion, schema, docs" has_files "$inst"
check "install: the installed binary runs" runs "$inst"
check "install: the schema is the source tree's" cmp "$src/docs/starttls-scan.schema.json" \
  "$inst/usr/share/starttls-scan/starttls-scan.schema.json"
check "install: the completion works" completes "$inst"

# --- the .deb -------------------------------------------------------------
deb_src="$work/deb/starttls-scan"
mkdir -p "$deb_src"
# A copy without build trees or VCS data, as a source package would have.
tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$deb_src" -xf -
check "dpkg-buildpackage -us -uc -b" bash -c "cd '$deb_src' && dpkg-buildpackage -us -uc -b"
deb=$(ls "$work"/deb/starttls-scan_*.deb 2>/dev/null | head -n 1)
changes=$(ls "$work"/deb/starttls-scan_*.changes 2>/dev/null | head -n 1)
if [ -z "$deb" ] || [ -z "$changes" ]; then
  fail "a .deb and a .changes were built" "$(ls -l "$work/deb")"
else
  ok "a .deb and a .changes were built: $(basename "$deb")"
  check "lintian: no errors" lintian --fail-on error "$changes"
  root="$work/root"
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
  : >"$root/var/lib/dpkg/status"
  : >"$root/var/lib/dpkg/available"
  # The scratch root has its own, empty dpkg database: the libraries the
  # package depends on are the host's, so dependencies are not checked
  # there; the binary below runs against the host's libraries.
  # --path-include: minimal images tell dpkg to leave out man pages and
  # docs (path-exclude in dpkg.cfg.d); this test wants to see them.
  check "dpkg --root installs the .deb" dpkg --root="$root" --force-depends \
    --path-include='/usr/share/man/*' --path-include='/usr/share/doc/*' -i "$deb"
  check "dpkg knows it installed" bash -c "dpkg --root='$root' -s starttls-scan | grep -qx 'Status: install ok installed'"
  check "deb: binary, man page, completion, schema, docs" has_files "$root"
  check "deb: the installed binary runs" runs "$root"
  check "deb: the man page renders without warnings" man_clean "$root/usr/share/man/man1/starttls-scan.1.gz"
  check "deb: the completion works" completes "$root"
  check "deb: depends on the mbedTLS 3.6 libraries" bash -c \
    "dpkg-deb -f '$deb' Depends | grep -q 'libmbedtls[0-9]* (>= 3.6'"
  check "dpkg --root removes it again" dpkg --root="$root" -r starttls-scan
  check "deb: nothing left after removal" bash -c "[ ! -e '$root/usr/bin/starttls-scan' ]"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
