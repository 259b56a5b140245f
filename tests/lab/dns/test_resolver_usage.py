#!/usr/bin/python3
"""A malformed --resolver is a usage error: exit 2, one line on stderr
naming the bad entry, nothing on stdout, no query sent.

Runs inside the lab namespace (tests/lab/netns-run.sh), so that a value
the program wrongly accepted could not send a query off the machine.

Usage: test_resolver_usage.py --bin PATH
"""

import argparse
import os
import subprocess
import sys

BAD = {
    "[::1": "'[::1': '[' without ']'",
    "127.0.0.1:0": "'127.0.0.1:0': port must be 1..65535",
    "300.1.1.1": "'300.1.1.1': not an IPv4 or IPv6 address",
    "": "empty server list",
    "host:port:extra": "'host:port:extra': not an address",
    "127.0.0.1:53,": "empty server",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("test_resolver_usage: run me inside tests/lab/netns-run.sh")
    passed = failed = 0
    for cmd in ("scan", "check"):
        for value, why in sorted(BAD.items()):
            argv = [args.bin, cmd, "--resolver", value, "--dns-timeout", "1", "example.com"]
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            err = p.stderr.decode()
            lines = err.splitlines()
            ok = (p.returncode == 2 and not p.stdout and len(lines) == 1
                  and "bad --resolver " + why in lines[0])
            if ok:
                passed += 1
                print("ok   %s --resolver %r: %s" % (cmd, value, lines[0]))
            else:
                failed += 1
                print("FAIL %s --resolver %r: exit %d, stdout %r, stderr %r (want %r)"
                      % (cmd, value, p.returncode, p.stdout[:200], err[:500], why))
    # A good value still runs (the lab has no DNS here: the domain fails,
    # but not as a usage error).
    p = subprocess.run([args.bin, "scan", "--resolver", "127.0.0.1:5353,[::1]:5353",
                        "--dns-timeout", "1", "--dns-tries", "1", "-q", "example.com"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 2 and b'"dns-error"' in p.stdout:
        passed += 1
        print("ok   scan with a good --resolver list runs (dns-error, exit %d)" % p.returncode)
    else:
        failed += 1
        print("FAIL good --resolver list: exit %d, stdout %r, stderr %r"
              % (p.returncode, p.stdout[:300], p.stderr[:300]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
