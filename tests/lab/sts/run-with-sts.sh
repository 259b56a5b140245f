#!/usr/bin/env bash
# Run a command with the MTA-STS lab's nginx up, inside the lab namespace
# (the lab DNS must be up too, see tests/lab/dns/run-with-dns.sh):
#   tests/lab/netns-run.sh bash tests/lab/dns/run-with-dns.sh \
#       bash tests/lab/sts/run-with-sts.sh CMD [ARGS...]
# nginx lives in $STLS_LAB_TMP/sts and is stopped when CMD ends. CMD finds
# the directory in $STLS_STS_LAB (the trust store is ca-bundle.pem there);
# its exit status is returned.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: run-with-sts.sh CMD [ARGS...]" >&2; exit 1; }
[ -n "${STLS_LAB_TMP:-}" ] || { echo "run-with-sts: STLS_LAB_TMP unset; run via tests/lab/netns-run.sh" >&2; exit 1; }

dir="$STLS_LAB_TMP/sts"
bash "$here/start-sts.sh" "$dir"
trap 'bash "$here/stop-sts.sh" "$dir"' EXIT
set +e
STLS_STS_LAB="$dir" "$@"
rc=$?
set -e
if [ "$rc" -ne 0 ] && [ -s "$dir/error.log" ]; then
  echo "run-with-sts: command failed ($rc); nginx log tail:" >&2
  tail -n 20 "$dir/error.log" >&2
fi
exit "$rc"
