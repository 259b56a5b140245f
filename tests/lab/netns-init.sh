#!/usr/bin/env bash
# Runs as the first process of a fresh namespace (see netns-run.sh).
set -euo pipefail
ip link set lo up
# IPv6 test addresses (RFC 3849 documentation prefix), usable only in here.
for a in 2001:db8:25::1 2001:db8:25::2 2001:db8:25::3 2001:db8:25::4 2001:db8:25::5 2001:db8:25::6 2001:db8:25::10; do
  ip -6 addr add "$a/128" dev lo nodad
done
# SYNs to this range vanish: a real connect timeout for tests.
ip route add 192.0.2.0/24 dev lo 2>/dev/null || true
# The lab resolver listens on 127.0.53.53; nothing else may be asked.
tmp=$(mktemp -d)
printf 'nameserver 127.0.53.53\noptions timeout:1 attempts:2\n' >"$tmp/resolv.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf
# A private /tmp-like scratch area that vanishes with the namespace.
mount -t tmpfs -o size=512m tmpfs "$tmp"
export STLS_LAB_TMP="$tmp"
"$@"
