#!/usr/bin/python3
"""Integration tests for `starttls-scan scan` against the lab.

Runs inside the lab namespace (tests/lab/netns-run.sh), where it starts the
lab (tests/lab/lab.sh: the Postfix endpoints plus the lab DNS serving
tests/lab/dns/lab.test.zone) in $STLS_LAB_TMP/lab, then checks:

  dns        every DNS case of targets/lab.txt against expectations written
             from the zone file: MX order and ties, implicit and null MX,
             NXDOMAIN, SERVFAIL, CNAME and IP-literal MX, IPv6-only and
             IPv6-unreachable hosts, the --max-mx and --max-addrs caps;
  shared     each (address, port, name) probed once per run: exactly one
             unshared host result per endpoint, and the summary's counters;
  input      comments, blank lines, case, trailing dot, IDN, CRLF, bad lines
             (one invalid-domain record each, never dropped), stdin, args;
  dedupe     a corpus sharing one MX costs one connection (counted in the
             summary and in Postfix's log); --no-dedupe costs one each;
  resume     kill -9 mid-run, a torn last line, then --resume: every domain
             exactly once;
  shards     --shard K/3 outputs are disjoint and their union is the
             unsharded run, whatever the order of the input;
  politeness --per-ip 1 -c 1 gives the same records; --rate holds;
  errors     bad usage and unreadable input: exit 1/2 and a one-line message;
  progress   a progress line on a terminal, only the summary on a pipe,
             nothing with --quiet.

Every line the scanner writes, and every --summary file, is validated
against the published JSON Schema (tests/lib/stlstest.py). Prints one
"ok"/"FAIL" line per check and a final "N passed, M failed"; exits non-zero
if anything failed.

Usage: test_scan.py --bin PATH [--keep]
"""

import argparse
import collections
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import stlstest  # noqa: E402

LAB_SH = os.path.join(REPO, "tests", "lab", "lab.sh")
LAB_TARGETS = os.path.join(REPO, "targets", "lab.txt")
TIMEOUT = 60

G4, G6 = "127.0.25.2", "2001:db8:25::2"  # mx-good's addresses in the zone
NO_V6 = "IPV6_DISABLED"  # --ipv6 off
UNREACH6 = ("network-unreachable", "ENETUNREACH")  # --ipv6 auto, no route
# An expectation that accepts any value: SCHEMA.md does not say whether a
# no-address domain carries a dns.error, so that is left open.
ANY = object()


# ---------------------------------------------------------------- reporting

class Results:
    """Counts checks and prints one line per check."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def run(self, name, fn, *args):
        """Run one check; an AssertionError (or any crash of the check) is a failure."""
        try:
            fn(*args)
        except AssertionError as e:
            self.failed += 1
            print("FAIL %s\n  %s" % (name, str(e).replace("\n", "\n  ")), flush=True)
            return False
        except Exception:  # a bug in the test itself still fails loudly
            self.failed += 1
            tb = traceback.format_exc().replace("\n", "\n  ")
            print("FAIL %s (test crashed)\n  %s" % (name, tb), flush=True)
            return False
        self.passed += 1
        print("ok   %s" % name, flush=True)
        return True


def require(cond, msg, *args):
    if not cond:
        raise AssertionError(msg % args if args else msg)


def eq(have, want, what):
    require(have == want, "%s: got %r, want %r", what, have, want)


# ---------------------------------------------------------------- running the scanner

class Run:
    """One finished scan: its records, exit code, stderr and summary."""

    def __init__(self, cmd, rc, out, err, records, summary, elapsed):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        self.records, self.summary, self.elapsed = records, summary, elapsed

    def by_domain(self):
        """Records keyed by domain; asserts each domain appears once."""
        d = {}
        for r in self.records:
            require(r["domain"] not in d, "domain %s has two records\n%s", r["domain"], self.ctx())
            d[r["domain"]] = r
        return d

    def ctx(self):
        return "command: %s\nexit: %d\nstderr: %s" % (" ".join(self.cmd), self.rc, self.err[-3000:])


def parse_ndjson(text, what):
    """Parse and schema-validate NDJSON text; every line must be a whole record."""
    require(text == "" or text.endswith("\n"),
            "%s does not end with a newline (torn record?)", what)
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        rec = stlstest.parse_json_line(line, "%s line %d" % (what, n))
        try:
            stlstest.validate(rec, "domain")
        except AssertionError as e:
            raise AssertionError("%s line %d: %s" % (what, n, e))
        records.append(rec)
    return records


class Scanner:
    """Runs `BIN scan` with the lab's CA and a per-run scratch file for --summary."""

    def __init__(self, binary, lab, work):
        self.bin = binary
        self.lab = lab
        self.work = work
        self.ca = os.path.join(lab, "pki", "ca-a.pem")
        self.n = 0

    def path(self, name):
        return os.path.join(self.work, name)

    def cmd(self, args):
        return [self.bin, "scan", "--ca-file", self.ca] + [str(a) for a in args]

    def run(self, args, stdin=None, expect_rc=0, summary=True, timeout=TIMEOUT):
        """Run a scan; assert its exit code; validate stdout and the summary file."""
        self.n += 1
        sum_path = self.path("summary-%d.json" % self.n)
        cmd = self.cmd(args + (["--summary", sum_path] if summary else []))
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, input=stdin.encode() if stdin is not None else None,
                               stdin=None if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            err = (e.stderr or b"").decode(errors="replace")
            raise AssertionError("timed out after %ss: %s\nstderr: %s" % (timeout, " ".join(cmd), err))
        elapsed = time.monotonic() - t0
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        ctx = "command: %s\nexit: %d\nstderr: %s" % (" ".join(cmd), p.returncode, err[-3000:])
        if expect_rc is not None:
            require(p.returncode == expect_rc, "exit %d, want %d\nstdout: %s\n%s",
                    p.returncode, expect_rc, out[:2000], ctx)
        try:
            records = parse_ndjson(out, "stdout")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, ctx))
        summ = load_summary(sum_path) if summary and p.returncode == 0 else None
        return Run(cmd, p.returncode, out, err, records, summ, elapsed)


