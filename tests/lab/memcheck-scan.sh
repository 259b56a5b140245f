#!/usr/bin/env bash
# Valgrind over the scanner itself (the unit tests have their own memcheck
# runs): inside the lab, scan every lab domain with every feature on (DANE,
# MTA-STS, protocol versions, several trust stores), then probe the fault
# endpoints that exercise the fallbacks. Any valgrind error or leak fails.
# Usage (inside tests/lab/netns-run.sh): memcheck-scan.sh PATH-TO-starttls-scan
set -euo pipefail
bin=${1:?usage: memcheck-scan.sh PATH-TO-starttls-scan}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ "${STLS_IN_NETNS:-}" = 1 ] || { echo "memcheck-scan: run me inside tests/lab/netns-run.sh" >&2; exit 1; }
lab="$STLS_LAB_TMP/lab"
"$here/lab.sh" start "$lab" >/dev/null
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --track-origins=no -q)
out="$lab/memcheck.ndjson"
rc=0
"${vg[@]}" "$bin" scan -q -w 2 -i "$top/targets/lab.txt" --dane --mta-sts --versions \
  --ipv6 on --ca-file "$lab/sts/ca-bundle.pem" --trust-store b="$lab/pki/ca-b.pem" \
  --intermediates "$lab/pki/intermediates.pem" --postfix-policy "$lab/policy.txt" \
  --summary "$lab/summary.json" -o "$out" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "FAIL scan under valgrind (exit $rc)"
else
  echo "ok scan under valgrind"
fi
n=$(grep -c . "$out" || true)
want=$(grep -v '^[[:space:]]*#' "$top/targets/lab.txt" | grep -c '[^[:space:]]')
if [ "$n" -ne "$want" ]; then
  echo "FAIL scan wrote $n records, want $want"
  rc=1
else
  echo "ok $n records"
fi
/usr/bin/python3 "$top/tests/lib/validate.py" "$out" "$lab/summary.json" >/dev/null || {
  echo "FAIL records do not validate"; rc=1; }
# The probe's fallbacks: TLS 1.2-only RSA (reconnect), TLS 1.0 (hand-built
# hello), a refused connection and an unreachable address.
for target in "mx-tls12.lab.test --ip 127.0.25.6" "mx-tls10.lab.test --ip 127.0.25.14" \
              "127.0.27.1" "192.0.2.7 --connect-timeout 1"; do
  # shellcheck disable=SC2086
  if "${vg[@]}" "$bin" probe $target --versions --ca-file "$lab/pki/ca-a.pem" >/dev/null; then
    echo "ok probe $target under valgrind"
  else
    echo "FAIL probe $target under valgrind"
    rc=1
  fi
done
"$here/lab.sh" stop "$lab" >/dev/null 2>&1 || true
if [ "$rc" -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit "$rc"
