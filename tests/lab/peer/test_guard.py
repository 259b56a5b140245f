#!/usr/bin/python3
"""The private-address guard (--refuse-private) against the scripted peer.

With the flag, an address on 127.0.0.0/8 is refused before connect(): the
peer listening there sees no connection at all, and the host record says
"status": "blocked" with the error {"stage": "connect", "code":
"ADDRESS_NOT_ALLOWED"}. Without the flag the same peer is probed as always.
Both for `probe` (an address given) and `scan` (the address from the lab
DNS: the guard is checked after DNS, for every address). With --debug the
session logs its state changes on stderr, and prints nothing there without.

Usage (inside tests/lab/netns-run.sh, with the lab DNS up: see
tests/lab/CMakeLists.txt): test_guard.py --bin PATH
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))
sys.path.insert(0, HERE)

import stlstest  # noqa: E402
from test_faults import PEER_ADDR, Peer  # noqa: E402

TLS = os.path.join(HERE, "scenarios", "tls_full_session.json")


def with_peer(fn):
    with tempfile.TemporaryDirectory(dir=os.environ.get("STLS_LAB_TMP")) as work:
        peer = Peer(TLS, work)
        try:
            port = peer.start()
            out = fn(port)
            peer.wait_idle(5)
            events = peer.events()
        finally:
            peer.stop()
    conns = {e["conn"] for e in events if e["event"] == "accept"}
    return out, len(conns)


def assert_blocked(h):
    assert h["status"] == "blocked", "status %r" % h["status"]
    err = h["error"]
    assert err["stage"] == "connect" and err["code"] == "ADDRESS_NOT_ALLOWED", "error %r" % err
    assert "loopback" in err["message"], "message %r" % err["message"]
    assert h["tls"] is None and h["banner"] is None, "a blocked host has no session facts"


def probe_case(bin_path, guard):
    extra = ["--refuse-private"] if guard else []
    rec, conns = with_peer(lambda port: stlstest.run_probe(
        bin_path, ["%s:%d" % (PEER_ADDR, port), "--ehlo", "client.lab.test"] + extra))
    if guard:
        assert_blocked(rec)
        assert conns == 0, "the peer saw %d connection(s), want none" % conns
    else:
        assert rec["status"] == "success", "status %r" % rec["status"]
        assert conns == 1, "the peer saw %d connection(s), want 1" % conns


def scan_case(bin_path, guard):
    extra = ["--refuse-private"] if guard else []

    def run(port):
        cmd = [bin_path, "scan", "-q", "peer.lab.test", "--port", str(port), "--ipv6", "off",
               "--no-retry", "--ehlo", "client.lab.test"] + extra
        recs, _ = stlstest.run_json_lines(cmd, timeout=60)
        return recs

    recs, conns = with_peer(run)
    assert len(recs) == 1, "want one record, got %d" % len(recs)
    hosts = recs[0]["hosts"]
    assert len(hosts) == 1, "want one host, got %d" % len(hosts)
    if guard:
        assert_blocked(hosts[0])
        assert conns == 0, "the peer saw %d connection(s), want none" % conns
    else:
        assert hosts[0]["status"] == "success", "status %r" % hosts[0]["status"]
        assert conns == 1, "the peer saw %d connection(s), want 1" % conns


def debug_case(bin_path):
    """--debug logs each state change on stderr; without it, stderr is empty."""
    def run(port, flag):
        cmd = [bin_path, "probe", "%s:%d" % (PEER_ADDR, port), "--ehlo", "client.lab.test"] + flag
        env = dict(os.environ)
        env.pop("STLS_DEBUG", None)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)
        assert p.returncode == 0, "exit %d: %s" % (p.returncode, p.stderr.decode())
        return json.loads(p.stdout), p.stderr.decode()

    (rec, err), _ = with_peer(lambda port: run(port, ["--debug"]))
    assert rec["status"] == "success", "status %r" % rec["status"]
    for change in ("connect -> greeting", "greeting -> ehlo", "ehlo -> starttls",
                   "starttls -> handshake", "handshake -> ehlo_tls", "ehlo_tls -> quit"):
        assert change in err, "no %r in the debug log:\n%s" % (change, err)
    (rec, err), _ = with_peer(lambda port: run(port, []))
    assert err == "", "stderr without --debug: %r" % err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        print("test_guard: run me inside tests/lab/netns-run.sh", file=sys.stderr)
        return 1
    checks = [
        ("probe --refuse-private: blocked, no connection", lambda: probe_case(args.bin, True)),
        ("probe without it: probed as always", lambda: probe_case(args.bin, False)),
        ("scan --refuse-private: blocked after DNS, no connection",
         lambda: scan_case(args.bin, True)),
        ("scan without it: probed as always", lambda: scan_case(args.bin, False)),
        ("--debug logs the state changes", lambda: debug_case(args.bin)),
    ]
    passed = failed = 0
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