def load_summary(path):
    require(os.path.exists(path), "--summary file %s was not written", path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    summ = stlstest.parse_json_line(text.strip(), path)
    stlstest.validate(summ, "summary")
    return summ


def read_targets(path):
    """The domains of a target file as the scanner should normalise them, in order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.rstrip(".").encode("idna").decode("ascii").lower())
    return out


# ---------------------------------------------------------------- expectations from the zone

def mx(pref, host, addrs, cname=False, ip_literal=False):
    return {"preference": pref, "host": host, "addresses": sorted(addrs),
            "cname": cname, "ip_literal": ip_literal}


def host(mxname, ip, status, code=None):
    return (mxname, ip, status, code)


def good_mx(pref=10):
    return mx(pref, "mx-good.lab.test", [G4, G6])


def good_hosts(name="mx-good.lab.test", v6="on"):
    """mx-good's two hosts: IPv4 success; IPv6 success (auto: the lab has a
    route to its address, on lo) or skipped (--ipv6 off)."""
    if v6 == "off":
        return [host(name, G4, "success"), host(name, G6, "skipped", NO_V6)]
    return [host(name, G4, "success"), host(name, G6, "success")]


def many_names(n):
    """The first n MX hosts of many.lab.test in preference order (tie at 5: m05a, m05b)."""
    names = ["m%02d" % p for p in range(1, 21) if p not in (5, 15)]
    names[4:4] = ["m05a", "m05b"]
    return ["%s.many.lab.test" % x for x in names[:n]]


def many_case(n):
    names = many_names(n)
    prefs = [int(re.match(r"m(\d+)", x).group(1)) for x in names]
    return dict(status="ok",
                mx=[mx(p, x, [G4]) for p, x in zip(prefs, names)],
                hosts=[host(x, G4, "success") for x in names])


def expected_cases(endpoints):
    """What each domain of targets/lab.txt must give with --ipv6 auto.

    The namespace has IPv6 only on lo (2001:db8:25::2 among its addresses):
    auto asks the kernel per address, so mx-good's IPv6 address is probed
    and 2001:db8:ffff::1 is network-unreachable (ENETUNREACH) unprobed.

    Keys are normalised domains. Values: status, mx (exact dns.mx in order;
    addresses compared as sets), hosts (exact (mx, ip, status, error code)
    set, in MX order), and optionally implicit_mx / null_mx / dns_error.
    """
    cases = {}
    # One domain per endpoint: "plain MX 10 mx-plain" and so on.
    for ep in endpoints:
        if ep["family"] != "ipv4":
            continue
        name = ep["host"]
        dom = name[len("mx-"):]
        status = ep["expect"]["status"]
        if name == "mx-good.lab.test":
            cases[dom] = dict(status="ok", mx=[good_mx()], hosts=good_hosts())
        else:
            # A TLS 1.0/1.1-only server fails our handshake with a known
            # code: the hand-built hello saw what it speaks.
            code = "TLS_LEGACY_ONLY" if ep["expect"].get("legacy_only") else None
            cases[dom] = dict(status="ok", mx=[mx(10, name, [ep["ip"]])],
                              hosts=[host(name, ep["ip"], status, code)])
    good = cases["good.lab.test"]
    cases.update({
        # 10 mx-good, 20 mx-self, 20 mx-ecdsa: the tie is broken by name.
        "multi.lab.test": dict(status="ok", mx=[
            good_mx(), mx(20, "mx-ecdsa.lab.test", ["127.0.25.7"]),
            mx(20, "mx-self.lab.test", ["127.0.25.3"])],
            hosts=good_hosts() + [host("mx-ecdsa.lab.test", "127.0.25.7", "success"),
                                  host("mx-self.lab.test", "127.0.25.3", "success")]),
        "implicit.lab.test": dict(status="ok", implicit_mx=True,
                                  mx=[mx(0, "implicit.lab.test", ["127.0.25.7"])],
                                  hosts=[host("implicit.lab.test", "127.0.25.7", "success")]),
        "empty.lab.test": dict(status="no-address", dns_error=ANY, implicit_mx=True,
                               mx=[mx(0, "empty.lab.test", [])], hosts=[]),
        "nullmx.lab.test": dict(status="null-mx", null_mx=True,
                                mx=[{"preference": 0, "host": ".", "addresses": []}], hosts=[]),
        # A "." next to a real MX: Postfix bounces ("does not accept mail
        # (nullMX)"), so the scanner reports null-mx too.
        "nullmixed.lab.test": dict(status="null-mx", null_mx=True,
                                   mx=[{"preference": 0, "host": ".", "addresses": []}],
                                   hosts=[]),
        "dupmx.lab.test": good,
        "upper.lab.test": good,
        "cnamedomain.lab.test": good,
        "xn--bcher-kva.lab.test": good,
        "v6only.lab.test": dict(status="ok", mx=[mx(10, "mx-v6only.lab.test", [G6])],
                                hosts=[host("mx-v6only.lab.test", G6, "success")]),
        "unreach6.lab.test": dict(status="ok",
                                  mx=[mx(10, "mx-unreach6.lab.test", [G4, "2001:db8:ffff::1"])],
                                  hosts=[host("mx-unreach6.lab.test", G4, "success"),
                                         host("mx-unreach6.lab.test", "2001:db8:ffff::1",
                                              *UNREACH6)]),
        "cname.lab.test": dict(status="ok", mx=[mx(10, "alias.lab.test", [G4, G6], cname=True)],
                               hosts=good_hosts("alias.lab.test")),
        "iplit.lab.test": dict(status="ok", mx=[mx(10, "127.0.25.2", [G4], ip_literal=True)],
                               hosts=[host("127.0.25.2", G4, "success")]),
        "nomxhost.lab.test": dict(status="no-address", dns_error=ANY,
                                  mx=[mx(10, "mx-missing.lab.test", [])], hosts=[]),
        "nodatahost.lab.test": dict(status="no-address", dns_error=ANY,
                                    mx=[mx(10, "mx-noaddr.lab.test", [])], hosts=[]),
        "mxservfail.lab.test": dict(status="dns-error", dns_error="SERVFAIL",
                                    mx=[mx(10, "mx.servfail.test", [])], hosts=[]),
        "partial.lab.test": dict(status="ok", mx=[
            mx(10, "mx.servfail.test", []), mx(20, "mx-missing.lab.test", []), good_mx(30)],
            hosts=good_hosts()),
        # Checked by check_bigaddr: which 10 of the 104 addresses is not pinned.
        "bigaddr.lab.test": None,
        # --max-mx defaults to 10.
        "many.lab.test": many_case(10),
        "nosuch.lab.test": dict(status="nxdomain", dns_error="NXDOMAIN", mx=[], hosts=[]),
        "www.servfail.test": dict(status="dns-error", dns_error="SERVFAIL", mx=[], hosts=[]),
    })
    return cases


def mx_view(entry, with_flags):
    v = {"preference": entry["preference"], "host": entry["host"],
         "addresses": sorted(entry["addresses"])}
    if with_flags:
        v["cname"] = entry.get("cname")
        v["ip_literal"] = entry.get("ip_literal")
    return v


def host_view(h):
    return (h["mx"], h["ip"], h["status"], (h.get("error") or {}).get("code"))


def check_domain(rec, want):
    """Compare one domain record with its expectation; list every difference."""
    bad = []
    d = rec["dns"]

    def cmp(what, have, exp):
        if have != exp:
            bad.append("%s: got %s, want %s" % (what, json.dumps(have), json.dumps(exp)))

    cmp("status", rec["status"], want["status"])
    cmp("dns.implicit_mx", d["implicit_mx"], want.get("implicit_mx", False))
    cmp("dns.null_mx", d["null_mx"], want.get("null_mx", False))
    if want.get("dns_error") is not ANY:
        cmp("dns.error.code", (d["error"] or {}).get("code"), want.get("dns_error"))
    if d["error"] is not None and want["status"] in ("nxdomain", "dns-error"):
        cmp("dns.error.stage", d["error"].get("stage"), "dns")
    if want.get("null_mx"):
        cmp("dns.mx", [mx_view(m, False) for m in d["mx"]], want["mx"])
    else:
        cmp("dns.mx", [mx_view(m, True) for m in d["mx"]], want["mx"])
    hosts = rec["hosts"]
    cmp("hosts (mx order)", [h["mx"] for h in hosts], [h[0] for h in want["hosts"]])
    cmp("hosts", sorted(host_view(h) for h in hosts), sorted(want["hosts"]))
    for i, h in enumerate(hosts):
        fam = "ipv6" if ":" in h["ip"] else "ipv4"
        cmp("hosts[%d].family" % i, h["family"], fam)
        cmp("hosts[%d].port" % i, h["port"], 25)
    if bad:
        raise AssertionError("%s:\n  %s\nrecord: %s" % (rec["domain"], "\n  ".join(bad),
                                                       json.dumps(rec)[:1500]))


def check_host_facts(records, endpoints):
    """Each probed lab address gives what the lab table says, under any MX name.

    The certificate depends only on the address, so trust and TLS version
    follow the table; the name check is evaluated per MX name, so it is
    compared only where the MX name is the endpoint's own.
    """
    table = {ep["ip"]: ep for ep in endpoints}
    bad = []
    for rec in records:
        for i, h in enumerate(rec["hosts"]):
            ep = table.get(h["ip"])
            if not ep or h["status"] in ("skipped", "network-unreachable"):
                continue
            where = "%s hosts[%d] (%s %s)" % (rec["domain"], i, h["mx"], h["ip"])
            exp = ep["expect"]
            if h["status"] != exp["status"]:
                bad.append("%s: status %s, want %s" % (where, h["status"], exp["status"]))
                continue
            if h["status"] != "success":
                continue
            # The scans use ca-a.pem; mx-b is trusted only with its own root.
            trusted = exp["trusted"] if (ep["ca"] or "").endswith("/ca-a.pem") else False
            if h["tls"]["trust"]["trusted"] != trusted:
                bad.append("%s: trusted %s, want %s"
                           % (where, h["tls"]["trust"]["trusted"], trusted))
            if h["tls"]["version"] not in exp["versions"]:
                bad.append("%s: version %s, want one of %s" % (where, h["tls"]["version"],
                                                              exp["versions"]))
            if h["mx"] == ep["host"] and h["tls"]["names"]["mx_hostname"] != exp["mx_hostname"]:
                bad.append("%s: names.mx_hostname %s, want %s"
                           % (where, h["tls"]["names"]["mx_hostname"], exp["mx_hostname"]))
    require(not bad, "host facts differ from the lab table:\n  %s", "\n  ".join(bad))


def endpoint_key(h):
    return (h["ip"], h["port"], h["mx"])


def check_shared(records, summary):
    """Each (address, port, name) is probed once: one unshared result, the rest shared.

    Skipped hosts are not probes; they must never claim to be shared.
    """
    groups = collections.defaultdict(list)
    skipped = 0
    bad = []
    for rec in records:
        for h in rec["hosts"]:
            if h["status"] == "skipped":
                skipped += 1
                if h.get("shared") is True:
                    bad.append("%s: skipped host %s says shared" % (rec["domain"], endpoint_key(h)))
                continue
            require(isinstance(h.get("shared"), bool), "%s: host %s has no boolean 'shared'",
                    rec["domain"], endpoint_key(h))
            groups[endpoint_key(h)].append((rec["domain"], h["shared"]))
    for key, uses in sorted(groups.items()):
        fresh = [d for d, s in uses if not s]
        if len(fresh) != 1:
            bad.append("endpoint %s: %d unshared results (want 1) among %s"
                       % (key, len(fresh), uses))
    uses = sum(len(u) for u in groups.values())
    want = {"made": len(groups), "shared": uses - len(groups), "skipped": skipped}
    if summary.get("probes") != want:
        bad.append("summary probes: got %s, want %s" % (summary.get("probes"), want))
    require(not bad, "%s", "\n".join(bad))


def check_summary_counts(records, summary):
    """The summary's domain and host counters agree with the records."""
    dom = collections.Counter(r["status"] for r in records)
    hst = collections.Counter(h["status"] for r in records for h in r["hosts"])
    eq(summary.get("domains"), len(records), "summary.domains")
    eq(summary.get("domain_status"), dict(dom), "summary.domain_status")
    eq(summary.get("host_status"), dict(hst), "summary.host_status")


