#!/usr/bin/env bash
# The Kubernetes Job (docker/k8s) against the Kubernetes API schema
# (docker/validate-k8s.py): it validates; broken copies (an unknown field,
# a wrong type, a missing required field) do not, so the check can fail;
# the shard count is taken from spec.completions alone; and where a kubectl
# with a recent kustomize exists, its rendering equals ours.
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
py=${STLS_PYTHON:-/usr/bin/python3}
val="$src/docker/validate-k8s.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

"$py" "$val" --kustomize "$src/docker/k8s" || { echo "FAIL: the Job does not validate"; fail=1; }

mutate() { # NAME SED-EXPRESSION: a broken copy must be rejected
  rm -rf "$tmp/k"; cp -r "$src/docker/k8s" "$tmp/k"
  sed -i "$2" "$tmp/k/scan-job.yaml"
  if cmp -s "$src/docker/k8s/scan-job.yaml" "$tmp/k/scan-job.yaml"; then
    echo "FAIL: mutation '$1' changed nothing"; fail=1; return
  fi
  if "$py" "$val" --kustomize "$tmp/k" >"$tmp/out" 2>&1; then
    echo "FAIL: accepted with $1"; fail=1
  else
    echo "ok: rejected with $1: $(grep -m1 invalid "$tmp/out")"
  fi
}
mutate "an unknown field" 's/fsGroup:/fsgroup:/'
mutate "a string for an integer" 's/completions: 8/completions: "8"/'
mutate "no container name" 's/- name: scan$/- stdin: false/'

# The shard count: written once, in spec.completions.
rm -rf "$tmp/k"; cp -r "$src/docker/k8s" "$tmp/k"
sed -i 's/completions: 8/completions: 5/' "$tmp/k/scan-job.yaml"
if STLS_PRINT_RENDERED=1 "$py" "$val" --kustomize "$tmp/k" | "$py" -c 'import sys, yaml
job = next(yaml.safe_load_all(sys.stdin))
args = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
sys.exit("--shard $((JOB_COMPLETION_INDEX + 1))/5 " not in args)'; then
  echo "ok: completions 5 gives --shard K/5"
else
  echo "FAIL: --shard does not follow spec.completions"; fail=1
fi

# kubectl's own kustomize, where it can render this (v4+).
if command -v kubectl >/dev/null && kubectl kustomize "$src/docker/k8s" >"$tmp/kubectl.yaml" 2>/dev/null; then
  STLS_PRINT_RENDERED=1 "$py" "$val" --kustomize "$src/docker/k8s" >"$tmp/ours.yaml"
  if "$py" -c 'import sys, yaml
a, b = (list(yaml.safe_load_all(open(p))) for p in sys.argv[1:])
sys.exit(a != b)' "$tmp/kubectl.yaml" "$tmp/ours.yaml"; then
    echo "ok: kubectl kustomize renders the same"
  else
    echo "FAIL: kubectl kustomize renders differently"; fail=1
  fi
  "$py" "$val" "$tmp/kubectl.yaml" || fail=1
else
  echo "note: no kubectl that renders kustomizations here; compared nothing with it"
fi
exit $fail
