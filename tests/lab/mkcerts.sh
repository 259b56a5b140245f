#!/usr/bin/env bash
# Generate the lab PKI into OUTDIR, fresh on every run.
#
# Two independent roots ("STLS Lab Root A" with an intermediate, and
# "STLS Lab Root B"), and one leaf per lab endpoint. Nothing is checked in:
# keys are made at run time so no private key ever lives in the repository,
# and validity periods are always relative to "now".
#
# Root A also has a three-deep path ("STLS Lab Upper Intermediate A" issues
# "STLS Lab Lower Intermediate A", which issues mx-order's leaf), so a chain
# can be sent with its intermediates in the wrong order.
#
# Output:
#   OUTDIR/ca-a.pem, OUTDIR/ca-b.pem      trust anchors (roots only)
#   OUTDIR/intermediates.pem               every lab intermediate: the
#                                          "known intermediates" pool
#   OUTDIR/<name>.chain.pem                key, then leaf, then intermediate:
#                                          the layout Postfix's
#                                          smtpd_tls_chain_files expects
#                                          (the chain-quality endpoints
#                                          deviate on purpose, see below)
#   OUTDIR/<name>.crt / .key               leaf alone (for inspection)
#
# Usage: mkcerts.sh OUTDIR
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: mkcerts.sh OUTDIR" >&2
  exit 2
fi
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/.ca"
rm -rf "$work"
mkdir -p "$work"

# A minimal `openssl ca` setup. We sign with `openssl ca` rather than
# `openssl x509 -req` because OpenSSL 3.0 can set an explicit notBefore only
# there (-startdate), and the expired leaf needs a validity in the past.
cat >"$work/ca.cnf" <<'EOF'
[ca]
default_ca = lab_ca

[lab_ca]
dir = .
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
default_md = sha256
policy = lab_policy
unique_subject = no
copy_extensions = none
email_in_dn = no

[lab_policy]
organizationName = optional
commonName = supplied

