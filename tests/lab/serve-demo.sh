#!/usr/bin/env bash
# The demo behind `make serve-demo`: start the lab, run `starttls-scan
# serve` against it, scan the demo domains through the API, then show the
# job, a record, the change feed, the totals and some metrics. Run via
# netns-run.sh (the lab's addresses are private, hence --allow-private).
set -euo pipefail
bin=${1:?usage: serve-demo.sh PATH-TO-starttls-scan}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
lab="$STLS_LAB_TMP/lab"
api=http://127.0.0.1:8025

echo "== starting the lab (Postfix + DNS on loopback, private namespace)"
"$here/lab.sh" start "$lab" >/dev/null

echo "== starttls-scan serve --db $lab/store.db --allow-private --ca-file <lab CAs> ..."
"$bin" serve --db "$lab/store.db" --allow-private --ca-file "$lab/sts/ca-bundle.pem" \
  --resolver 127.0.53.53 --ipv6 on 2>"$lab/serve.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; "$here/lab.sh" stop "$lab" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -sf "$api/v1/health" >/dev/null && break; sleep 0.1; done

domains=$(grep -v '^#' "$top/targets/demo.txt" | awk 'NF {print $1}' | jq -R . | jq -sc '{domains: .}')
echo
echo "== POST /v1/scans $domains"
id=$(curl -sf -X POST -H 'Content-Type: application/json' --data "$domains" "$api/v1/scans" | jq -r .id)
echo "job $id"
for _ in $(seq 600); do
  state=$(curl -sf "$api/v1/scans/$id" | jq -r .state)
  [ "$state" = done ] && break
  sleep 0.2
done
echo
echo "== GET /v1/scans/$id"
curl -sf "$api/v1/scans/$id" | jq -c .
echo
echo "== GET /v1/scans/$id/results (one line per domain)"
curl -sf "$api/v1/scans/$id/results" |
  jq -r '[.domain, .status, (.policy.recommended // "-"), ([.hosts[].status] | unique | join(","))] | @tsv' |
  column -t -s $'\t' -N DOMAIN,STATUS,RECOMMENDED,PROBES
echo
echo "== GET /v1/domains/good.lab.test (the latest record, abridged)"
curl -sf "$api/v1/domains/good.lab.test" | jq -c '{domain, scanned_at, status, recommended: .policy.recommended,
  hosts: [.hosts[] | {mx, ip, status, tls: .tls.version, trusted: .tls.trust.trusted}]}'
echo
echo "== GET /v1/feed?limit=5 (the first change events)"
curl -sf "$api/v1/feed?limit=5"
echo
echo "== GET /v1/stats"
curl -sf "$api/v1/stats" | jq -c .
echo
echo "== GET /metrics (excerpt)"
curl -sf "$api/metrics" | grep -E '^starttls_scan_(domains|tls_versions|scans)\b' || true
echo
echo "The status page is at $api/ while the service runs."
