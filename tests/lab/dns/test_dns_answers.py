#!/usr/bin/python3
"""Malformed DNS answers end to end: `starttls-scan scan` against
scripted_dns.py inside the lab namespace.

An MX whose exchange (or owner) is a compression pointer into the header
is a malformed answer: the domain is dns-error (BADRESP), never null-mx.
So is an MX host whose A answer has such an owner.
A real null MX stays null-mx. The same holds for answers that come over
TCP after a truncated UDP answer, written in pieces (the "tc-" names).
Every record is validated against the schema. Prints one line per check and exits non-zero on any failure.

Usage: test_dns_answers.py --bin PATH
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

import stlstest  # noqa: E402

ADDR = "127.0.53.99"

WANT = {
    "null.hostile.test": ("null-mx", None),
    "ptr0.hostile.test": ("dns-error", "BADRESP"),
    "ptr4.hostile.test": ("dns-error", "BADRESP"),
    "ptr6.hostile.test": ("dns-error", "BADRESP"),
    "owner4.hostile.test": ("dns-error", "BADRESP"),
    "mxa.hostile.test": ("dns-error", "BADRESP"),
    "tc-null.hostile.test": ("null-mx", None),
    "tc-ptr0.hostile.test": ("dns-error", "BADRESP"),
    "tc-ptr4.hostile.test": ("dns-error", "BADRESP"),
    "tc-owner4.hostile.test": ("dns-error", "BADRESP"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("test_dns_answers: run me inside tests/lab/netns-run.sh")
    subprocess.run(["ip", "addr", "add", ADDR + "/32", "dev", "lo"], check=False,
                   stderr=subprocess.DEVNULL)
    srv = subprocess.Popen([sys.executable, os.path.join(HERE, "scripted_dns.py"), ADDR],
                           stdout=subprocess.PIPE)
    failed = 0
    try:
        if srv.stdout.readline().strip() != b"ready":
            sys.exit("scripted_dns did not start")
        cmd = [args.bin, "scan", "--resolver", ADDR, "--dns-timeout", "2", "--dns-tries", "1",
               "-q", "--no-retry"] + sorted(WANT)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        recs = {}
        for line in p.stdout.decode().splitlines():
            rec = json.loads(line)
            stlstest.validate(rec)
            recs[rec["domain"]] = rec
        for domain, (status, code) in sorted(WANT.items()):
            rec = recs.get(domain)
            got = None
            if rec is not None:
                err = rec["dns"].get("error") or {}
                got = (rec["status"], err.get("code"))
            if got == (status, code):
                print("ok   %s: %s %s" % (domain, status, code or ""))
            else:
                failed += 1
                print("FAIL %s: got %s, want %s\nstderr: %s" %
                      (domain, got, (status, code), p.stderr.decode()[-2000:]))
    finally:
        srv.kill()
        srv.wait()
    print("%d passed, %d failed" % (len(WANT) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