[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[root_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[inter1_ext]
basicConstraints = critical, CA:TRUE, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[inter_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

# Leaf extensions differ only in SAN and key usage, so they are generated
# per certificate into their own small file.
leaf_ext() { # FILE KEYUSAGE SAN...
  local f=$1 ku=$2
  shift 2
  local san="" n
  for n in "$@"; do san="${san:+$san, }DNS:$n"; done
  cat >"$f" <<EOF
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, $ku
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF
}

genkey() { # NAME rsa|ec
  if [ "$2" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
      -pkeyopt ec_param_enc:named_curve -out "$work/$1.key" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
      -out "$work/$1.key" 2>/dev/null
  fi
}

# Each signing CA gets its own database directory, so the two roots never
# share serial or index state.
ca_init() { # CANAME
  mkdir -p "$work/$1/newcerts"
  : >"$work/$1/index.txt"
}

# Sign a CSR with `openssl ca`. Extra arguments choose validity
# (-days N, or -startdate/-enddate).
ca_sign() { # CANAME CSR OUT EXTFILE EXTSECTION [openssl ca options...]
  local ca=$1 csr=$2 crt=$3 extfile=$4 sect=$5
  shift 5
  (cd "$work/$ca" && openssl ca -batch -notext -preserveDN -rand_serial \
    -config "$work/ca.cnf" -cert "$work/$ca.crt" -keyfile "$work/$ca.key" \
    -in "$csr" -out "$crt" -extfile "$extfile" -extensions "$sect" \
    "$@" 2>"$work/$ca/last.err") || {
    cat "$work/$ca/last.err" >&2
    echo "mkcerts: signing $crt failed" >&2
    exit 1
  }
}

# Key generation dominates the run time; do it all in parallel up front.
rsa_keys="root-a inter-a root-b mx-good mx-self mx-expired mx-wrong mx-tls12 mx-wild mx-b
  inter-a-up inter-a-low mx-order mx-nointer mx-root mx-sha1 mx-tls10 mx-tls11"
pids=()
for k in $rsa_keys; do
  genkey "$k" rsa &
  pids+=($!)
done
genkey mx-ecdsa ec &
pids+=($!)
genkey mx-wild-ec ec &
pids+=($!)
for p in "${pids[@]}"; do wait "$p"; done

# Roots: self-signed, ten years.
for r in a b; do
  R=${r^^}
  openssl req -new -x509 -config "$work/ca.cnf" -key "$work/root-$r.key" \
    -subj "/O=STLS Lab/CN=STLS Lab Root $R" -days 3650 -sha256 \
    -extensions root_ext -out "$work/root-$r.crt"
  ca_init "root-$r"
done
cp "$work/root-a.crt" "$out/ca-a.pem"
cp "$work/root-b.crt" "$out/ca-b.pem"

# Intermediate A, signed by root A.
openssl req -new -config "$work/ca.cnf" -key "$work/inter-a.key" \
  -subj "/O=STLS Lab/CN=STLS Lab Intermediate A" -out "$work/inter-a.csr"
ca_sign root-a "$work/inter-a.csr" "$work/inter-a.crt" "$work/ca.cnf" inter_ext -days 3650
ca_init inter-a

# The three-deep path: upper (pathlen 1) from root A, lower from upper.
openssl req -new -config "$work/ca.cnf" -key "$work/inter-a-up.key" \
  -subj "/O=STLS Lab/CN=STLS Lab Upper Intermediate A" -out "$work/inter-a-up.csr"
ca_sign root-a "$work/inter-a-up.csr" "$work/inter-a-up.crt" "$work/ca.cnf" inter1_ext -days 3650
ca_init inter-a-up
openssl req -new -config "$work/ca.cnf" -key "$work/inter-a-low.key" \
  -subj "/O=STLS Lab/CN=STLS Lab Lower Intermediate A" -out "$work/inter-a-low.csr"
ca_sign inter-a-up "$work/inter-a-low.csr" "$work/inter-a-low.crt" "$work/ca.cnf" inter_ext -days 3650
ca_init inter-a-low
cat "$work/inter-a.crt" "$work/inter-a-up.crt" "$work/inter-a-low.crt" >"$out/intermediates.pem"

# leaf NAME KEYTYPE ISSUER CN SANS [openssl ca validity options...]
# Writes OUTDIR/NAME.{key,crt,chain.pem}. The chain file holds the key, the
# leaf and then the issuing intermediate (when the issuer is not a root).
leaf() {
  local name=$1 ktype=$2 issuer=$3 cn=$4 sans=$5
  shift 5
  local ku="digitalSignature, keyEncipherment"
  # keyEncipherment is meaningless for an EC key; strict clients reject it.
  [ "$ktype" = ec ] && ku="digitalSignature"
  # SANs are a space-separated list; split without globbing ("*.lab.test").
  local san_list
  read -ra san_list <<<"$sans"
  leaf_ext "$work/$name.ext" "$ku" "${san_list[@]}"
  openssl req -new -config "$work/ca.cnf" -key "$work/$name.key" \
    -subj "/O=STLS Lab/CN=$cn" -out "$work/$name.csr"
  ca_sign "$issuer" "$work/$name.csr" "$out/$name.crt" "$work/$name.ext" leaf_ext "$@"
  cp "$work/$name.key" "$out/$name.key"
  {
    cat "$work/$name.key" "$out/$name.crt"
    case $issuer in root-*) ;; *) cat "$work/$issuer.crt" ;; esac
  } >"$out/$name.chain.pem"
}

leaf mx-good rsa inter-a mx-good.lab.test mx-good.lab.test -days 825
leaf mx-ecdsa ec inter-a mx-ecdsa.lab.test mx-ecdsa.lab.test -days 825
leaf mx-tls12 rsa inter-a mx-tls12.lab.test mx-tls12.lab.test -days 825
leaf mx-wrong rsa inter-a wrong.example.net wrong.example.net -days 825
leaf mx-wild rsa inter-a '*.lab.test' '*.lab.test' -days 825
# The benchmark's fast peer (bench/fastpeer.c): cheap to sign with, valid
# for every lab name.
leaf mx-wild-ec ec inter-a '*.lab.test' '*.lab.test' -days 825
# Entirely in the past: valid for one year, ending well before today.
leaf mx-expired rsa inter-a mx-expired.lab.test mx-expired.lab.test \
  -startdate 20200101000000Z -enddate 20210101000000Z
leaf mx-b rsa root-b mx-b.lab.test mx-b.lab.test -days 825
# The legacy-protocol endpoints have ordinary chains; only the server's
# protocol range differs.
leaf mx-tls10 rsa inter-a mx-tls10.lab.test mx-tls10.lab.test -days 825
leaf mx-tls11 rsa inter-a mx-tls11.lab.test mx-tls11.lab.test -days 825

# Chain-quality endpoints. Their leaves live 398 days, the CA/B Forum
# maximum, so only the fact each one is about is off. The chain files are
# rewritten to send exactly the certificates named (after key and leaf).
chain_file() { # NAME CERT... (paths)
  local name=$1
  shift
  cat "$work/$name.key" "$out/$name.crt" "$@" >"$out/$name.chain.pem"
}
# Wrong order: leaf, upper, lower (lower issued the leaf).
leaf mx-order rsa inter-a-low mx-order.lab.test mx-order.lab.test -days 398
chain_file mx-order "$work/inter-a-up.crt" "$work/inter-a-low.crt"
# Missing intermediate: the leaf alone.
leaf mx-nointer rsa inter-a mx-nointer.lab.test mx-nointer.lab.test -days 398
chain_file mx-nointer
# Root included: leaf, intermediate, root.
leaf mx-root rsa inter-a mx-root.lab.test mx-root.lab.test -days 398
chain_file mx-root "$work/inter-a.crt" "$work/root-a.crt"
# SHA-1 signed leaf (OpenSSL 3.0 still signs with it; its servers load it
# only at security level 0, see lab.sh's legacy instance).
leaf mx-sha1 rsa inter-a mx-sha1.lab.test mx-sha1.lab.test -days 398 -md sha1

# Self-signed leaf: no CA at all, so no chain beyond itself.
leaf_ext "$work/mx-self.ext" "digitalSignature, keyEncipherment" mx-self.lab.test
# OpenSSL 3.0's `req` has no -extfile: append the section to the config.
cat "$work/ca.cnf" "$work/mx-self.ext" >"$work/self.cnf"
openssl req -new -x509 -config "$work/self.cnf" -key "$work/mx-self.key" \
  -subj "/O=STLS Lab/CN=mx-self.lab.test" -days 825 -sha256 \
  -extensions leaf_ext -out "$out/mx-self.crt"
cp "$work/mx-self.key" "$out/mx-self.key"
cat "$work/mx-self.key" "$out/mx-self.crt" >"$out/mx-self.chain.pem"

chmod 600 "$out"/*.key "$out"/*.chain.pem
rm -rf "$work"
