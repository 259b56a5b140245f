#!/usr/bin/env bash
# Start or stop the Postfix test lab: one Postfix instance with one smtpd
# listener per endpoint, each on port 25 of its own loopback address, as a
# real MX would be. See tests/lab/README.md for the address plan.
#
# Listeners run with the machine's OpenSSL configuration, except the
# "legacy" ones: they get a lab-only openssl.cnf (DIR/openssl-legacy.cnf,
# through Postfix's per-process tls_config_file) that lowers OpenSSL's
# security level to 0 and its minimum protocol to TLS 1.0. Only so can
# OpenSSL 3 on Debian load a SHA-1 signed certificate (it refuses with "ca
# md too weak" otherwise) or speak TLS 1.0/1.1 alone. The other listeners
# stay exactly as Debian's defaults make them.
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
legacy_cnf="$dir/openssl-legacy.cnf"

# The endpoint table: the single source for master.cf listeners and for
# endpoints.json (which the tests read). Columns:
#   name host ip family tls-kind chain ca protocols openssl |
#   expected: status trusted mx_hostname expired versions result_type reasons
#             accepted quality
# "-" means "not applicable" (JSON null, or no override for protocols).
# versions, reasons, accepted and quality are comma-separated lists.
#   protocols  smtpd_tls_protocols: - (Postfix default), tls12, tls10, tls11
#              (that version only), modern (TLS 1.2 and up)
#   openssl    default or legacy (the listener's OpenSSL configuration, see
#              above)
#   versions   what our probe reports as tls.version (mbedTLS negotiates
#              TLS 1.2/1.3; for legacy-only servers the version a hand-built
#              hello saw)
#   accepted   every version the server accepts, as measured with
#              posttls-finger -p and openssl s_client at security level 0
#   quality    the chain-quality deviations of the chain as sent: wrong-order,
#              root-included, missing-intermediate, sha1, weak-rsa,
#              long-validity (leaf valid > 398 days), self-signed (leaf);
#              every other fact is as a good chain has it (see
#              write_endpoints_json for the JSON form)
endpoints() {
  cat <<'TABLE'
mx-plain   mx-plain.lab.test   127.0.25.1     ipv4 none    -          -    -      default starttls-not-supported -     -     -     -       -                       -                -                               -
mx-good    mx-good.lab.test    127.0.25.2     ipv4 good    mx-good    ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-self    mx-self.lab.test    127.0.25.3     ipv4 self    mx-self    ca-a -      default success                false true  false TLSv1.3 certificate-not-trusted untrusted-issuer TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 self-signed,long-validity
mx-expired mx-expired.lab.test 127.0.25.4     ipv4 expired mx-expired ca-a -      default success                false true  true  TLSv1.3 certificate-expired     expired          TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 -
mx-wrong   mx-wrong.lab.test   127.0.25.5     ipv4 wrong   mx-wrong   ca-a -      default success                true  false false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-tls12   mx-tls12.lab.test   127.0.25.6     ipv4 tls12   mx-tls12   ca-a tls12  default success                true  true  false TLSv1.2 -                       -                TLSv1.2                         long-validity
mx-ecdsa   mx-ecdsa.lab.test   127.0.25.7     ipv4 ecdsa   mx-ecdsa   ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-wild    mx-wild.lab.test    127.0.25.8     ipv4 wild    mx-wild    ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-b       mx-b.lab.test       127.0.25.9     ipv4 root-b  mx-b       ca-b -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-good6   mx-good.lab.test    2001:db8:25::2 ipv6 good    mx-good    ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 long-validity
mx-order   mx-order.lab.test   127.0.25.10    ipv4 order   mx-order   ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 wrong-order
mx-nointer mx-nointer.lab.test 127.0.25.11    ipv4 nointer mx-nointer ca-a -      default success                false true  false TLSv1.3 certificate-not-trusted untrusted-issuer TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 missing-intermediate
mx-root    mx-root.lab.test    127.0.25.12    ipv4 root    mx-root    ca-a -      default success                true  true  false TLSv1.3 -                       -                TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3 root-included
mx-sha1    mx-sha1.lab.test    127.0.25.13    ipv4 sha1    mx-sha1    ca-a modern legacy  success                false true  false TLSv1.3 validation-failure      bad-key          TLSv1.2,TLSv1.3                 sha1
mx-tls10   mx-tls10.lab.test   127.0.25.14    ipv4 tls10   mx-tls10   ca-a tls10  legacy  handshake-error        true  true  false TLSv1.0 -                       -                TLSv1.0                         long-validity
mx-tls11   mx-tls11.lab.test   127.0.25.15    ipv4 tls11   mx-tls11   ca-a tls11  legacy  handshake-error        true  true  false TLSv1.1 -                       -                TLSv1.1                         long-validity
TABLE
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

# The lab-only OpenSSL configuration of the legacy listeners (and of
# openssl s_client when it probes them): security level 0 allows TLS 1.0/1.1
# alone and SHA-1 signed certificates; MinProtocol lets the protocol range
# start at TLS 1.0 at all. smtpd_tls_protocols then narrows the range per
# listener.
write_legacy_openssl_cnf() {
  cat >"$legacy_cnf" <<'EOF'
# Lab only (generated by tests/lab/lab.sh): never use for anything real.
openssl_conf = lab_legacy_init

[lab_legacy_init]
ssl_conf = lab_legacy_ssl

[lab_legacy_ssl]
system_default = lab_legacy_tls

[lab_legacy_tls]
MinProtocol = TLSv1
CipherString = DEFAULT@SECLEVEL=0
EOF
}

# Postfix's smtpd_tls_protocols for a table value (Postfix 3.6+ range
# syntax; "TLSv1" is TLS 1.0).
protocols_value() {
  case $1 in
  -) ;;
  tls12) echo '>=TLSv1.2,<=TLSv1.2' ;;
  tls11) echo '>=TLSv1.1,<=TLSv1.1' ;;
  tls10) echo '>=TLSv1,<=TLSv1' ;;
  modern) echo '>=TLSv1.2' ;;
  *) die "unknown protocols value '$1' in the endpoint table" ;;
  esac
}

