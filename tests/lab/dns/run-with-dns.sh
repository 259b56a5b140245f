#!/usr/bin/env bash
# Run a command with the lab DNS server up, inside the lab namespace:
#   tests/lab/netns-run.sh bash tests/lab/dns/run-with-dns.sh [--pki] CMD [ARGS...]
# The server lives in $STLS_LAB_TMP/dns and is stopped when CMD ends; the
# command's exit status is returned. With --pki, a lab PKI is made first
# (tests/lab/mkcerts.sh into $STLS_LAB_TMP/pki, exported as STLS_LAB_PKI),
# so the signed DANE zones carry TLSA records for its certificates.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ -n "${STLS_LAB_TMP:-}" ] || { echo "run-with-dns: STLS_LAB_TMP unset; run via tests/lab/netns-run.sh" >&2; exit 1; }
if [ "${1:-}" = --pki ]; then
  shift
  export STLS_LAB_PKI="$STLS_LAB_TMP/pki"
  bash "$here/../mkcerts.sh" "$STLS_LAB_PKI"
fi
[ $# -ge 1 ] || { echo "usage: run-with-dns.sh [--pki] CMD [ARGS...]" >&2; exit 1; }

dir="$STLS_LAB_TMP/dns"
bash "$here/start-dns.sh" "$dir"
trap 'bash "$here/stop-dns.sh" "$dir"' EXIT
set +e
"$@"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ -s "$dir/unbound.log" ]; then
  echo "run-with-dns: command failed ($rc); unbound log tail:" >&2
  tail -n 20 "$dir/unbound.log" >&2
  if [ -s "$dir/nsd.log" ]; then
    echo "run-with-dns: nsd log tail:" >&2
    tail -n 10 "$dir/nsd.log" >&2
  fi
fi
exit "$rc"
