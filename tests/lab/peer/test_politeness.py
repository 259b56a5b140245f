#!/usr/bin/python3
"""scan's politeness against the scripted peer: a 421 greeting (a server
shedding load) is retried once after --retry-delay, not hammered, and
--no-retry makes exactly one attempt; --per-ip 1 never has two
connections to one address open at once; --rate paces every connection,
also the extra ones of --versions.

Usage (inside tests/lab/netns-run.sh, with the lab DNS up: see
tests/lab/CMakeLists.txt): test_politeness.py --bin PATH

peer.lab.test and peer2.lab.test have MX hosts mx-peer / mx-peer2, both
127.0.26.1, where the peer listens on a free port (scan --port). Prints
ok/FAIL lines and "N passed, M failed".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, HERE)

import stlstest  # noqa: E402
from test_faults import Peer  # noqa: E402

SCENARIO = os.path.join(HERE, "scenarios", "greeting_421.json")
TARPIT = os.path.join(HERE, "scenarios", "greeting_tarpit.json")
TLS = os.path.join(HERE, "scenarios", "tls_full_session.json")


def scan(bin_path, port, extra, domains=("peer.lab.test",)):
    cmd = [bin_path, "scan", "-q"] + list(domains) + ["--port", str(port), "--ipv6", "off"] + extra
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 0, "%s exited %d: %s" % (cmd, p.returncode, p.stderr.decode())
    lines = p.stdout.decode().splitlines()
    assert len(lines) == len(domains), "want %d records, got %d" % (len(domains), len(lines))
    recs = [json.loads(l) for l in lines]
    for rec in recs:
        stlstest.validate(rec)
    return (recs[0] if len(recs) == 1 else recs), took


def run_case(bin_path, extra, want_conns, want_retried, min_secs):
    with tempfile.TemporaryDirectory(dir=os.environ.get("STLS_LAB_TMP")) as work:
        peer = Peer(SCENARIO, work)
        try:
            port = peer.start()
            rec, took = scan(bin_path, port, extra)
            peer.wait_idle(5)
            events = peer.events()
        finally:
            peer.stop()
    hosts = rec["hosts"]
    assert len(hosts) == 1, "want one host, got %d" % len(hosts)
    h = hosts[0]
    assert h["status"] == "greeting-rejected", "status %r" % h["status"]
    assert h["error"]["code"] == "SMTP_421", "error %r" % h["error"]
    ids = [f["id"] for f in h["findings"]]
    assert ("retried" in ids) == want_retried, "findings %r" % ids
    conns = {e["conn"] for e in events if e["event"] == "accept"}
    assert len(conns) == want_conns, "peer saw %d connections, want %d" % (len(conns), want_conns)
    assert took >= min_secs, "took %.2fs, want at least %.2fs (the retry delay)" % (took, min_secs)
    return True


def run_per_ip(bin_path, per_ip):
    """Two MX names on one address, each held by a greeting that never
    comes (1 s timeout): with --per-ip 1 the second connection waits for
    the first, so the scan takes two timeouts; with 2 they overlap."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("STLS_LAB_TMP")) as work:
        peer = Peer(TARPIT, work)
        try:
            port = peer.start()
            recs, took = scan(bin_path, port,
                              ["--per-ip", str(per_ip), "-c", "10", "--rate", "0",
                               "--greeting-timeout", "1", "--no-retry"],
                              domains=("peer.lab.test", "peer2.lab.test"))
        finally:
            peer.stop()
    statuses = sorted(r["hosts"][0]["status"] for r in recs)
    assert statuses == ["io-timeout", "io-timeout"], "statuses %r" % statuses
    assert all(not r["hosts"][0]["shared"] for r in recs), "two endpoints, none shared"
    if per_ip == 1:
        assert took >= 2.0, "took %.2fs: the two probes overlapped despite --per-ip 1" % took
    else:
        assert took < 1.9, "took %.2fs: the probes did not overlap with --per-ip 2" % took
    return True


def run_rate_versions(bin_path):
    """--versions makes several connections per address; each pays for a
    --rate token like the first, so 2/s spaces them by half a second."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("STLS_LAB_TMP")) as work:
        peer = Peer(TLS, work)
        try:
            port = peer.start()
            rec, took = scan(bin_path, port, ["--versions", "--rate", "2", "-w", "1",
                                              "-c", "1", "--no-retry"])
            peer.wait_idle(5)
            events = peer.events()
        finally:
            peer.stop()
    h = rec["hosts"][0]
    assert h["status"] == "success", "status %r" % h["status"]
    assert "protocol_versions" in h, "no protocol_versions"
    conns = len({e["conn"] for e in events if e["event"] == "accept"})
    assert conns >= 3, "only %d connections: --versions made no extra ones" % conns
    # The first token is there at once (burst 1.2); each further one takes
    # half a second.
    want = (conns - 1.2) / 2
    assert took >= want, "%d connections in %.2fs: faster than --rate 2 allows (%.2fs)" % (
        conns, took, want)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        print("test_retry: run me inside tests/lab/netns-run.sh", file=sys.stderr)
        return 1
    passed = failed = 0
    cases = [
        ("a 421 is retried once, after --retry-delay", ["--retry-delay", "0.5"], 2, True, 0.5),
        ("--no-retry makes one attempt", ["--no-retry"], 1, False, 0.0),
    ]
    checks = [(name, (lambda e=extra, c=conns, r=retried, s=secs:
                      run_case(args.bin, e, c, r, s)))
              for name, extra, conns, retried, secs in cases]
    checks += [("--per-ip 1: one connection at a time per address",
                lambda: run_per_ip(args.bin, 1)),
               ("--per-ip 2: two at once", lambda: run_per_ip(args.bin, 2)),
               ("--rate also paces the extra connections of --versions",
                lambda: run_rate_versions(args.bin))]
    for name, fn in checks:
        try:
            fn()
            print("ok %s" % name)
            passed += 1
        except (AssertionError, subprocess.TimeoutExpired) as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
