#!/bin/bash
# Regenerate the chain-quality fixtures of tests/unit/test_chain.c into
# tests/unit/certs/chain/.
#
# Like make.sh, the PEM files are committed and the build never runs this
# script; the private keys are thrown away. Dates are fixed so the "good"
# certificates stay valid for a century whatever the clock says, and so the
# validity lengths are exact.
#
# Fixtures (RSA-2048 and sha256WithRSAEncryption unless said otherwise):
#   root.pem          "Chain Fixture Root", self-signed, 2024..2124
#   inter.pem         "Chain Fixture Intermediate", CA, issued by root
#   inter-sha1.pem    the same intermediate (same name, same key) signed by
#                     root with sha1WithRSAEncryption, so leaf.pem verifies
#                     under either
#   leaf.pem          leaf from inter, 2024..2124 (a century: too long for
#                     the CA/B Forum, and valid whenever the test runs)
#   leaf-sha1.pem     leaf from inter, sha1WithRSAEncryption
#   leaf-rsa1024.pem  leaf from inter with an RSA-1024 key
#   leaf-825.pem      leaf from inter, valid 825 days from 2100-01-01
#   leaf-398.pem      leaf from inter, valid exactly 398 days from 2100-01-01
#   leaf-expired.pem  leaf from inter, valid 2020-01-01..2021-01-01
#   other-root.pem    "Chain Fixture Other Root", an unrelated root (the
#                     second trust store)
#   unrelated.pem     leaf issued by other-root (a stray extra certificate)
#   weak-root.pem     "Chain Fixture Weak Root", RSA-1024, self-signed
#   weak-leaf.pem     leaf (RSA-2048) issued directly by weak-root
#   ec-leaf.pem       EC P-256 leaf from inter
#   inter-printable.pem the intermediate again (same key) with its name
#                     encoded as PrintableString instead of UTF8String: the
#                     same name to RFC 5280 7.1, other bytes than the issuer
#                     field of leaf.pem
#   inter-rekeyed.pem an intermediate with the same name as inter.pem but
#                     another key (issued by root): its name fits leaf.pem's
#                     issuer, its key did not sign leaf.pem
#   inter-top.pem     a second path, three deep: "Chain Fixture Upper
#   inter-low.pem     Intermediate" (from root) issues "Chain Fixture Lower
#   leaf-deep.pem     Intermediate", which issues leaf-deep
#   leaf-staple.pem   leaf from inter with the TLS feature extension
#                     (status_request: OCSP must-staple), an SCT list
#                     extension (empty, the OID is what counts) and
#                     extendedKeyUsage clientAuth only
#   pool.pem          the known-intermediates pool: inter.pem
#   store-both.pem    root.pem + other-root.pem in one store file, plus
#                     inter.pem (a store file that also carries an
#                     intermediate, as some bundles do)
set -euo pipefail

