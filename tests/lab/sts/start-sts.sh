#!/usr/bin/env bash
# Start the MTA-STS lab: nginx serving the policy hosts of the sts-*.lab.test
# domains (tests/lab/dns/lab.test.zone) over HTTPS, with certificates from a
# lab CA made here. README.md in this directory lists the cases.
#
# Usage: start-sts.sh DIR [EXTRA_CA_PEM...]
# DIR receives pki/, www/, nginx.conf, error.log, access.log, nginx.pid and
# ca-bundle.pem: the STS lab root followed by every EXTRA_CA_PEM (pass the
# Postfix lab's pki/ca-a.pem so that one file trusts both labs). Runs only
# inside the lab namespace (tests/lab/netns-run.sh). Stop with stop-sts.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

die() { echo "start-sts: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: start-sts.sh DIR [EXTRA_CA_PEM...]"
# Port 443 on the machine's own addresses is not ours to take.
[ "${STLS_IN_NETNS:-}" = 1 ] || die "run me inside tests/lab/netns-run.sh"
if ip -o link show | awk -F': ' '{print $2}' | grep -qv '^lo$'; then
  die "this network namespace has interfaces other than lo; refusing"
fi
command -v nginx >/dev/null || die "nginx is not installed (scripts/install-deps.sh)"
command -v openssl >/dev/null || die "openssl is not installed (scripts/install-deps.sh)"

mkdir -p "$1"
dir=$(cd "$1" && pwd)
shift
if [ -s "$dir/nginx.pid" ] && kill -0 "$(cat "$dir/nginx.pid")" 2>/dev/null; then
  die "nginx already running from $dir (pid $(cat "$dir/nginx.pid"))"
fi

# The cases: one server block per policy host. Columns:
#   domain  listen-address  certificate  what-is-served  policy-file
# certificate: good (lab STS root, EC), rsa (lab STS root, RSA), self
# (self-signed), wrong (names another host), expired (lab STS root, in the
# past). what-is-served: policy (the file, text/plain), chunked (the file
# with chunked transfer encoding), html (the file as text/html), 404,
# redirect (301 to another policy host).
cases() {
  cat <<'EOF'
sts-enforce    127.0.44.1 good    policy   enforce.txt
sts-nomatch    127.0.44.1 good    policy   nomatch.txt
sts-testing    127.0.44.1 good    policy   testing.txt
sts-modenone   127.0.44.1 good    policy   modenone.txt
sts-split      127.0.44.1 good    policy   enforce.txt
sts-chunked    127.0.44.1 good    chunked  enforce.txt
sts-tls12      127.0.44.2 rsa     policy   enforce.txt
sts-v6         [::1]      good    policy   enforce.txt
sts-multi      127.0.44.1 good    policy   enforce.txt
sts-404        127.0.44.1 good    404      -
sts-redirect   127.0.44.1 good    redirect -
sts-oversize   127.0.44.1 good    policy   oversize.txt
sts-bigchunked 127.0.44.1 good    chunked  oversize.txt
sts-badsyntax  127.0.44.1 good    policy   badsyntax.txt
sts-html       127.0.44.1 good    html     enforce.txt
sts-untrusted  127.0.44.1 self    policy   enforce.txt
sts-wrongname  127.0.44.1 wrong   policy   enforce.txt
sts-expired    127.0.44.1 expired policy   enforce.txt
sts-twotxt     127.0.44.1 good    policy   enforce.txt
sts-badtxt     127.0.44.1 good    policy   enforce.txt
EOF
}

# Addresses nginx listens on; the first server block of each is a default
# that refuses handshakes for names it does not serve.
listens() { cases | awk '{print $2}' | sort -u; }

# ---- PKI ------------------------------------------------------------------
pki="$dir/pki"
rm -rf "$pki"
mkdir -p "$pki/ca/newcerts"
: >"$pki/ca/index.txt"

cat >"$pki/ca.cnf" <<'EOF'
[ca]
default_ca = sts_ca
[sts_ca]
dir = .
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/newcerts
default_md = sha256
policy = any_policy
unique_subject = no
copy_extensions = none
email_in_dn = no
[any_policy]
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
EOF

ecdsa_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# leaf NAME KEYTYPE SIGNER VALIDITY SAN...: writes pki/NAME.key and
# pki/NAME.pem. SIGNER "self" makes it self-signed; VALIDITY is "days:N"
# or "past" (one year ending in 2021, which only `openssl ca` can set).
leaf() {
  local name=$1 ktype=$2 signer=$3 validity=$4
  shift 4
  local san="" n ku="digitalSignature"
  for n in "$@"; do san="${san:+$san, }DNS:$n"; done
  [ "$ktype" = rsa ] && ku="digitalSignature, keyEncipherment"
  if [ "$ktype" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/$name.key" 2>/dev/null
  else
    ecdsa_key "$pki/$name.key"
  fi
  cat "$pki/ca.cnf" >"$pki/$name.cnf"
  cat >>"$pki/$name.cnf" <<EOF
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, $ku
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
subjectAltName = $san
EOF
  if [ "$signer" = self ]; then
    openssl req -new -x509 -config "$pki/$name.cnf" -key "$pki/$name.key" \
      -subj "/O=STLS Lab/CN=$1" -days 825 -extensions leaf_ext -out "$pki/$name.pem"
    return
  fi
  local dates=(-days "${validity#days:}")
  [ "$validity" = past ] && dates=(-startdate 20200101000000Z -enddate 20210101000000Z)
  openssl req -new -config "$pki/$name.cnf" -key "$pki/$name.key" -subj "/O=STLS Lab/CN=$1" \
    -out "$pki/$name.csr"
  (cd "$pki/ca" && openssl ca -batch -notext -preserveDN -rand_serial -config "$pki/$name.cnf" \
    -cert "$pki/root.pem" -keyfile "$pki/root.key" -in "$pki/$name.csr" -out "$pki/$name.pem" \
    -extensions leaf_ext "${dates[@]}" 2>"$pki/$name.err") ||
    { cat "$pki/$name.err" >&2; die "signing $name failed"; }
}

ecdsa_key "$pki/root.key"
openssl req -new -x509 -config "$pki/ca.cnf" -key "$pki/root.key" \
  -subj "/O=STLS Lab/CN=STLS Lab STS Root" -days 3650 -extensions root_ext -out "$pki/root.pem"

mapfile -t good_names < <(cases | awk '$3 == "good" {print "mta-sts." $1 ".lab.test"}')
leaf good ec root days:825 "${good_names[@]}"
leaf rsa rsa root days:825 mta-sts.sts-tls12.lab.test
leaf self ec self days:825 mta-sts.sts-untrusted.lab.test
leaf wrong ec root days:825 mta-sts.elsewhere.lab.test
leaf expired ec root past mta-sts.sts-expired.lab.test
chmod 600 "$pki"/*.key

cat "$pki/root.pem" >"$dir/ca-bundle.pem"
for ca in "$@"; do
  [ -f "$ca" ] || die "no such CA file: $ca"
  cat "$ca" >>"$dir/ca-bundle.pem"
done

# ---- content --------------------------------------------------------------
www="$dir/www"
rm -rf "$www"
mkdir -p "$www/policies" "$dir/tmp"
# RFC 8461 3.2 says CRLF; the enforce policy is served that way, the others
# with LF as many real servers do.
sed 's/$/\r/' "$here/policies/enforce.txt" >"$www/policies/enforce.txt"
for f in nomatch testing modenone badsyntax; do
  cp "$here/policies/$f.txt" "$www/policies/$f.txt"
done
# A valid policy made larger than the 64 KiB limit by ignored extension lines.
{
  cat "$here/policies/enforce.txt"
  for i in $(seq 1 1200); do printf 'x-padding-%04d: %s\n' "$i" "$(printf '%080d' 0)"; done
} >"$www/policies/oversize.txt"

# ---- nginx configuration ----------------------------------------------------
listen_arg() { # ADDRESS -> "ADDRESS:443"
  echo "$1:443"
}

{
  cat <<EOF
# Generated by start-sts.sh; one server block per MTA-STS lab case.
daemon off;
master_process on;
worker_processes 1;
# Inside the lab namespace only; files under DIR may be private to root.
user root;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 256; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  server_tokens off;
  # No mime.types: every file is served as default_type.
  types { }
  default_type text/plain;
  ssl_protocols TLSv1.2 TLSv1.3;
EOF
  for a in $(listens); do
    # A TLS 1.2-only address must say so in its default server: the
    # protocol is chosen before SNI picks a server block.
    protos=""
    if cases | awk -v a="$a" '$2 == a && $3 == "rsa"' | grep -q .; then
      protos="ssl_protocols TLSv1.2;"
    fi
    printf '  server { listen %s ssl default_server; ssl_reject_handshake on; %s }\n' \
      "$(listen_arg "$a")" "$protos"
  done
  while read -r domain addr cert serve file; do
    host="mta-sts.$domain.lab.test"
    mkdir -p "$www/$domain/.well-known"
    [ "$file" = - ] || cp "$www/policies/$file" "$www/$domain/.well-known/mta-sts.txt"
    printf '  server {\n'
    printf '    listen %s ssl;\n    server_name %s;\n' "$(listen_arg "$addr")" "$host"
    printf '    ssl_certificate %s/%s.pem;\n    ssl_certificate_key %s/%s.key;\n' \
      "$pki" "$cert" "$pki" "$cert"
    printf '    root %s/%s;\n' "$www" "$domain"
    case $serve in
      policy) ;;
      html) printf '    default_type text/html;\n' ;;
      # sub_filter drops Content-Length, so HTTP/1.1 answers are chunked.
      chunked)
        printf '    sub_filter_types text/plain;\n    sub_filter "no-such-text" "x";\n' ;;
      404) printf '    location / { return 404; }\n' ;;
      redirect)
        printf '    location / { return 301 https://mta-sts.sts-enforce.lab.test$request_uri; }\n' ;;
      *) die "unknown serve kind $serve" ;;
    esac
    printf '  }\n'
  done < <(cases)
  echo "}"
} >"$dir/nginx.conf"

nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" ||
  die "bad configuration $dir/nginx.conf (log: $dir/error.log)"
rm -f "$dir/nginx.pid"
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >>"$dir/error.log" 2>&1 &
pid=$!

# Ready when every address accepts connections.
for _ in $(seq 1 100); do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 20 "$dir/error.log" >&2 || true
    die "nginx exited during start-up"
  fi
  pending=0
  for a in $(listens); do
    a=${a#[}
    a=${a%]}
    timeout 1 bash -c "exec 3<>/dev/tcp/$a/443" 2>/dev/null || pending=1
  done
  if [ $pending = 0 ]; then
    echo "$pid" >"$dir/nginx.pid"
    exit 0
  fi
  sleep 0.05
done
kill "$pid" 2>/dev/null || true
die "nginx did not listen within 5 s (log: $dir/error.log)"
