#!/usr/bin/env bash
# The DANE lab cases as real Postfix sees them: posttls-finger -l dane, with
# Postfix's own DNSSEC-aware lookups through the lab resolver, against the
# lab's Postfix endpoints. This checks that each case of README.md ("DANE
# cases") means what test_dane_lab.c asserts about our own code.
#
# Usage (inside the lab namespace): test-dane-postfix.sh [LABDIR]
# Starts the lab (tests/lab/lab.sh start) in LABDIR, or in
# $STLS_LAB_TMP/dane-lab, and stops it at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
[ "${STLS_IN_NETNS:-}" = 1 ] || { echo "test-dane-postfix: run me inside tests/lab/netns-run.sh" >&2; exit 1; }
command -v posttls-finger >/dev/null || { echo "test-dane-postfix: posttls-finger missing" >&2; exit 1; }
dir=${1:-$STLS_LAB_TMP/dane-lab}

bash "$here/../lab.sh" start "$dir" >/dev/null
trap 'bash "$here/../lab.sh" stop "$dir" >/dev/null' EXIT

# posttls-finger needs a configuration directory; dnssec makes it set the
# AD bit and trust it, as smtp(8) does at "dane".
mkdir -p "$dir/posttls-finger"
printf 'smtp_dns_support_level = dnssec\nsmtp_host_lookup = dns\n' >"$dir/posttls-finger/main.cf"

fails=0
# expect DOMAIN REGEX [REGEX...]: every regex must occur in the output.
expect() {
  local dom=$1 out re
  shift
  out=$(MAIL_CONFIG="$dir/posttls-finger" timeout 30 posttls-finger -c -l dane "$dom" 2>&1 || true)
  for re in "$@"; do
    if ! grep -qE -- "$re" <<<"$out"; then
      echo "FAIL $dom: no /$re/ in:" >&2
      sed 's/^/    /' <<<"$out" >&2
      fails=$((fails + 1))
      return
    fi
  done
  echo "ok   $dom"
}
# refuse DOMAIN REGEX: the regex must not occur.
refuse() {
  local out
  out=$(MAIL_CONFIG="$dir/posttls-finger" timeout 30 posttls-finger -c -l dane "$1" 2>&1 || true)
  if grep -qE -- "$2" <<<"$out"; then
    echo "FAIL $1: unexpected /$2/" >&2
    fails=$((fails + 1))
  fi
}

verified='Verified TLS connection established'
untrusted='Untrusted TLS connection established'
expect ee.dane.test 'Matched DANE EE certificate at depth 0: 3 1 1 ' "$verified"
expect self.dane.test 'Matched DANE EE certificate at depth 0: 3 0 1 ' "$verified"
expect expired.dane.test 'Matched DANE EE certificate at depth 0: 3 1 2 ' "$verified"
expect ta.dane.test 'Matched DANE TA certificate at depth 1: 2 0 1 ' "$verified to wrong.example.net"
expect taname.dane.test 'hostname mismatch' "$untrusted"
refuse taname.dane.test 'Verified'
expect mismatch.dane.test "$untrusted"
refuse mismatch.dane.test 'Matched DANE'
expect unusable.dane.test 'all TLSA records unusable, fallback to unauthenticated TLS'
refuse unusable.dane.test 'Verified'
expect notlsa.dane.test "$untrusted to mx-notlsa.dane.test"
refuse notlsa.dane.test 'TLSA'
expect cname.dane.test 'Matched DANE EE certificate at depth 0: 3 1 1 ' "$verified"
expect tlsabogus.dane.test 'TLSA lookup error for mx-tlsabogus.dane.test'
expect insecurehost.dane.test "$untrusted to mx-good.lab.test"
refuse insecurehost.dane.test 'TLSA'
expect bogus.test 'name=bogus.test type=MX: Host not found, try again'

if [ "$fails" -ne 0 ]; then
  echo "test-dane-postfix: $fails case(s) failed" >&2
  exit 1
fi
echo "test-dane-postfix: all cases agree with Postfix"
