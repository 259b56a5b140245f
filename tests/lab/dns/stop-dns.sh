#!/usr/bin/env bash
# Stop the lab DNS servers started by start-dns.sh DIR (unbound, and nsd
# from dnssec.sh), each by its PID.
# Usage: stop-dns.sh DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: stop-dns.sh DIR" >&2; exit 1; }

stop() { # NAME PIDFILE
  local pid
  [ -s "$2" ] || return 0
  pid=$(cat "$2")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop-dns: $1 (pid $pid) ignored SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$2"
}
stop unbound "$1/unbound.pid"
stop nsd "$1/nsd.pid"
