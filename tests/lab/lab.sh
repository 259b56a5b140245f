#!/usr/bin/env bash
# Start or stop the Postfix test lab: one Postfix instance with one smtpd
# listener per endpoint, each on port 25 of its own loopback address, as a
# real MX would be. See tests/lab/README.md for the address plan.
#
# Usage (inside the lab namespace, see netns-run.sh):
#   lab.sh start DIR   generate PKI + config under DIR, start Postfix, wait
#                      until every listener accepts connections, write
#                      DIR/endpoints.json, start the lab DNS if present
#   lab.sh stop DIR    stop DNS (if present) and Postfix
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

die() {
  echo "lab.sh: $*" >&2
  exit 1
}

if [ "${STLS_IN_NETNS:-}" != 1 ]; then
  die "refusing to run outside the lab network namespace (STLS_IN_NETNS != 1); use tests/lab/netns-run.sh $(basename "$0") $*"
fi
[ $# -eq 2 ] || die "usage: lab.sh start|stop DIR"
cmd=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
conf="$dir/postfix"

# The endpoint table: the single source for master.cf listeners and for
# endpoints.json (which the tests read). Columns:
#   name host ip family tls-kind chain ca protocols |
#   expected: status trusted mx_hostname expired versions result_type reasons
# "-" means "not applicable" (JSON null, or no override for protocols).
# versions and reasons are comma-separated lists.
endpoints() {
  cat <<'EOF'
mx-plain  mx-plain.lab.test  127.0.25.1     ipv4 none    -          -    -       starttls-not-supported -     -     -     -       -                       -
mx-good   mx-good.lab.test   127.0.25.2     ipv4 good    mx-good    ca-a -       success                true  true  false TLSv1.3 -                       -
mx-self   mx-self.lab.test   127.0.25.3     ipv4 self    mx-self    ca-a -       success                false true  false TLSv1.3 certificate-not-trusted untrusted-issuer
mx-expired mx-expired.lab.test 127.0.25.4   ipv4 expired mx-expired ca-a -       success                false true  true  TLSv1.3 certificate-expired     expired
mx-wrong  mx-wrong.lab.test  127.0.25.5     ipv4 wrong   mx-wrong   ca-a -       success                true  false false TLSv1.3 -                       -
mx-tls12  mx-tls12.lab.test  127.0.25.6     ipv4 tls12   mx-tls12   ca-a tls12   success                true  true  false TLSv1.2 -                       -
mx-ecdsa  mx-ecdsa.lab.test  127.0.25.7     ipv4 ecdsa   mx-ecdsa   ca-a -       success                true  true  false TLSv1.3 -                       -
mx-wild   mx-wild.lab.test   127.0.25.8     ipv4 wild    mx-wild    ca-a -       success                true  true  false TLSv1.3 -                       -
mx-b      mx-b.lab.test      127.0.25.9     ipv4 root-b  mx-b       ca-b -       success                true  true  false TLSv1.3 -                       -
mx-good6  mx-good.lab.test   2001:db8:25::2 ipv6 good    mx-good    ca-a -       success                true  true  false TLSv1.3 -                       -
EOF
}

# "host:port" as master.cf and bash's /dev/tcp want it.
listen_addr() { # IP FAMILY
  if [ "$2" = ipv6 ]; then echo "[$1]:25"; else echo "$1:25"; fi
}

# JSON helpers: the table holds only simple tokens, so quoting is enough.
jstr() { if [ "$1" = - ]; then echo null; else printf '"%s"' "$1"; fi; }
jbool() { if [ "$1" = - ]; then echo null; else echo "$1"; fi; }
jlist() {
  if [ "$1" = - ]; then
    echo "[]"
    return
  fi
  local out="" x
  IFS=, read -ra xs <<<"$1"
  for x in "${xs[@]}"; do out="${out:+$out, }\"$x\""; done
  echo "[$out]"
}

write_config() {
  # Postfix needs the queue directory to exist; it creates the data
  # directory and the queue's subdirectories itself (postfix check), with
  # the owners it insists on.
  mkdir -p "$conf" "$dir/queue"
  sed "s|@LABDIR@|$dir|g" "$here/postfix/main.cf.in" >"$conf/main.cf"
  sed "s|@LABDIR@|$dir|g" "$here/postfix/master.cf.in" >"$conf/master.cf"
  local name host ip fam tls chain ca protos rest listen
  while read -r name host ip fam tls chain ca protos rest; do
    listen=$(listen_addr "$ip" "$fam")
    {
      printf '%s inet n - n - - smtpd\n' "$listen"
      printf '  -o syslog_name=postfix/%s\n  -o myhostname=%s\n' "$name" "$host"
      if [ "$tls" = none ]; then
        printf '  -o smtpd_tls_security_level=none\n'
      else
        printf '  -o smtpd_tls_security_level=may\n'
        printf '  -o smtpd_tls_chain_files=%s/pki/%s.chain.pem\n' "$dir" "$chain"
      fi
      # Only TLS 1.2: Postfix 3.6+ understands the version range syntax.
      if [ "$protos" = tls12 ]; then
        printf '  -o smtpd_tls_protocols=>=TLSv1.2,<=TLSv1.2\n'
      fi
    } >>"$conf/master.cf"
  done < <(endpoints)

  # A small config for posttls-finger (it needs MAIL_CONFIG with a main.cf
  # even on a "No configuration" install). Anonymous suites are excluded:
  # below "verify" Postfix's client offers them, the server (which picks,
  # tls_preempt_cipherlist) then prefers ADH on TLS 1.2, and that session
  # has no certificate to judge. Our probe never offers them either.
  # posttls-finger ignores smtp_tls_exclude_ciphers; it honours the TLS
  # library's grade lists, so "!aNULL" goes on the default "medium" list.
  mkdir -p "$dir/finger"
  cat >"$dir/finger/main.cf" <<EOF
compatibility_level = 3.6
myhostname = probe.lab.test
mydomain = lab.test
inet_protocols = all
tls_medium_cipherlist = aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL
EOF
}

write_endpoints_json() {
  local name host ip fam tls chain ca protos st tr nm ex vers rt rs first=1
  {
    echo "["
    while read -r name host ip fam tls chain ca protos st tr nm ex vers rt rs; do
      [ $first = 1 ] || echo ","
      first=0
      printf '  {"name": "%s", "host": "%s", "ip": "%s", "port": 25, "family": "%s",\n' \
        "$name" "$host" "$ip" "$fam"
      printf '   "tls": "%s", "ca": %s,\n' "$tls" \
        "$(if [ "$ca" = - ]; then echo null; else jstr "$dir/pki/$ca.pem"; fi)"
      printf '   "expect": {"status": "%s", "trusted": %s, "mx_hostname": %s, "expired": %s,\n' \
        "$st" "$(jbool "$tr")" "$(jbool "$nm")" "$(jbool "$ex")"
      printf '              "versions": %s, "result_type": %s, "reasons": %s}}' \
        "$(jlist "$vers")" "$(jstr "$rt")" "$(jlist "$rs")"
    done < <(endpoints)
    printf '\n]\n'
  } >"$dir/endpoints.json"
}

# Poll every listener until it accepts a TCP connection or time runs out.
wait_listeners() {
  local deadline=$((SECONDS + 15)) name host ip fam rest pending
  while :; do
    pending=""
    while read -r name host ip fam rest; do
      timeout 1 bash -c "exec 3<>/dev/tcp/$ip/25" 2>/dev/null || pending="$pending $name"
    done < <(endpoints)
    [ -z "$pending" ] && return 0
    if [ $SECONDS -ge $deadline ]; then
      echo "lab.sh: listeners not accepting connections:$pending" >&2
      tail -n 20 "$dir/maillog" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.1
  done
}

start() {
  if [ -f "$conf/main.cf" ] && postfix -c "$conf" status >/dev/null 2>&1; then
    die "a lab Postfix is already running in $dir; run 'lab.sh stop $dir' first"
  fi
  [ "$(id -u)" -eq 0 ] || die "Postfix must be started as root"
  rm -rf "$dir/pki"
  "$here/mkcerts.sh" "$dir/pki"
  write_config
  # `postfix check` creates the queue directories with the right owners.
  postfix -c "$conf" check
  postfix -c "$conf" start >/dev/null 2>&1 || {
    postfix -c "$conf" start || true
    die "postfix start failed (log: $dir/maillog)"
  }
  wait_listeners || {
    postfix -c "$conf" stop >/dev/null 2>&1 || true
    die "Postfix listeners did not come up"
  }
  write_endpoints_json
  # The lab DNS is optional and written separately; start it when present.
  if [ -f "$here/dns/start-dns.sh" ]; then
    bash "$here/dns/start-dns.sh" "$dir/dns" || die "start-dns.sh failed"
  fi
}

stop() {
  local rc=0
  if [ -f "$here/dns/stop-dns.sh" ]; then
    bash "$here/dns/stop-dns.sh" "$dir/dns" || rc=1
  fi
  if [ -f "$conf/main.cf" ] && postfix -c "$conf" status >/dev/null 2>&1; then
    postfix -c "$conf" stop >/dev/null 2>&1 || rc=1
    # `postfix stop` only signals the master; wait until it is gone so an
    # immediate `start` on the same directory works.
    local deadline=$((SECONDS + 10))
    while postfix -c "$conf" status >/dev/null 2>&1; do
      if [ $SECONDS -ge $deadline ]; then
        echo "lab.sh: Postfix in $dir did not stop" >&2
        return 1
      fi
      sleep 0.1
    done
  fi
  return $rc
}

case $cmd in
start) start ;;
stop) stop ;;
*) die "usage: lab.sh start|stop DIR" ;;
esac
