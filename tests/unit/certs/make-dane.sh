#!/bin/bash
# Regenerate the DANE fixtures of tests/unit/test_dane.c.
#
# Like make.sh, the PEM files and their .txt fact files are committed and
# the build never runs this script. Each dane-NAME.txt holds the TLSA
# association data OpenSSL computes for dane-NAME.pem (SHA-256 and SHA-512
# of the DER certificate and of its SubjectPublicKeyInfo), so the test
# matches against digests made by an independent implementation. The
# private keys are thrown away.
#
# Fixtures (validity 2024..2124 unless said otherwise):
#   dane-root.pem        RSA-2048 root "DANE Fixture Root"
#   dane-inter.pem       EC P-256 intermediate, issued by dane-root
#   dane-leaf.pem        EC P-256 leaf from dane-inter, SAN mx.dane.example
#   dane-expired.pem     EC leaf from dane-inter, SAN mx.dane.example,
#                        valid in 2020 only
#   dane-rogue-inter.pem an intermediate with dane-inter's name but another
#                        key (issued by dane-root): dane-leaf's signature
#                        does not verify under it
#   dane-self.pem        self-signed EC leaf (not a CA), SAN self.dane.example
set -euo pipefail

cd "$(dirname "$0")"
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
CNF

newkey() { # newkey rsa|ec FILE
  case $1 in
  rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
  ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" ;;
  esac
}

# sign NAME KEYTYPE CA SERIAL SUBJECT ca|leaf [SAN [START END]]
# CA "self" makes a self-signed certificate.
sign() {
  local name=$1 keytype=$2 ca=$3 serial=$4 subj=$5 sect=$6 san=${7:-}
  local from=${8:-$start} to=${9:-$end}
  local ext="$tmp/$name.ext"
  newkey "$keytype" "$tmp/$name.key"
  openssl req -new -key "$tmp/$name.key" -subj "$subj" -out "$tmp/$name.csr"
  if [ "$sect" = ca ]; then
    printf '%s\n' "basicConstraints = critical, CA:true" \
      "keyUsage = critical, keyCertSign, cRLSign" "subjectKeyIdentifier = hash" >"$ext"
  else
    printf '%s\n' "basicConstraints = critical, CA:false" \
      "keyUsage = critical, digitalSignature" "extendedKeyUsage = serverAuth" \
      "subjectAltName = $san" >"$ext"
  fi
  echo "$serial" >"$tmp/serial"
  if [ "$ca" = self ]; then
    openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md sha256 -selfsign \
      -keyfile "$tmp/$name.key" -extfile "$ext" -startdate "$from" -enddate "$to" \
      -in "$tmp/$name.csr" -out "$name.pem" 2>/dev/null
  else
    openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md sha256 \
      -cert "$ca.pem" -keyfile "$tmp/$ca.key" -extfile "$ext" -startdate "$from" -enddate "$to" \
      -in "$tmp/$name.csr" -out "$name.pem" 2>/dev/null
  fi
}

sign dane-root rsa self 2001 "/O=DANE Fixture/CN=DANE Fixture Root" ca
sign dane-inter ec dane-root 2002 "/O=DANE Fixture/CN=DANE Fixture Intermediate" ca
sign dane-rogue-inter ec dane-root 2003 "/O=DANE Fixture/CN=DANE Fixture Intermediate" ca
sign dane-leaf ec dane-inter 2004 "/CN=mx.dane.example" leaf "DNS:mx.dane.example"
sign dane-expired ec dane-inter 2005 "/CN=mx.dane.example" leaf "DNS:mx.dane.example" \
  20200101000000Z 20210101000000Z
sign dane-self ec self 2006 "/CN=self.dane.example" leaf "DNS:self.dane.example"

# facts NAME: the TLSA association data for each selector and matching type.
facts() {
  local der spki
  der=$(openssl x509 -in "$1.pem" -outform der | od -An -tx1 | tr -d ' \n')
  spki=$(openssl x509 -in "$1.pem" -pubkey -noout | openssl pkey -pubin -outform der |
    od -An -tx1 | tr -d ' \n')
  {
    echo "cert_sha256=$(openssl x509 -in "$1.pem" -outform der | openssl dgst -sha256 -r | cut -d' ' -f1)"
    echo "cert_sha512=$(openssl x509 -in "$1.pem" -outform der | openssl dgst -sha512 -r | cut -d' ' -f1)"
    echo "spki_sha256=$(openssl x509 -in "$1.pem" -pubkey -noout | openssl pkey -pubin -outform der |
      openssl dgst -sha256 -r | cut -d' ' -f1)"
    echo "spki_sha512=$(openssl x509 -in "$1.pem" -pubkey -noout | openssl pkey -pubin -outform der |
      openssl dgst -sha512 -r | cut -d' ' -f1)"
    echo "cert_der=$der"
    echo "spki_der=$spki"
  } >"$1.txt"
}
for n in dane-root dane-inter dane-rogue-inter dane-leaf dane-expired dane-self; do
  facts "$n"
done

# The fixtures must form the chains the tests rely on.
openssl verify -CAfile dane-root.pem -untrusted dane-inter.pem dane-leaf.pem >/dev/null
if openssl verify -CAfile dane-root.pem -untrusted dane-rogue-inter.pem dane-leaf.pem \
  >/dev/null 2>&1; then
  echo "make-dane: dane-leaf verifies under the rogue intermediate" >&2
  exit 1
fi
echo "DANE fixtures written to $(pwd)"
