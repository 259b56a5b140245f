#!/bin/bash
# Regenerate the certificate fixtures of tests/unit/test_cert.c.
#
# The PEM files and their .txt fact files are committed, so the build never
# runs this script; run it by hand only to change the fixtures. Each NAME.txt
# holds the facts OpenSSL reports for NAME.pem (digests, serial, dates, DNs,
# key size, signature algorithm), so the test compares stls_cert_describe()
# with an independent implementation instead of with numbers copied from our
# own output. The private keys are thrown away: no test needs them.
#
# Fixtures:
#   ca-rsa.pem       RSA-2048 root, self-signed, sha256WithRSAEncryption
#   ca-ec.pem        EC P-256 root, self-signed, ecdsa-with-SHA256
#   leaf-rsa.pem     RSA-2048 leaf from ca-ec; SANs incl. a wildcard; a serial
#                    with the high bit set (DER stores it with a leading 00)
#   leaf-ec.pem      EC P-256 leaf from ca-rsa; no SAN, only a CN
#   expired.pem      EC leaf from ca-ec, ecdsa-with-SHA384, valid in 2020 only
#                    (it stays expired, which is the point)
#   future.pem       EC leaf from ca-rsa, sha512WithRSAEncryption, valid from 2090
#   hostile-san.pem  EC leaf from ca-rsa whose dNSNames hold a NUL byte and a
#                    byte that is not UTF-8 (the classic "good\0.evil" trick)
set -euo pipefail

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Fixed dates keep the fixtures valid for a century whatever the clock of
# the machine that made them, and make their dates predictable.
start=20240101000000Z
end=21240101000000Z

# A tiny `openssl ca` setup: unlike `openssl x509 -req`, it can set explicit
# start and end dates (needed for the expired and not-yet-valid fixtures).
touch "$tmp/index.txt"
cat >"$tmp/ca.cnf" <<EOF
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
countryName = optional
organizationName = optional
commonName = supplied
[v3_ca]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

newkey() { # newkey rsa|ec FILE
  case $1 in
  rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
  ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2" ;;
  esac
}

# DER helpers for the hostile subjectAltName, which no config syntax can
# express (it contains a NUL byte). Lengths stay below 128.
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
tlv() { printf '%s%02x%s' "$1" $((${#2} / 2)) "$2"; }
colons() { sed 's/../&:/g; s/:$//'; }

# issue NAME KEYTYPE CA SERIAL MD SUBJECT EXTFILE [START END]
issue() {
  local name=$1 keytype=$2 ca=$3 serial=$4 md=$5 subj=$6 ext=$7
  local from=${8:-$start} to=${9:-$end}
  newkey "$keytype" "$tmp/$name.key"
  openssl req -new -key "$tmp/$name.key" -subj "$subj" -out "$tmp/$name.csr"
  echo "$serial" >"$tmp/serial"
  openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md "$md" \
    -cert "$ca.pem" -keyfile "$tmp/$ca.key" -extfile "$ext" -startdate "$from" -enddate "$to" \
    -in "$tmp/$name.csr" -out "$name.pem" 2>/dev/null
}

# facts NAME: what OpenSSL says about NAME.pem, one key=value per line.
facts() {
  local f=$1.pem
  local text
  text=$(openssl x509 -in "$f" -noout -text)
  {
    echo "sha256=$(openssl x509 -in "$f" -outform der | sha256sum | cut -d' ' -f1)"
    echo "spki_sha256=$(openssl x509 -in "$f" -pubkey -noout |
      openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
    echo "serial=$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')"
    for d in startdate:not_before enddate:not_after; do
      local when
      when=$(openssl x509 -in "$f" -noout -"${d%%:*}" | cut -d= -f2)
      echo "${d##*:}=$(date -u -d "$when" +%Y-%m-%dT%H:%M:%SZ)"
    done
    local nameopt=sep_comma_plus_space,utf8,esc_2253
    echo "subject=$(openssl x509 -in "$f" -noout -subject -nameopt $nameopt | cut -d= -f2-)"
    echo "issuer=$(openssl x509 -in "$f" -noout -issuer -nameopt $nameopt | cut -d= -f2-)"
    echo "key_bits=$(sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p' <<<"$text")"
    echo "signature_algorithm=$(sed -n 's/^ *Signature Algorithm: //p' <<<"$text" | head -1)"
  } >"$1.txt"
}

# Roots, self-signed through `openssl ca -selfsign` so they get fixed dates.
root() { # root NAME KEYTYPE SERIAL SUBJECT
  newkey "$2" "$tmp/$1.key"
  openssl req -new -key "$tmp/$1.key" -subj "$4" -out "$tmp/$1.csr"
  echo "$3" >"$tmp/serial"
  openssl ca -batch -notext -config "$tmp/ca.cnf" -preserveDN -md sha256 -selfsign \
    -keyfile "$tmp/$1.key" -extensions v3_ca -startdate "$start" -enddate "$end" \
    -in "$tmp/$1.csr" -out "$1.pem" 2>/dev/null
}
root ca-rsa rsa 01 "/C=US/O=Fixture Trust/CN=Fixture RSA Root"
root ca-ec ec 02 "/C=US/O=Fixture Trust/CN=Fixture EC Root"

leaf_ext() { # leaf_ext FILE [subjectAltName value]
  {
    echo "basicConstraints = critical, CA:false"
    echo "extendedKeyUsage = serverAuth"
    if [ $# -ge 2 ]; then echo "subjectAltName = $2"; fi
  } >"$1"
}

leaf_ext "$tmp/leaf-rsa.ext" "DNS:mx.example.com, DNS:*.mail.example.com, IP:192.0.2.25"
issue leaf-rsa rsa ca-ec 8a1b2c3d4e5f sha256 "/C=US/O=Example Org/CN=mx.example.com" \
  "$tmp/leaf-rsa.ext"

leaf_ext "$tmp/leaf-ec.ext"
issue leaf-ec ec ca-rsa 0b sha256 "/O=Example Net/CN=cn-only.example.net" "$tmp/leaf-ec.ext"

leaf_ext "$tmp/expired.ext" "DNS:expired.example.com"
issue expired ec ca-ec 1001 sha384 "/CN=expired.example.com" "$tmp/expired.ext" \
  20200101000000Z 20210101000000Z

leaf_ext "$tmp/future.ext" "DNS:future.example.com"
issue future ec ca-rsa 1002 sha512 "/CN=future.example.com" "$tmp/future.ext" \
  20900101000000Z 21000101000000Z

san=$(tlv 82 "$(hex good.example)00$(hex .evil.example)")
san+=$(tlv 82 "$(hex bad)ff$(hex .example)")
san+=$(tlv 82 "$(hex hostile.example)")
leaf_ext "$tmp/hostile-san.ext" "DER:$(tlv 30 "$san" | colons)"
issue hostile-san ec ca-rsa 1003 sha256 "/CN=good.example" "$tmp/hostile-san.ext"

for n in ca-rsa ca-ec leaf-rsa leaf-ec expired future hostile-san; do
  facts "$n"
done
echo "fixtures written to $(pwd)"