write_config() {
  local name host ip fam tls chain ca protos ossl rest listen pv
  # Postfix needs the queue directory to exist; it creates the data
  # directory and the queue's subdirectories itself (postfix check), with
  # the owners it insists on.
  mkdir -p "$conf" "$dir/queue"
  sed "s|@LABDIR@|$dir|g" "$here/postfix/main.cf.in" >"$conf/main.cf"
  sed "s|@LABDIR@|$dir|g" "$here/postfix/master.cf.in" >"$conf/master.cf"
  write_legacy_openssl_cnf
  while read -r name host ip fam tls chain ca protos ossl rest; do
    listen=$(listen_addr "$ip" "$fam")
    pv=$(protocols_value "$protos")
    {
      printf '%s inet n - n - - smtpd\n' "$listen"
      printf '  -o syslog_name=postfix/%s\n  -o myhostname=%s\n' "$name" "$host"
      if [ "$tls" = none ]; then
        printf '  -o smtpd_tls_security_level=none\n'
      else
        printf '  -o smtpd_tls_security_level=may\n'
        printf '  -o smtpd_tls_chain_files=%s/pki/%s.chain.pem\n' "$dir" "$chain"
      fi
      if [ -n "$pv" ]; then
        printf '  -o smtpd_tls_protocols=%s\n' "$pv"
      fi
      # Postfix reads tls_config_file when the process initialises OpenSSL,
      # so the override holds for this listener alone.
      if [ "$ossl" = legacy ]; then
        printf '  -o tls_config_file=%s\n' "$legacy_cnf"
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
  # It needs no special OpenSSL configuration for the legacy endpoints:
  # Postfix's client sets OpenSSL's security level to 0 itself (opportunistic
  # TLS takes what it gets), so TLS 1.0/1.1 and SHA-1 chains work and verify
  # as they would for a real Postfix. openssl s_client needs
  # OPENSSL_CONF=DIR/openssl-legacy.cnf for the same view (endpoints.json
  # names the file per endpoint).
  mkdir -p "$dir/finger"
  cat >"$dir/finger/main.cf" <<EOF
compatibility_level = 3.6
myhostname = probe.lab.test
mydomain = lab.test
inet_protocols = all
tls_medium_cipherlist = aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL
EOF
}

# The chain-quality facts a quality list (see the table) stands for, as a
# JSON object: names as in include/stls/chain.h's stls_chain_facts_t.
jquality() {
  local q=",$1," tls=$2 tr=$3
  if [ "$tls" = none ]; then
    echo null
    return
  fi
  has() { case $q in *",$1,"*) echo true ;; *) echo false ;; esac; }
  not() { case $q in *",$1,"*) echo false ;; *) echo true ;; esac; }
  printf '{"order_ok": %s, "root_included": %s, "leaf_self_signed": %s, ' \
    "$(not wrong-order)" "$(has root-included)" "$(has self-signed)"
  printf '"missing_intermediate": %s, "trusted_with_known_intermediates": %s, ' \
    "$(has missing-intermediate)" \
    "$(if [ "$tr" = true ]; then echo true; else has missing-intermediate; fi)"
  printf '"sha1_signature": %s, "weak_rsa_key": %s, "leaf_validity_too_long": %s}' \
    "$(has sha1)" "$(has weak-rsa)" "$(has long-validity)"
}

