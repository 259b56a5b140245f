#!/usr/bin/env bash
# The demo behind `make demo`: start the lab (real Postfix endpoints and a
# DNS server, all on loopback inside a private namespace), scan the demo
# domains, show a table and one full record. Run via netns-run.sh.
set -euo pipefail
bin=${1:?usage: demo.sh PATH-TO-starttls-scan}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab="$STLS_LAB_TMP/lab"

echo "== starting the lab (Postfix + DNS on loopback, private namespace)"
"$here/lab.sh" start "$lab" >/dev/null
out="$lab/demo.ndjson"

echo "== starttls-scan scan -i targets/demo.txt --dane --mta-sts --ca-file <lab CAs> --ipv6 on"
"$bin" scan -i "$top/targets/demo.txt" --dane --mta-sts \
  --ca-file "$lab/sts/ca-bundle.pem" --ipv6 on --summary "$lab/summary.json" \
  --postfix-policy "$lab/tls_policy" -o "$out"
echo
echo "== one line per (domain, MX, address)"
jq -r '
  if (.hosts | length) == 0 then
    [.domain, .status, "-", "-", "-", "-", "-", "-"]
  else
    .domain as $d | .status as $s | (.policy.recommended // "-") as $r | .hosts[] |
    [$d, $s, .mx, .ip, .status, (.tls.version // "-"),
     (if .tls == null then "-" elif .tls.trust.trusted then "trusted"
      else "untrusted" end), $r]
  end | @tsv' "$out" | sort |
  column -t -s $'\t' -N DOMAIN,STATUS,MX,ADDRESS,PROBE,TLS,CHAIN,RECOMMENDED
echo
echo "== multi.lab.test's first host (EHLO replies and the intermediate left out)"
jq 'select(.domain == "multi.lab.test") | .hosts[0]
    | del(.ehlo.reply, .ehlo_tls) | .tls.chain |= [.[0]]' "$out"
echo
echo "== smtp_tls_policy_maps lines (--postfix-policy)"
grep -v '^#' "$lab/tls_policy"
echo
echo "== starttls-scan check ee.dane.test --level dane"
"$bin" check ee.dane.test --level dane --ca-file "$lab/sts/ca-bundle.pem" || true
echo
echo "== the run summary (--summary)"
jq -c . "$lab/summary.json"
"$here/lab.sh" stop "$lab" >/dev/null 2>&1 || true
