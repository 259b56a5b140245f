#!/bin/bash
# Regenerate the long-chain fixtures of tests/unit/test_chain.c into
# tests/unit/certs/chain/ (committed; the build never runs this script, and
# the private keys are thrown away).
#
# Fixtures (EC P-256, ecdsa-with-SHA256, valid 2024..2124):
#   long-root.pem        "Long Fixture Root", self-signed
#   long-1.pem .. long-11.pem
#                        "Long Fixture Intermediate N", CAs without a path
#                        length limit: long-1 issued by long-root, long-N by
#                        long-(N-1)
#   long-3-expired.pem   long-3 again (same name, same key) valid
#                        2020..2021 only
#   leaf-long8.pem, leaf-long9.pem, leaf-long11.pem
#                        leaves issued by long-8, long-9, long-11: chains of
#                        8, 9 and 11 intermediates (mbedTLS allows 8 by
#                        default, Postfix's verify depth is 9)
set -euo pipefail

cd "$(dirname "$0")"
mkdir -p chain
cd chain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=20240101000000Z
end=21240101000000Z

touch "$tmp/index.txt"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = fixture_ca
[fixture_ca]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
policy = any_dn
unique_subject = no
email_in_dn = no
copy_extensions = none
[any_dn]
organizationName = optional
commonName = supplied
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.long.example
CNF
serial=8192

# cert NAME SUBJECT CA EXT FROM TO [KEYNAME]: CA "self" for the root.
cert() {
  local name=$1 subj=$2 ca=$3 ext=$4 from=$5 to=$6 key=${7:-$1}
  [ -f "$tmp/$key.key" ] ||
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$key.key"
  openssl req -new -key "$tmp/$key.key" -subj "$subj" -out "$tmp/$name.csr"
  serial=$((serial + 1))
  printf '%x\n' "$serial" >"$tmp/serial"
  local signer=(-cert "$ca.pem" -keyfile "$tmp/$ca.key")
  [ "$ca" = self ] && signer=(-selfsign -keyfile "$tmp/$key.key")
  openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md sha256 \
    "${signer[@]}" -extensions "$ext" -startdate "$from" -enddate "$to" \
    -in "$tmp/$name.csr" -out "$name.pem" 2>"$tmp/err" || {
    cat "$tmp/err" >&2
    exit 1
  }
}

cert long-root "/O=Long Fixture/CN=Long Fixture Root" self v3_ca $start $end
prev=long-root
for i in $(seq 1 11); do
  cert "long-$i" "/O=Long Fixture/CN=Long Fixture Intermediate $i" $prev v3_ca $start $end
  prev=long-$i
done
cert long-3-expired "/O=Long Fixture/CN=Long Fixture Intermediate 3" long-2 v3_ca \
  20200101000000Z 20210101000000Z long-3
for n in 8 9 11; do
  cert "leaf-long$n" "/O=Long Fixture/CN=mx.long.example" "long-$n" v3_leaf $start $end
done
