#!/usr/bin/env bash
# Run a command inside a private network + mount + PID namespace.
#
# Inside: only the loopback interface (up), the lab's IPv6 test addresses on
# it, no default route (so an off-box address is really "Network is
# unreachable"), and a resolv.conf pointing at the lab resolver address, so no
# DNS lookup can leave the machine. The command runs as PID 1's child; when
# it exits, every process it started dies with the namespace.
#
# Usage: netns-run.sh CMD [ARGS...]
# Already inside a lab namespace (STLS_IN_NETNS=1)? Then just run CMD.
set -euo pipefail

if [ "${STLS_IN_NETNS:-}" = 1 ]; then
  exec "$@"
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "netns-run: the lab needs root (unshare --net); skipping is not an option" >&2
  exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
exec unshare --net --mount --pid --fork --mount-proc --kill-child=SIGKILL \
  env STLS_IN_NETNS=1 bash "$here/netns-init.sh" "$@"
