#!/usr/bin/env bash
# Stop the MTA-STS lab's nginx started by start-sts.sh DIR (by its PID).
# Usage: stop-sts.sh DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: stop-sts.sh DIR" >&2; exit 1; }
dir=$1
[ -s "$dir/nginx.pid" ] || exit 0
pid=$(cat "$dir/nginx.pid")
if kill -0 "$pid" 2>/dev/null; then
  # SIGQUIT: graceful shutdown; the master reaps its worker and exits.
  kill -QUIT "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "stop-sts: nginx (pid $pid) did not stop in 5 s; killed" >&2
  fi
fi
rm -f "$dir/nginx.pid"
