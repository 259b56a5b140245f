#!/usr/bin/env bash
# The DNSSEC part of the lab DNS: sign the DANE zones and serve them with
# nsd, a real authoritative server, on 127.0.53.54 port 53. Called by
# start-dns.sh, which then makes the lab resolver (unbound, 127.0.53.53)
# validate them through the configuration snippet written here.
#
# Usage: dnssec.sh DIR [PKI]
#   DIR  receives the signed zones, nsd.conf, nsd.log, nsd.pid,
#        trust-anchors (DS records of the signed zones) and
#        unbound-dnssec.conf (stub zones and trust anchors for unbound)
#   PKI  the lab PKI of this run (tests/lab/mkcerts.sh output); the TLSA
#        records are computed from it. Without it the zones are served
#        without TLSA records.
#
# Zones (README.md lists the cases):
#   dane.test    signed, validated: the DANE cases
#   example.net  signed, validated: wrong.example.net, mx-wrong's name
#   bogus.test   signed with signatures that expired in 2020: bogus
# Keys are made fresh on every run (ECDSA P-256, one combined signing key
# per zone), so nothing secret is checked in and signatures never go stale.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
addr=127.0.53.54

die() { echo "dnssec: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: dnssec.sh DIR [PKI]"
[ "${STLS_IN_NETNS:-}" = 1 ] || die "run me inside tests/lab/netns-run.sh"
for t in nsd ldns-keygen ldns-signzone ldns-key2ds openssl drill; do
  command -v "$t" >/dev/null || die "$t is not installed (scripts/install-deps.sh)"
done
mkdir -p "$1"
dir=$(cd "$1" && pwd)
pki=${2:-}
if [ -s "$dir/nsd.pid" ] && kill -0 "$(cat "$dir/nsd.pid")" 2>/dev/null; then
  die "nsd already running from $dir (pid $(cat "$dir/nsd.pid"))"
fi

# ---- TLSA association data from the PKI ---------------------------------

# The Nth (1-based) certificate of a PEM file.
nth_cert() { # FILE N
  awk -v n="$2" '/-----BEGIN CERTIFICATE-----/ { i++ } i == n { print }
                 /-----END CERTIFICATE-----/ && i == n { exit }' "$1"
}
cert_der() { openssl x509 -outform der; }
spki_der() { openssl x509 -pubkey -noout | openssl pkey -pubin -outform der; }
digest() { openssl dgst "-$1" -r | cut -d' ' -f1; }

subst=()
if [ -n "$pki" ]; then
  [ -s "$pki/mx-good.chain.pem" ] || die "no lab PKI in $pki (mx-good.chain.pem missing)"
  # mx-good.chain.pem holds the key, the leaf, then intermediate A.
  inter=$(nth_cert "$pki/mx-good.chain.pem" 2)
  [ -n "$inter" ] || die "no intermediate in $pki/mx-good.chain.pem"
  subst+=(
    "MX_GOOD_SPKI_SHA256=$(spki_der <"$pki/mx-good.crt" | digest sha256)"
    "MX_SELF_CERT_SHA256=$(cert_der <"$pki/mx-self.crt" | digest sha256)"
    "MX_EXPIRED_SPKI_SHA512=$(spki_der <"$pki/mx-expired.crt" | digest sha512)"
    "MX_ECDSA_SPKI_SHA256=$(spki_der <"$pki/mx-ecdsa.crt" | digest sha256)"
    "INTER_A_CERT_SHA256=$(cert_der <<<"$inter" | digest sha256)"
    "ROOT_A_CERT_SHA256=$(cert_der <"$pki/ca-a.pem" | digest sha256)"
    "ROOT_B_CERT_SHA256=$(cert_der <"$pki/ca-b.pem" | digest sha256)"
  )
fi

# Fill in a zone template: known tokens replaced, lines with unknown ones
# (no PKI) dropped.
fill() { # TEMPLATE OUT
  local script="" kv
  for kv in "${subst[@]}"; do
    script+="s|@${kv%%=*}@|${kv#*=}|g;"
  done
  sed -e "$script" -e '/@[A-Z0-9_]*@/d' "$1" >"$2"
}

# ---- keys and signatures ------------------------------------------------

rm -rf "$dir/keys"
mkdir -p "$dir/keys"
: >"$dir/trust-anchors"
# sign ZONE [ldns-signzone options]: DIR/ZONE.zone.signed, DS appended to
# trust-anchors.
sign() {
  local zone=$1 key
  shift
  fill "$here/$zone.zone.in" "$dir/$zone.zone"
  # A key with the SEP bit (-k) signs everything: one key is enough here.
  key=$(cd "$dir/keys" && ldns-keygen -a ECDSAP256SHA256 -k "$zone")
  ldns-signzone "$@" -f "$dir/$zone.zone.signed" "$dir/$zone.zone" "$dir/keys/$key" ||
    die "signing $zone failed"
  (cd "$dir/keys" && ldns-key2ds -n -2 "$key.key") >>"$dir/trust-anchors" ||
    die "no DS for $zone"
}
sign dane.test
sign example.net
# Valid only in January 2020: every signature is long expired.
sign bogus.test -i 20200101000000 -e 20200201000000

# ---- nsd ------------------------------------------------------------------

cat >"$dir/nsd.conf" <<CONF
server:
  ip-address: $addr
  port: 53
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$dir"
  database: ""
  zonelistfile: "$dir/nsd.zonelist"
  xfrdfile: "$dir/nsd.xfrd"
  xfrdir: "$dir"
  pidfile: "$dir/nsd.pid.nsd"
  logfile: "$dir/nsd.log"
  server-count: 1
  verbosity: 1
  hide-version: yes
remote-control:
  control-enable: no
zone:
  name: "dane.test"
  zonefile: "dane.test.zone.signed"
zone:
  name: "example.net"
  zonefile: "example.net.zone.signed"
zone:
  name: "bogus.test"
  zonefile: "bogus.test.zone.signed"
CONF
nsd-checkconf "$dir/nsd.conf" || die "bad configuration $dir/nsd.conf"

# What the lab resolver needs: the zones go to nsd (stub zones), pass the
# resolver's "." refuse, and are validated against this run's keys.
{
  echo "server:"
  echo "  trust-anchor-file: \"$dir/trust-anchors\""
  # No RFC 8145 key-tag queries: they only add noise to the log here.
  echo "  trust-anchor-signaling: no"
  for z in dane.test example.net bogus.test; do
    echo "  local-zone: \"$z.\" transparent"
  done
  for z in dane.test example.net bogus.test; do
    echo "stub-zone:"
    echo "  name: \"$z.\""
    echo "  stub-addr: $addr@53"
  done
} >"$dir/unbound-dnssec.conf"

rm -f "$dir/nsd.pid"
nsd -d -c "$dir/nsd.conf" >>"$dir/nsd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$dir/nsd.log" >&2 || true
    die "nsd exited during start-up"
  fi
  if drill @"$addr" dane.test SOA 2>/dev/null | grep -q 'rcode: NOERROR'; then
    echo "$pid" >"$dir/nsd.pid"
    exit 0
  fi
  sleep 0.05
done
kill "$pid" 2>/dev/null || true
die "nsd did not answer on $addr within 5 s (log: $dir/nsd.log)"