# Trust per store (stores named after their CA files, ca-a and ca-b): the
# endpoint's own CA gives the "trusted" column, the other CA trusts nothing
# here.
jstores() { # CA TRUSTED
  local ca=$1 tr=$2
  if [ "$ca" = - ] || [ "$tr" = - ]; then
    echo null
    return
  fi
  local a=false b=false
  [ "$ca" = ca-a ] && a=$tr
  [ "$ca" = ca-b ] && b=$tr
  printf '{"ca-a": %s, "ca-b": %s}' "$a" "$b"
}

# The protocol a legacy-only server speaks (the highest it accepts), or null.
jlegacy() {
  case ",$1," in
  *,TLSv1.2,* | *,TLSv1.3,* | ,-,) echo null ;;
  *,TLSv1.1,*) echo '"TLSv1.1"' ;;
  *,TLSv1.0,*) echo '"TLSv1.0"' ;;
  *) echo null ;;
  esac
}

write_endpoints_json() {
  local name host ip fam tls chain ca protos ossl st tr nm ex vers rt rs acc q first=1
  {
    echo "["
    while read -r name host ip fam tls chain ca protos ossl st tr nm ex vers rt rs acc q; do
      [ $first = 1 ] || echo ","
      first=0
      printf '  {"name": "%s", "host": "%s", "ip": "%s", "port": 25, "family": "%s",\n' \
        "$name" "$host" "$ip" "$fam"
      printf '   "tls": "%s", "ca": %s,\n' "$tls" \
        "$(if [ "$ca" = - ]; then echo null; else jstr "$dir/pki/$ca.pem"; fi)"
      # The known-intermediates pool, and the OpenSSL configuration that
      # openssl s_client needs to talk to this server at all (null: the
      # system's will do; only the legacy-only servers need another).
      printf '   "intermediates": %s, "openssl_conf": %s,\n' \
        "$(if [ "$tls" = none ]; then echo null; else jstr "$dir/pki/intermediates.pem"; fi)" \
        "$(if [ "$(jlegacy "$acc")" != null ]; then jstr "$legacy_cnf"; else echo null; fi)"
      printf '   "expect": {"status": "%s", "trusted": %s, "mx_hostname": %s, "expired": %s,\n' \
        "$st" "$(jbool "$tr")" "$(jbool "$nm")" "$(jbool "$ex")"
      printf '              "versions": %s, "result_type": %s, "reasons": %s,\n' \
        "$(jlist "$vers")" "$(jstr "$rt")" "$(jlist "$rs")"
      printf '              "accepted_versions": %s, "legacy_only": %s,\n' \
        "$(jlist "$acc")" "$(jlegacy "$acc")"
      printf '              "trust_stores": %s,\n' "$(jstores "$ca" "$tr")"
      printf '              "chain": %s}}' "$(jquality "$q" "$tls" "$tr")"
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
  # MTA-STS policy hosts (nginx); their own CA goes into a bundle with
  # root A, so one --ca-file trusts the whole lab: $dir/sts/ca-bundle.pem.
  if [ -f "$here/sts/start-sts.sh" ]; then
    bash "$here/sts/start-sts.sh" "$dir/sts" "$dir/pki/ca-a.pem" ||
      die "start-sts.sh failed"
  fi
}

stop() {
  local rc=0
  if [ -f "$here/sts/stop-sts.sh" ]; then
    bash "$here/sts/stop-sts.sh" "$dir/sts" || rc=1
  fi
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