cd "$(dirname "$0")"
mkdir -p chain
cd chain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=20240101000000Z
end=21240101000000Z
far=21000101000000Z
# `openssl ca` takes -enddate, not -days, together with -startdate; the
# lengths are computed from the fixed start.
plus_days() { date -u -d "2100-01-01 +$1 days" +%Y%m%d%H%M%SZ; }

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
[v3_root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_inter]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_inter1]
basicConstraints = critical, CA:true, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_staple]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = DNS:mx.chain.example
tlsfeature = status_request
1.3.6.1.4.1.11129.2.4.2 = DER:04:00
[v3_leaf]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mx.chain.example
CNF
serial=4096
newkey() { # newkey FILE [rsa-bits|ec]
  if [ "${2:-2048}" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"${2:-2048}" -out "$1" 2>/dev/null
  fi
}

# sign OUT CSR CA EXT MD FROM TO: issue with `openssl ca` (CA "self" for a
# self-signed root). OpenSSL 3.0 still signs with -md sha1.
sign() {
  local out=$1 csr=$2 ca=$3 ext=$4 md=$5 from=$6 to=$7
  serial=$((serial + 1))
  printf '%x\n' "$serial" >"$tmp/serial"
  local selfsign=()
  [ "$ca" = self ] && selfsign=(-selfsign -keyfile "$tmp/${out%.pem}.key")
  [ "$ca" = self ] || selfsign=(-cert "$ca.pem" -keyfile "$tmp/$ca.key")
  openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md "$md" \
    "${selfsign[@]}" -extensions "$ext" -startdate "$from" -enddate "$to" \
    -in "$csr" -out "$out" 2>"$tmp/err" || {
    cat "$tmp/err" >&2
    exit 1
  }
}

# cert NAME SUBJECT CA EXT MD FROM TO [KEY-BITS|ec] [KEYNAME]: new key (or
# the key of KEYNAME), CSR, signature.
cert() {
  local name=$1 subj=$2 ca=$3 ext=$4 md=$5 from=$6 to=$7 bits=${8:-2048} key=${9:-$1}
  [ -f "$tmp/$key.key" ] || newkey "$tmp/$key.key" "$bits"
  [ "$key" = "$name" ] || cp "$tmp/$key.key" "$tmp/$name.key"
  openssl req -new -key "$tmp/$key.key" -subj "$subj" -out "$tmp/$name.csr"
  sign "$name.pem" "$tmp/$name.csr" "$ca" "$ext" "$md" "$from" "$to"
}

cert root "/O=Chain Fixture/CN=Chain Fixture Root" self v3_root sha256 $start $end
cert inter "/O=Chain Fixture/CN=Chain Fixture Intermediate" root v3_inter sha256 $start $end
cert inter-sha1 "/O=Chain Fixture/CN=Chain Fixture Intermediate" root v3_inter sha1 \
  $start $end 2048 inter
# The same name as PrintableString: a CSR made with string_mask=default.
printf '[req]\ndistinguished_name = dn\nstring_mask = default\n[dn]\n' >"$tmp/printable.cnf"
openssl req -new -config "$tmp/printable.cnf" -key "$tmp/inter.key" \
  -subj "/O=Chain Fixture/CN=Chain Fixture Intermediate" -out "$tmp/inter-printable.csr"
sign inter-printable.pem "$tmp/inter-printable.csr" root v3_inter sha256 $start $end
cert inter-rekeyed "/O=Chain Fixture/CN=Chain Fixture Intermediate" root v3_inter sha256 \
  $start $end
cert leaf "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 $start $end
cert leaf-sha1 "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha1 $start $end
cert leaf-rsa1024 "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 $start $end 1024
cert leaf-825 "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 $far "$(plus_days 825)"
cert leaf-398 "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 $far "$(plus_days 398)"
cert leaf-expired "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 \
  20200101000000Z 20210101000000Z
cert other-root "/O=Chain Fixture/CN=Chain Fixture Other Root" self v3_root sha256 $start $end
cert unrelated "/O=Chain Fixture/CN=unrelated.chain.example" other-root v3_leaf sha256 $start $end
cert weak-root "/O=Chain Fixture/CN=Chain Fixture Weak Root" self v3_root sha256 $start $end 1024
cert weak-leaf "/O=Chain Fixture/CN=mx.chain.example" weak-root v3_leaf sha256 $start $end
cert ec-leaf "/O=Chain Fixture/CN=mx.chain.example" inter v3_leaf sha256 $start $end ec
cert inter-top "/O=Chain Fixture/CN=Chain Fixture Upper Intermediate" root v3_inter1 sha256 \
  $start $end
cert inter-low "/O=Chain Fixture/CN=Chain Fixture Lower Intermediate" inter-top v3_inter \
  sha256 $start $end
cert leaf-deep "/O=Chain Fixture/CN=mx.chain.example" inter-low v3_leaf sha256 $start $end
cert leaf-staple "/O=Chain Fixture/CN=mx.chain.example" inter v3_staple sha256 $start $end

cp inter.pem pool.pem
cat root.pem other-root.pem inter.pem >store-both.pem
echo "fixtures written to $(pwd)"
