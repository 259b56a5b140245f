#!/usr/bin/env bash
# The distinct-chain corpus of the benchmark: N leaf certificates, each its
# own chain, for mx-chain000.lab.test .. mx-chain(N-1).lab.test.
#
# A small PKI of its own ("STLS Bench Root", RSA-2048; I intermediates,
# RSA-2048, pathlen 0), made fresh on every run like the lab's: no key lives
# in the repository. Leaf i (RSA-2048, 398 days, SAN *.lab.test) is issued
# by intermediate i mod I, so the chains differ in their leaves and share a
# few intermediates, as a provider's certificates do. The shape is the lab's
# mx-good chain (RSA leaf, RSA intermediate, RSA root), so the only
# difference from the shared-chain corpus is that every chain is new to the
# scanner's chain cache.
#
# All leaves share one key: key generation would take most of the time here,
# and neither the chain cache (keyed by the certificates) nor the handshake
# (one RSA-PSS CertificateVerify per connection) cares whose key it is.
#
# Output in OUTDIR:
#   root.pem              the trust anchor (--ca-file for this corpus)
#   chainNNN.pem          key, leaf, intermediate: a smtpd_tls_chain_files
#   sni.txt               "mx-chainNNN.lab.test OUTDIR/chainNNN.pem" lines,
#                         the source of Postfix's tls_server_sni_maps
#                         (postmap -F)
#
# Usage: mkchains.sh OUTDIR N [INTERMEDIATES]
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: mkchains.sh OUTDIR N [INTERMEDIATES]" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
n=$2
ni=${3:-4}
work="$out/.ca"
rm -rf "$work"
mkdir -p "$work"

cat >"$work/ext.cnf" <<'EOF'
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused

[root_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[inter_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

genrsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

pids=()
genrsa "$work/root.key" &
pids+=($!)
genrsa "$work/leaf.key" &
pids+=($!)
for ((i = 0; i < ni; i++)); do
  genrsa "$work/inter$i.key" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

openssl req -new -x509 -config "$work/ext.cnf" -key "$work/root.key" \
  -subj "/O=STLS Bench/CN=STLS Bench Root" -days 3650 -sha256 \
  -extensions root_ext -out "$out/root.pem"
for ((i = 0; i < ni; i++)); do
  openssl req -new -config "$work/ext.cnf" -key "$work/inter$i.key" \
    -subj "/O=STLS Bench/CN=STLS Bench Intermediate $i" -out "$work/inter$i.csr"
  openssl x509 -req -in "$work/inter$i.csr" -CA "$out/root.pem" -CAkey "$work/root.key" \
    -set_serial "$((1000 + i))" -days 3650 -sha256 -extfile "$work/ext.cnf" \
    -extensions inter_ext -out "$work/inter$i.crt" 2>/dev/null
done
# One CSR serves every leaf, and one `openssl ca` per intermediate signs
# its share of them (-infiles, the same request again and again): a process
# per certificate took minutes on a busy machine. Random serials make every
# certificate distinct; the SAN, *.lab.test, names every MX here.
openssl req -new -config "$work/ext.cnf" -key "$work/leaf.key" \
  -subj "/O=STLS Bench/CN=STLS Bench leaf" -out "$work/leaf.csr"
cat >"$work/ca.cnf" <<'EOF'
[ca]
default_ca = bench_ca
[bench_ca]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
default_days = 398
policy = bench_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
[bench_policy]
organizationName = optional
commonName = supplied
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:*.lab.test
EOF
for ((k = 0; k < ni; k++)); do
  mkdir -p "$work/ca$k/newcerts"
  : >"$work/ca$k/index.txt"
  csrs=()
  for ((i = k; i < n; i += ni)); do csrs+=("$work/leaf.csr"); done
  [ ${#csrs[@]} -gt 0 ] || continue
  (cd "$work/ca$k" && openssl ca -batch -notext -rand_serial -config "$work/ca.cnf" \
    -cert "$work/inter$k.crt" -keyfile "$work/inter$k.key" -extensions leaf_ext \
    -out /dev/null -infiles "${csrs[@]}" 2>"$work/ca$k/err") || {
    cat "$work/ca$k/err" >&2
    echo "mkchains: signing with intermediate $k failed" >&2
    exit 1
  }
done

# Leaf i is the (i div I)-th certificate that intermediate i mod I signed,
# in the order of its database (-out keeps only the last one).
for ((k = 0; k < ni; k++)); do
  [ -s "$work/ca$k/index.txt" ] || continue
  j=0
  # index.txt: status, expiry, revocation (empty), serial, file, subject.
  for serial in $(awk -F'\t' '{ print $4 }' "$work/ca$k/index.txt"); do
    cp "$work/ca$k/newcerts/$serial.pem" "$work/leaf$((k + ni * j)).crt"
    j=$((j + 1))
  done
done
: >"$out/sni.txt"
for ((i = 0; i < n; i++)); do
  f=$(printf 'chain%03d.pem' "$i")
  cat "$work/leaf.key" "$work/leaf$i.crt" "$work/inter$((i % ni)).crt" >"$out/$f"
  printf 'mx-chain%03d.lab.test %s/%s\n' "$i" "$out" "$f" >>"$out/sni.txt"
done
chmod 600 "$out"/chain*.pem
rm -rf "$work"