# ---------------------------------------------------------------- the lab

def start_lab(lab):
    p = subprocess.run(["bash", LAB_SH, "start", lab], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        sys.exit("test_scan: lab.sh start failed:\n%s" % p.stdout.decode(errors="replace"))
    with open(os.path.join(lab, "endpoints.json"), encoding="utf-8") as f:
        return json.load(f)


def zone_names(lab, pattern):
    """Owner names in the served (generated) zone matching pattern, as FQDNs, sorted."""
    names = set()
    with open(os.path.join(lab, "dns", "lab.test.zone"), encoding="utf-8") as f:
        for line in f:
            tok = line.split(";", 1)[0].split()
            if len(tok) >= 3 and tok[1] == "MX" and re.fullmatch(pattern, tok[0]):
                names.add(tok[0] + ".lab.test")
    return sorted(names)


_CONNECT = re.compile(r"postfix/[^/\s]+/smtpd\[\d+\]: connect from ")


def maillog_connects(lab):
    try:
        with open(os.path.join(lab, "maillog"), encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if _CONNECT.search(line))
    except FileNotFoundError:
        return 0


def connects_since(lab, before, want):
    """Connections Postfix logged since `before`, once the log has settled.

    Postfix logs through postlogd, a moment after the fact: wait until at
    least `want` new lines are there (or 5 s), then a little longer so an
    excess would show too.
    """
    deadline = time.monotonic() + 5
    while maillog_connects(lab) - before < want and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    return maillog_connects(lab) - before


# ---------------------------------------------------------------- the checks

def checks_dns(res, sc, endpoints):
    cases = expected_cases(endpoints)
    listed = read_targets(LAB_TARGETS)
    run = sc.run(["-i", LAB_TARGETS, "-q"])
    res.run("dns: targets/lab.txt lists exactly the domains with expectations",
            lambda: eq(sorted(listed), sorted(cases), "targets/lab.txt domains"))
    recs = run.by_domain()
    res.run("dns: one record per input line (%d)" % len(listed),
            lambda: eq(sorted(recs), sorted(listed), "record domains"))
    for dom in sorted(cases):
        if cases[dom] is None or dom not in recs:
            continue
        res.run("dns: %s is %s" % (dom, cases[dom]["status"]), check_domain, recs[dom], cases[dom])
    res.run("dns: bigaddr.lab.test capped at --max-addrs 10", check_bigaddr,
            recs.get("bigaddr.lab.test"))
    res.run("dns: every lab host's facts match the endpoint table", check_host_facts,
            run.records, endpoints)
    res.run("dns: shared flags and summary probe counts", check_shared, run.records, run.summary)
    res.run("dns: summary domain/host counters", check_summary_counts, run.records, run.summary)

    def max_mx_20():
        r = sc.run(["-q", "--max-mx", "20", "many.lab.test"]).by_domain()
        check_domain(r["many.lab.test"], many_case(20))
    res.run("dns: --max-mx 20 gives all 20 MX of many.lab.test in order", max_mx_20)

    def order_stable():
        # unbound rotates answers (rrset-roundrobin), so several runs must
        # all give the documented order.
        for _ in range(4):
            r = sc.run(["-q", "multi.lab.test", "many.lab.test"]).by_domain()
            check_domain(r["multi.lab.test"], cases["multi.lab.test"])
            check_domain(r["many.lab.test"], cases["many.lab.test"])
    res.run("dns: MX order and ties stable over 4 runs with rotating answers", order_stable)


def check_bigaddr(rec):
    require(rec is not None, "no record for bigaddr.lab.test")
    zone = {"127.0.26.%d" % i for i in range(1, 101)} | {"2001:db8:26::%d" % i for i in range(1, 5)}
    eq(rec["status"], "ok", "status")
    eq(len(rec["dns"]["mx"]), 1, "number of MX")
    m = rec["dns"]["mx"][0]
    eq(m["host"], "mx-bigaddr.lab.test", "mx host")
    eq(len(m["addresses"]), 10, "addresses kept")
    eq(len(set(m["addresses"])), 10, "distinct addresses")
    require(set(m["addresses"]) <= zone, "addresses not in the zone: %s",
            set(m["addresses"]) - zone)
    eq(sorted(h["ip"] for h in rec["hosts"]), sorted(m["addresses"]), "hosts vs addresses")
    for h in rec["hosts"]:
        # Nothing listens on 127.0.26.x: refused at once.
        want = UNREACH6 if ":" in h["ip"] else ("connection-refused", "ECONNREFUSED")
        eq((h["status"], (h["error"] or {}).get("code")), want, "host %s" % h["ip"])


def checks_ipv6(res, sc):
    def on():
        r = sc.run(["-q", "--ipv6", "on", "good.lab.test", "v6only.lab.test",
                    "unreach6.lab.test"]).by_domain()
        check_domain(r["good.lab.test"], dict(status="ok", mx=[good_mx()],
                                              hosts=good_hosts(v6="on")))
        check_domain(r["v6only.lab.test"], dict(
            status="ok", mx=[mx(10, "mx-v6only.lab.test", [G6])],
            hosts=[host("mx-v6only.lab.test", G6, "success")]))
        check_domain(r["unreach6.lab.test"], dict(
            status="ok", mx=[mx(10, "mx-unreach6.lab.test", [G4, "2001:db8:ffff::1"])],
            hosts=[host("mx-unreach6.lab.test", G4, "success"),
                   host("mx-unreach6.lab.test", "2001:db8:ffff::1", "network-unreachable",
                        "ENETUNREACH")]))
        bad6 = [h for h in r["unreach6.lab.test"]["hosts"] if h["ip"] == "2001:db8:ffff::1"][0]
        eq(bad6["error"]["stage"], "connect", "unreach6 IPv6 error.stage")
    res.run("ipv6 on: IPv6-only MX succeeds; unreachable IPv6 is ENETUNREACH next to "
            "working IPv4", on)

    def families(flag, fam):
        r = sc.run(["-q", "--ipv6", "on", flag, "good.lab.test"]).by_domain()["good.lab.test"]
        eq(r["status"], "ok", "status")
        eq([(h["family"], h["status"]) for h in r["hosts"]], [(fam, "success")], "hosts")
    res.run("ipv6: -4 probes only IPv4", families, "-4", "ipv4")
    res.run("ipv6: -6 probes only IPv6", families, "-6", "ipv6")


INPUT_LINES = [
    ("# a comment line", None),
    ("good.lab.test", "good.lab.test"),
    ("", None),
    ("   \t ", None),
    ("UPPER.LAB.TEST.            # trailing comment", "upper.lab.test"),
    ("Bücher.lab.test", "xn--bcher-kva.lab.test"),
    ("\tmulti.lab.test\t ", "multi.lab.test"),
    ("Shared4.Lab.Test\r", "shared4.lab.test"),
    ("   # an indented comment", None),
    ("bad_name.lab.test", "!"),
    ("a..b.lab.test", "!"),
    ("-lead.lab.test", "!"),
    ("127.0.0.1", "!"),
    ("single", "!"),
    ("x" * 64 + ".lab.test", "!"),
    (".".join(["abcdefghi"] * 26) + ".test", "!"),  # 264 characters
    ("has space.lab.test", "!"),
]


def input_expectation():
    """(valid normalised domains, invalid lines as read, record count)."""
    valid, invalid = [], []
    for line, want in INPUT_LINES:
        if want == "!":
            invalid.append(line.split("#", 1)[0].strip())
        elif want:
            valid.append(want)
    return sorted(valid), sorted(invalid), len(valid) + len(invalid)


def check_input_run(run):
    valid, invalid, count = input_expectation()
    eq(len(run.records), count, "records (one per non-blank, non-comment line)")
    got_valid = sorted(r["domain"] for r in run.records if r["status"] != "invalid-domain")
    got_invalid = sorted(r["domain"] for r in run.records if r["status"] == "invalid-domain")
    eq(got_valid, valid, "valid domains, normalised")
    eq(got_invalid, invalid, "invalid-domain records (domain = the line as read)")
    for r in run.records:
        if r["status"] == "invalid-domain":
            err = r.get("error") or {}
            eq(err.get("stage"), "input", "%r error.stage" % r["domain"])
            require(err.get("code") and err.get("message"), "%r: error needs code and message: %s",
                    r["domain"], err)
            eq(r["hosts"], [], "%r hosts" % r["domain"])
        else:
            eq(r["status"], "ok", "%s status" % r["domain"])
    if run.summary is not None:
        eq(run.summary.get("input", {}).get("lines"), count, "summary.input.lines")
        eq(run.summary.get("input", {}).get("invalid"), len(invalid), "summary.input.invalid")


def checks_input(res, sc):
    text = "\n".join(line for line, _ in INPUT_LINES) + "\n"
    path = sc.path("input.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    res.run("input: file with comments, blanks, case, dot, IDN, CRLF, bad lines",
            lambda: check_input_run(sc.run(["-q", "-i", path])))
    res.run("input: the same from stdin (-i -)",
            lambda: check_input_run(sc.run(["-q", "-i", "-"], stdin=text)))

    def args():
        r = sc.run(["-q", "good.lab.test", "UPPER.LAB.TEST.", "Bücher.lab.test",
                    "bad_name.lab.test"])
        eq(sorted((x["domain"], x["status"]) for x in r.records),
           [("bad_name.lab.test", "invalid-domain"), ("good.lab.test", "ok"),
            ("upper.lab.test", "ok"), ("xn--bcher-kva.lab.test", "ok")], "records")
    res.run("input: domains as arguments", args)


def checks_dedupe(res, sc, lab):
    corpus = zone_names(lab, r"shared\d+")
    n = len(corpus)
    path = sc.path("shared.txt")
    with open(path, "w") as f:
        f.write("\n".join(corpus) + "\n")

    def run(extra, made, shared_flag):
        before = maillog_connects(lab)
        # --ipv6 off keeps this to mx-good's IPv4 address (and tests it).
        r = sc.run(["-q", "--ipv6", "off", "-i", path] + extra)
        eq(len(r.records), n, "records")
        for rec in r.records:
            check_domain(rec, dict(status="ok", mx=[good_mx()], hosts=good_hosts(v6="off")))
        eq(r.summary.get("probes"), {"made": made, "shared": n - made, "skipped": n},
           "summary.probes")
        flags = sorted(h["shared"] for rec in r.records for h in rec["hosts"] if h["ip"] == G4)
        eq(flags, shared_flag, "shared flags of the %d IPv4 hosts" % n)
        eq(connects_since(lab, before, made), made, "connections in Postfix's log")

    res.run("dedupe: %d domains sharing mx-good: 1 probe, 1 Postfix connection" % n,
            run, [], 1, [False] + [True] * (n - 1))
    res.run("dedupe: --no-dedupe: %d probes, none shared, %d Postfix connections" % (n, n),
            run, ["--no-dedupe"], n, [False] * n)


def checks_resume(res, sc, lab):
    corpus = zone_names(lab, r"bench\d+")[:300]
    total = len(corpus)
    inp = sc.path("bench.txt")
    out = sc.path("resume.ndjson")
    with open(inp, "w") as f:
        f.write("\n".join(corpus) + "\n")
    state = {}

    def kill_mid_run():
        require(total == 300, "zone has %d bench domains, want >= 300", total)
        # Every domain a real probe, 100 connections/s: about 3 s in all.
        cmd = sc.cmd(["-q", "-i", inp, "-o", out, "--no-dedupe", "-4", "--rate", "100", "-c", "20"])
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.exists(out) and os.path.getsize(out) > 0:
                with open(out, "rb") as f:
                    if f.read().count(b"\n") >= 40:
                        break
            time.sleep(0.02)
        alive = p.poll() is None
        if alive:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stderr.close()
        require(alive, "the scan finished (exit %s) before it could be killed", p.returncode)
        with open(out, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        lines.pop()  # what follows the last newline: empty unless the kill tore a write
        done = []
        for i, line in enumerate(lines, 1):
            rec = stlstest.parse_json_line(line.decode("utf-8"), "killed output line %d" % i)
            stlstest.validate(rec, "domain")
            done.append(rec["domain"])
        require(0 < len(done) < total, "killed run wrote %d of %d records", len(done), total)
        eq(len(set(done)), len(done), "distinct domains in the killed output")
        # Simulate a write torn by the kill, for a domain not yet written, so
        # a resume that trusted the fragment would lose that domain.
        todo = [d for d in corpus if d not in set(done)]
        with open(out, "ab") as f:
            f.write(b'{"schema":"starttls-scan/1","domain":"%s","scanned_at":"20'
                    % todo[0].encode())
        state["done"] = done
    if not res.run("resume: kill -9 mid-run leaves only complete lines", kill_mid_run):
        return

    def resume():
        r = sc.run(["-q", "-i", inp, "-o", out, "--resume", "--rate", "0"])
        eq(r.records, [], "stdout with -o")
        with open(out, encoding="utf-8") as f:
            recs = parse_ndjson(f.read(), out)
        counts = collections.Counter(x["domain"] for x in recs)
        dup = sorted(d for d, c in counts.items() if c > 1)
        missing = sorted(set(corpus) - set(counts))
        extra = sorted(set(counts) - set(corpus))
        require(not dup and not missing and not extra,
                "after --resume: %d duplicated %s, %d missing %s, %d unexpected %s",
                len(dup), dup[:5], len(missing), missing[:5], len(extra), extra[:5])
        eq(len(recs), total, "records after --resume")
        done = state["done"]
        eq(r.summary.get("input", {}).get("resumed_skipped"), len(done),
           "summary.input.resumed_skipped")
        eq(r.summary.get("domains"), total - len(done), "summary.domains of the resumed run")
        for rec in recs:
            eq(rec["status"], "ok", "%s status" % rec["domain"])
    res.run("resume: --resume cuts the torn line; every domain exactly once", resume)


def checks_shards(res, sc, lab):
    listed = [line for line in open(LAB_TARGETS, encoding="utf-8")]
    corpus = zone_names(lab, r"shared\d+") + listed + ["bad_name.lab.test", "a..b.lab.test"]
    fwd, rev = sc.path("shard-fwd.txt"), sc.path("shard-rev.txt")
    with open(fwd, "w", encoding="utf-8") as f:
        f.write("".join(x if x.endswith("\n") else x + "\n" for x in corpus))
    with open(fwd, encoding="utf-8") as f:
        lines = f.read().splitlines()
    with open(rev, "w", encoding="utf-8") as f:
        f.write("\n".join(reversed(lines)) + "\n")

    def shards():
        whole = sc.run(["-q", "-4", "-i", fwd])
        all_domains = collections.Counter(r["domain"] for r in whole.records)
        eq(max(all_domains.values()), 1, "records per domain, unsharded")
        parts = []
        for k in (1, 2, 3):
            r = sc.run(["-q", "-4", "-i", fwd, "--shard", "%d/3" % k])
            got = [x["domain"] for x in r.records]
            eq(len(set(got)), len(got), "records per domain in shard %d/3" % k)
            require(got, "shard %d/3 is empty (%d domains in all)", k, len(all_domains))
            eq(r.summary.get("input", {}).get("other_shards"), len(all_domains) - len(got),
               "shard %d/3 summary.input.other_shards" % k)
            parts.append(set(got))
            again = sc.run(["-q", "-4", "-i", rev, "--shard", "%d/3" % k])
            eq(sorted(x["domain"] for x in again.records), sorted(got),
               "shard %d/3 of the reversed list" % k)
        for i in range(3):
            for j in range(i + 1, 3):
                common = parts[i] & parts[j]
                require(not common, "shards %d and %d overlap: %s",
                        i + 1, j + 1, sorted(common)[:5])
        eq(sorted(set().union(*parts)), sorted(all_domains), "union of the shards")
    res.run("shards: 1/3, 2/3, 3/3 are disjoint, cover the unsharded run, ignore order", shards)


def checks_politeness(res, sc, lab, endpoints):
    cases = expected_cases(endpoints)
    doms = ["good.lab.test", "multi.lab.test", "many.lab.test", "implicit.lab.test",
            "plain.lab.test", "cname.lab.test", "iplit.lab.test", "unreach6.lab.test"]

    def serial():
        r = sc.run(["-q", "--per-ip", "1", "-c", "1"] + doms).by_domain()
        eq(sorted(r), sorted(doms), "domains")
        for d in doms:
            check_domain(r[d], cases[d])
    res.run("politeness: --per-ip 1 -c 1 completes with the same records", serial)

    def rate():
        corpus = zone_names(lab, r"shared\d+")[:40]
        r = sc.run(["-q", "-4", "--no-dedupe", "--rate", "20"] + corpus)
        eq(r.summary.get("probes", {}).get("made"), 40, "probes made")
        eq(sorted(h["status"] for x in r.records for h in x["hosts"]), ["success"] * 40,
           "host statuses")
        require(r.elapsed >= 1.5, "40 probes at --rate 20 took %.2f s, want >= 1.5 s", r.elapsed)
    res.run("politeness: --rate 20 over 40 probes takes >= 1.5 s", rate)


def checks_check(res, sc):
    def policy_line():
        p = subprocess.run([sc.bin, "check", "--ca-file", sc.ca, "--ipv6", "off",
                            "--no-versions", "good.lab.test"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        out = p.stdout.decode()
        eq(p.returncode, 0, "exit code (stderr %r)" % p.stderr.decode())
        require("smtp_tls_policy_maps:" in out, "no policy-map heading:\n%s" % out)
        last = out.rstrip("\n").splitlines()[-1].split()
        eq(last[:2], ["good.lab.test", "verify"], "policy-map line")

    def dns_error_stderr():
        p = subprocess.run([sc.bin, "check", "--resolver", "127.0.0.1:1", "--dns-timeout",
                            "0.3", "--dns-tries", "1", "good.lab.test"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        err = p.stderr.decode()
        eq(p.returncode, 2, "exit code")
        require("dns-error" in err and len(err.splitlines()) == 1,
                "a one-line reason on stderr: %r" % err)
    res.run("check: the report ends with the policy-map line", policy_line)
    res.run("check: exit 2 says why on stderr", dns_error_stderr)


def checks_rate_workers(res, sc, lab):
    def rate4():
        # One address: every probe is owned by one worker. The rate is the
        # engine's, not split per worker (which gave 2.5/s here).
        corpus = zone_names(lab, r"shared\d+")[:20]
        r = sc.run(["-q", "-4", "-w", "4", "--no-dedupe", "--rate", "10"] + corpus)
        eq(r.summary.get("probes", {}).get("made"), 20, "probes made")
        require(1.5 <= r.elapsed < 4.5,
                "20 probes at --rate 10 with 4 workers took %.2f s, want about 2 s",
                r.elapsed)
    res.run("politeness: --rate is for the whole run, whatever -w", rate4)


def run_raw(sc, args, stdin=None, preexec=None, timeout=TIMEOUT):
    cmd = sc.cmd(args)
    p = subprocess.run(cmd, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       preexec_fn=preexec)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def checks_hardening(res, sc, lab):
    def same_file():
        path = sc.path("same.txt")
        with open(path, "w") as f:
            f.write("good.lab.test\n")
        for extra in ([], ["--resume"]):
            rc, out, err = run_raw(sc, ["-q", "-i", path, "-o", path] + extra)
            eq(rc, 2, "exit code of -i X -o X %s (stderr %r)" % (extra, err))
            require("input" in err, "message names the input: %r", err)
            with open(path) as f:
                eq(f.read(), "good.lab.test\n", "the input file is untouched")
    res.run("input: -i and -o naming one file -> exit 2, input untouched", same_file)

    def resume_garbage():
        for name, data in (("words", b"hello\nworld\n"), ("nul", b"\0" * 4096),
                           ("torn-garbage", b"xyz"),
                           # one JSON object from the line's first byte to its
                           # newline, or not a record of ours
                           ("trailing-garbage", b'{"domain":"a.test"}x\n'),
                           ("two-objects", b'{"domain":"a.test"}{"domain":"b.test"}\n'),
                           ("leading-blank", b' {"domain":"a.test"}\n'),
                           ("crlf", b'{"domain":"a.test"}\r\n')):
            path = sc.path("resume-%s.ndjson" % name)
            with open(path, "wb") as f:
                f.write(data)
            rc, out, err = run_raw(sc, ["-q", "-o", path, "--resume", "good.lab.test"])
            eq(rc, 2, "%s: exit code (stderr %r)" % (name, err))
            with open(path, "rb") as f:
                eq(f.read(), data, "%s: file left as it was" % name)
    res.run("resume: a file that is not our NDJSON -> exit 2, left as it was",
            resume_garbage)

    def dev_zero():
        t0 = time.monotonic()
        rc, out, err = run_raw(sc, ["-q", "-i", "/dev/zero"])
        eq(rc, 1, "exit code (stderr %r)" % err)
        require(time.monotonic() - t0 < 20, "took too long")
        recs = [json.loads(x) for x in out.splitlines()]
        eq([r["status"] for r in recs], ["invalid-domain"], "one invalid-domain record")
        require(recs[0]["domain"].startswith("\\x00"), "domain shows the NUL: %r",
                recs[0]["domain"][:20])
        require("line break" in err, "message: %r", err)
    res.run("input: -i /dev/zero ends with an error instead of reading forever", dev_zero)

    def nul_line():
        rc, out, err = run_raw(sc, ["-q", "--ipv6", "off"],
                               stdin=b"good\0.lab.test\ngood.lab.test\n")
        eq(rc, 0, "exit code (stderr %r)" % err)
        recs = {r["domain"]: r for r in (json.loads(x) for x in out.splitlines())}
        eq(sorted(recs), ["good.lab.test", "good\\x00.lab.test"], "domains")
        eq(recs["good\\x00.lab.test"]["status"], "invalid-domain", "status")
    res.run("input: a NUL inside a line rejects the line whole, shown escaped", nul_line)

    def signal_run(signals):
        corpus = zone_names(lab, r"bench\d+")[:200]
        inp = sc.path("sig.txt")
        out = sc.path("sig.ndjson")
        summ = sc.path("sig-summary.json")
        with open(inp, "w") as f:
            f.write("\n".join(corpus) + "\n")
        if os.path.exists(out):
            os.unlink(out)
        cmd = sc.cmd(["-q", "-4", "--no-dedupe", "-c", "4", "--rate", "20", "-i", inp,
                      "-o", out, "--summary", summ])
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        time.sleep(1.5)
        t0 = time.monotonic()
        for _ in range(signals):
            p.send_signal(signal.SIGTERM)
            time.sleep(0.05)
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("did not exit within 30 s of SIGTERM")
        eq(p.returncode, 143, "exit code (stderr %r)" % err.decode(errors="replace"))
        with open(out, "rb") as f:
            data = f.read()
        require(data.endswith(b"\n"), "output ends with a whole line")
        recs = [json.loads(x) for x in data.splitlines()]
        require(0 < len(recs) < len(corpus), "some, not all, records: %d" % len(recs))
        return corpus, inp, out, summ, recs, time.monotonic() - t0

    def sigterm_once():
        corpus, inp, out, summ, recs, took = signal_run(1)
        with open(summ) as f:
            sm = json.load(f)
        eq(sm.get("interrupted"), True, "summary.interrupted")
        eq(sm.get("domains"), len(recs), "summary.domains")
        # --resume finishes the rest: every domain exactly once.
        r = sc.run(["-q", "-4", "--rate", "0", "-i", inp, "-o", out, "--resume"], summary=False)
        with open(out) as f:
            doms = [json.loads(x)["domain"] for x in f]
        eq(sorted(doms), sorted(corpus), "every domain exactly once after --resume")
    res.run("signals: SIGTERM finishes in-flight domains, writes the summary, exits 143; "
            "--resume completes", sigterm_once)

    def sigterm_twice():
        corpus, inp, out, summ, recs, took = signal_run(2)
        require(took < 5, "second SIGTERM should exit at once (took %.1f s)" % took)
    res.run("signals: a second SIGTERM exits at once with whole lines", sigterm_twice)

    def fd_limit():
        import resource
        corpus = zone_names(lab, r"bench\d+")[:300]
        inp = sc.path("fd.txt")
        with open(inp, "w") as f:
            f.write("\n".join(corpus) + "\n")

        def low():
            resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
        rc, out, err = run_raw(sc, ["-q", "-4", "--rate", "0", "-c", "500", "-i", inp],
                               preexec=low, timeout=120)
        eq(rc, 0, "exit code (stderr %r)" % err)
        require("file descriptors" in err and "using -c" in err,
                "warning about the descriptor limit: %r" % err)
        recs = [json.loads(x) for x in out.splitlines()]
        eq(len(recs), len(corpus), "records")
        codes = collections.Counter((h["error"] or {}).get("code") for x in recs
                                    for h in x["hosts"])
        require(not codes.get("EMFILE") and not codes.get("ENFILE"),
                "hosts blamed for our descriptor shortage: %s" % codes)
    res.run("fd limit: -c above ulimit -n lowers -c with a warning; no host gets EMFILE",
            fd_limit)

    def prom_file():
        path = sc.path("run.prom")
        sc.run(["-q", "--ipv6", "off", "--prom-file", path, "good.lab.test",
                "nullmx.lab.test"])
        with open(path) as f:
            text = f.read()
        require('starttls_scan_last_run_domains{status="ok"} 1' in text, text)
        require('starttls_scan_last_run_domains{status="null-mx"} 1' in text, text)
        require(re.search(r'starttls_scan_last_run_info\{version="[^"]+",run_id="[^"]+"\} 1', text),
                text)
        require(not os.path.exists(path + ".tmp.%d" % os.getpid()), "temporary file left")
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            return
        names = {f.name for f in text_string_to_metric_families(text)}
        require("starttls_scan_last_run_domains" in names, names)
    res.run("--prom-file writes the summary as a Prometheus textfile", prom_file)

    def run_id():
        r = sc.run(["-q", "--ipv6", "off", "good.lab.test", "nullmx.lab.test"])
        ids = {x["scanner"]["run_id"] for x in r.records}
        eq(len(ids), 1, "one run id for the run")
        eq(r.summary.get("scanner", {}).get("run_id"), ids.pop(), "summary run id")
        eq(r.summary.get("options", {}).get("ipv6_mode"), "off", "summary options")
    res.run("records and summary carry the version and one run id", run_id)


def one_line_error(sc, args, rcs):
    cmd = sc.cmd(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    err = p.stderr.decode("utf-8", "replace")
    ctx = "command: %s\nexit: %d\nstderr: %r" % (" ".join(cmd), p.returncode, err)
    require(p.returncode in rcs, "exit %d, want %s\n%s",
            p.returncode, " or ".join(map(str, rcs)), ctx)
    eq(p.stdout, b"", "stdout")
    lines = err.splitlines()
    require(len(lines) == 1 and lines[0].strip() and err.endswith("\n"),
            "want a one-line message on stderr, got %d line(s)\n%s", len(lines), ctx)


def no_domains_tty(sc):
    """No DOMAIN, no -i, stdin a terminal: a usage error, not a hang."""
    master, slave = pty.openpty()
    try:
        p = subprocess.run(sc.cmd([]), stdin=slave, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
    finally:
        os.close(master)
        os.close(slave)
    err = p.stderr.decode("utf-8", "replace")
    eq(p.returncode, 2, "exit code (stderr %r)" % err)
    require("no domains" in err and len(err.splitlines()) == 1, "one-line message: %r", err)


def checks_stdin(res, sc):
    def piped():
        r = sc.run(["-q", "--ipv6", "off"], stdin="good.lab.test\nnullmx.lab.test\n")
        eq(sorted(r.by_domain()), ["good.lab.test", "nullmx.lab.test"], "domains read from stdin")

    def dash_out():
        r = sc.run(["-q", "--ipv6", "off", "-o", "-", "good.lab.test"])
        eq(list(r.by_domain()), ["good.lab.test"], "records on stdout with -o -")
        require(not os.path.exists("-"), "a file named '-' was written")

    def ipv6_off():
        r = sc.run(["-q", "--ipv6", "off", "v6only.lab.test", "good.lab.test"]).by_domain()
        v6 = r["v6only.lab.test"]
        check_domain(v6, dict(status="ok", mx=[mx(10, "mx-v6only.lab.test", [G6])],
                              hosts=[host("mx-v6only.lab.test", G6, "skipped", NO_V6)]))
        for lvl in ("may", "encrypt", "verify", "secure"):
            v = v6["policy"][lvl]
            eq((v["pass"], v["tested"], v.get("result_type")), (False, False, None),
               "%s verdict of a domain whose only address was skipped" % lvl)
            require(v["note"].startswith("not tested"), "note: %r", v["note"])
        eq(v6["policy"]["recommended"], None, "recommended")
        g = r["good.lab.test"]
        eq(g["policy"]["encrypt"]["tested"], True, "good.lab.test encrypt tested")
    res.run("stdin: targets read from stdin when none are given", piped)
    res.run("output: -o - writes to stdout", dash_out)
    res.run("ipv6 off: IPv6 skipped; a domain with nothing tried is 'not tested', "
            "not failed", ipv6_off)


def checks_errors(res, sc):
    for bad in ("0/3", "4/3", "x", "1/0", "2"):
        res.run("errors: --shard %s -> exit 2" % bad, one_line_error, sc,
                ["--shard", bad, "good.lab.test"], (2,))
    res.run("errors: --resume without -o -> exit 2", one_line_error, sc,
            ["--resume", "good.lab.test"], (2,))
    res.run("errors: --ipv6 maybe -> exit 2", one_line_error, sc,
            ["--ipv6", "maybe", "good.lab.test"], (2,))
    res.run("errors: no domains and stdin a terminal -> exit 2", no_domains_tty, sc)
    res.run("errors: -i missing file -> exit 1/2", one_line_error, sc,
            ["-i", sc.path("no-such-file.txt")], (1, 2))
    res.run("errors: -i a directory -> exit 1/2", one_line_error, sc, ["-i", sc.work], (1, 2))


def run_on_pty(cmd, out_path):
    """Run cmd with stderr on a pseudo-terminal; return (exit code, stdout, terminal text).

    stdout goes to a file: nobody reads a pipe while the terminal is being
    drained, and a full pipe would stall the scanner.
    """
    master, slave = pty.openpty()
    with open(out_path, "wb") as out_file:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_file, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif p.poll() is not None:
            break
    os.close(master)
    if p.poll() is None:
        p.kill()
    p.wait()
    with open(out_path, "rb") as f:
        out = f.read()
    return p.returncode, out.decode("utf-8", "replace"), b"".join(chunks).decode("utf-8", "replace")


def checks_progress(res, sc, lab):
    corpus = zone_names(lab, r"shared\d+")
    path = sc.path("progress.txt")
    with open(path, "w") as f:
        f.write("\n".join(corpus) + "\n")
    n = len(corpus)

    def tty():
        rc, out, term = run_on_pty(sc.cmd(["-i", path, "--rate", "0"]), sc.path("pty.out"))
        ctx = "terminal output: %r" % term[-2000:]
        eq(rc, 0, "exit code")
        eq(len(parse_ndjson(out, "stdout")), n, "records")
        require(re.search(r"\b%d/%d domains\b" % (n, n), term),
                "no final '%d/%d domains' progress line\n%s", n, n, ctx)
        require("starttls-scan:" in term, "no summary on the terminal\n%s", ctx)
    res.run("progress: a progress line on a terminal", tty)

    def pipe():
        r = sc.run(["-i", path, "--rate", "0"], summary=False)
        eq(len(r.records), n, "records")
        lines = r.err.splitlines()
        require(lines and "\r" not in r.err and all(l.startswith("starttls-scan: ") for l in lines),
                "stderr on a pipe must hold only the summary lines, got %r", r.err[:2000])
        require(re.search(r"\b%d domains\b" % n, lines[0]), "summary does not count %d domains: %r",
                n, lines[0])
    res.run("progress: no progress on a pipe, only the summary", pipe)

    def quiet():
        r = sc.run(["-i", path, "--rate", "0", "--quiet"], summary=False)
        eq(len(r.records), n, "records")
        eq(r.err, "", "stderr with --quiet")
        rc, out, term = run_on_pty(sc.cmd(["-i", path, "--rate", "0", "--quiet"]),
                                   sc.path("pty-quiet.out"))
        eq((rc, len(parse_ndjson(out, "stdout")), term), (0, n, ""),
           "(exit, records, terminal) with --quiet")
    res.run("progress: --quiet prints nothing on a pipe or a terminal", quiet)


class Background:
    """A command running in a thread while other checks go on; remembers when it ended."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = time.monotonic()
        self.thread.start()

    def _run(self):
        try:
            p = subprocess.run(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=TIMEOUT)
            out = p.stdout.decode("utf-8", "replace")
            self.result = (p.returncode, out, time.monotonic() - self.t0)
        except subprocess.TimeoutExpired:
            self.result = None

    def wait(self):
        self.thread.join(TIMEOUT)
        require(self.result is not None, "%s did not finish within %d s",
                " ".join(self.cmd), TIMEOUT)
        return self.result


def start_dns_timeout(sc):
    """Start the slow (DNS timeout) case in the background; it takes ~6 s.

    With --resolver the scanner sets its own short DNS timeout; slow.test
    is delegated into a black hole, so unbound never answers in time.
    """
    return Background(sc.cmd(["-q", "--resolver", "127.0.53.53", "x.slow.test", "good.lab.test"]))


def check_dns_timeout(bg):
    rc, out, elapsed = bg.wait()
    eq(rc, 0, "exit code")
    recs = {r["domain"]: r for r in parse_ndjson(out, "stdout")}
    eq(sorted(recs), ["good.lab.test", "x.slow.test"], "domains")
    slow = recs["x.slow.test"]
    eq((slow["status"], (slow["dns"]["error"] or {}).get("code"), slow["hosts"]),
       ("dns-error", "ETIMEDOUT", []), "x.slow.test (status, dns.error.code, hosts)")
    eq(recs["good.lab.test"]["status"], "ok", "good.lab.test status (not held up by the slow one)")
    require(elapsed < 30, "a DNS timeout took %.1f s with --resolver", elapsed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="path to the starttls-scan binary")
    ap.add_argument("--keep", action="store_true", help="leave the lab running and keep files")
    args = ap.parse_args()

    if os.environ.get("STLS_IN_NETNS") != "1" or not os.environ.get("STLS_LAB_TMP"):
        sys.exit("test_scan: run me inside the lab namespace: tests/lab/netns-run.sh %s --bin PATH"
                 % sys.argv[0])
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        sys.exit("test_scan: %s is not an executable" % binary)

    tmp = os.environ["STLS_LAB_TMP"]
    lab = os.path.join(tmp, "lab")
    work = os.path.join(tmp, "scan")
    os.makedirs(work, exist_ok=True)
    t0 = time.monotonic()
    endpoints = start_lab(lab)
    sc = Scanner(binary, lab, work)
    res = Results()
    try:
        slow = start_dns_timeout(sc)
        checks_dns(res, sc, endpoints)
        checks_ipv6(res, sc)
        checks_stdin(res, sc)
        checks_input(res, sc)
        checks_dedupe(res, sc, lab)
        checks_resume(res, sc, lab)
        checks_shards(res, sc, lab)
        checks_politeness(res, sc, lab, endpoints)
        checks_rate_workers(res, sc, lab)
        checks_check(res, sc)
        checks_hardening(res, sc, lab)
        checks_errors(res, sc)
        checks_progress(res, sc, lab)
        res.run("dns: a DNS timeout (slow.test, --resolver) is dns-error ETIMEDOUT",
                check_dns_timeout, slow)
    finally:
        if not args.keep:
            subprocess.run(["bash", LAB_SH, "stop", lab], stdout=subprocess.DEVNULL)
    print("(%.1f s)" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
