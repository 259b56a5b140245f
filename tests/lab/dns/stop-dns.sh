#!/usr/bin/env bash
# Stop the lab DNS server started by start-dns.sh DIR (by its PID).
# Usage: stop-dns.sh DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: stop-dns.sh DIR" >&2; exit 1; }
pidfile="$1/unbound.pid"
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop-dns: unbound (pid $pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$pidfile"
