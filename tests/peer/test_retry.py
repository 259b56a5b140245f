#!/usr/bin/python3
"""scan's politeness retry, against the scripted peer: a 421 greeting (a
server shedding load) is retried once after --retry-delay, not hammered,
and --no-retry makes exactly one attempt.

Usage (inside tests/lab/netns-run.sh, with the lab DNS up: see
tests/peer.cmake): test_retry.py --bin PATH

peer.lab.test has MX mx-peer.lab.test = 127.0.26.1, where the peer listens
on a free port (scan --port). Prints ok/FAIL lines and "N passed, M failed".
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

import stlstest  # noqa: E402
from test_faults import Peer  # noqa: E402

SCENARIO = os.path.join(HERE, "scenarios", "greeting_421.json")


def scan(bin_path, port, extra):
    cmd = [bin_path, "scan", "-q", "peer.lab.test", "--port", str(port), "--ipv6", "off"] + extra
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    took = time.monotonic() - t0
    assert p.returncode == 0, "%s exited %d: %s" % (cmd, p.returncode, p.stderr.decode())
    lines = p.stdout.decode().splitlines()
    assert len(lines) == 1, "want one record, got %d" % len(lines)
    rec = json.loads(lines[0])
    stlstest.validate(rec)
    return rec, took


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
    for name, extra, conns, retried, secs in cases:
        try:
            run_case(args.bin, extra, conns, retried, secs)
            print("ok %s" % name)
            passed += 1
        except (AssertionError, subprocess.TimeoutExpired) as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
