#!/usr/bin/python3
"""Check the policy verdicts of `starttls-scan scan` against real Postfix delivery.

Runs inside the lab namespace (tests/lab/netns-run.sh). Starts the lab
(tests/lab/lab.sh: Postfix receivers on 127.0.25.x and [2001:db8:25::2],
lab DNS), scans a set of lab.test domains with --postfix-policy (twice: with
the default secure match list and with a custom one), then starts a second
Postfix instance, the sender, and lets it deliver one message per (domain,
case) under smtp_tls_policy_maps "DOMAIN LEVEL", "DOMAIN secure match=...",
or the policy files the scans wrote.

The lab receivers reject every recipient after the TLS stage. So a bounce
carrying the receiver's reply to RCPT TO means Postfix's TLS policy let the
session through (our "pass"); anything else - a deferral such as "Server
certificate not verified" or "TLS is required, but was not offered", or a
DNS failure - means the mail would not have been delivered (our "fail").

Checks:
  scan      every record validates against the schema and has a policy;
  postmap   the --postfix-policy file loads with postmap, and postmap -q
            returns each domain's line;
  verdict   for each domain and each of may, encrypt, dane, verify, secure,
            and secure with a custom match list: our policy.LEVEL.pass
            equals what Postfix did; when both fail, Postfix did at least
            connect (not a DNS verdict such as a null MX);
  evidence  every per-address TLS problem Postfix logged ("num=62:hostname
            mismatch", "certificate has expired", "TLS is required, but was
            not offered", ...) is among the problems our record shows for
            that address, and its Trusted/Untrusted matches our trust fact;
  ours      under each policy file we wrote, every domain with a policy
            line is delivered (a recommended level must never defer).

The sender delivers only to the lab's loopback endpoints (the namespace has
nothing else), delivers nothing locally, and discards the bounces. Each
level is its own smtp transport with its own smtp_tls_policy_maps, picked by
the envelope sender (sender_dependent_default_transport_maps), so every case
is queued at once without a reload between cases.

Prints one "ok"/"FAIL" line per check and "N passed, M failed" last; exits
non-zero if anything failed.

Usage: test_policy_postfix.py --bin PATH [--keep]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import stlstest  # noqa: E402

LAB_SH = os.path.join(HERE, "lab.sh")
SENDER_TEMPLATES = os.path.join(HERE, "postfix-sender")
LEVELS = ("may", "encrypt", "dane", "verify", "secure")
# Seconds the whole delivery phase may take; each attempt is bounded by the
# sender's smtp_*_timeout settings (main.cf.in), well below this.
DELIVERY_DEADLINE = 90

# Lab domains (tests/lab/dns/lab.test.zone) and what each one exercises.
DOMAINS = (
    "good.lab.test",         # mx-good: verify passes; secure fails (mx-good.lab.test is not below good.lab.test)
    "shared1.lab.test",      # many domains on one MX: as good
    "multi.lab.test",        # mx-good 10, mx-ecdsa 20, mx-self 20: verify passes on the primary only
    "implicit.lab.test",     # no MX, the domain's A record (mx-ecdsa's cert): verify fails
    "unreach6.lab.test",     # AAAA without a route plus A to mx-good's cert: verify fails on the name
    "cname.lab.test",        # MX target is an alias of mx-good: which name does verify check?
    "cnamedomain.lab.test",  # the domain is an alias of good.lab.test
    "plain.lab.test",        # no STARTTLS: only may delivers
    "self.lab.test",         # self-signed: encrypt passes, verify fails (not trusted)
    "expired.lab.test",      # expired: verify fails (not trusted)
    "wrong.lab.test",        # trusted, wrong name: verify fails (not verified)
    "b.lab.test",            # issued by root B, sender trusts root A only
    "tls12.lab.test",        # TLS 1.2 only
    "wild.lab.test",         # *.lab.test: secure passes (wildcard matches nexthop)
    "iplit.lab.test",        # MX target is an IP literal written as a name
    "partial.lab.test",      # MX hosts with SERVFAIL and NXDOMAIN before mx-good
)

# Domains that take no mail at all. Postfix 3.7 bounces a domain with a
# null MX even next to a real one ("Domain ... does not accept mail
# (nullMX)"), so the scan must say null-mx, decide nothing and write no
# policy line for it.
NO_MAIL_DOMAINS = (
    "nullmixed.lab.test",    # null MX next to a real one
)

# Postfix's smtp_mx_address_limit (5), smtp_mx_session_limit (2) and
# smtp_balance_inet_protocols, with addresses that refuse connections
# (127.0.27.x has no listener). They need these records in
# tests/lab/dns/lab.test.zone; until they are there, the test says so:
#   mx-refused1 A 127.0.27.1  ... mx-refused5 A 127.0.27.5
#   sesslim  MX 10 mx-self, 20 mx-expired, 30 mx-good
#   tlsfail4 MX 10 mx-self, 20 mx-expired, 30 mx-wrong, 40 mx-b, 50 mx-ecdsa
#   tlsfail5 MX 10 mx-self, 20 mx-expired, 30 mx-wrong, 40 mx-b, 50 mx-plain,
#            60 mx-ecdsa
#   addr6v4  MX 10..50 mx-refused1..mx-refused5, 60 mx-ecdsa
#   addr6    MX 10..50 mx-refused1..mx-refused5, 60 mx-good
LIMIT_DOMAINS = (
    "sesslim.lab.test",   # TLS failures use no session: verify delivers via the 3rd MX
    "tlsfail4.lab.test",  # the 5th address is within the address limit
    "tlsfail5.lab.test",  # the 6th is not: verify defers
    "addr6v4.lab.test",   # refused addresses count too: the 6th is never tried
    "addr6.lab.test",     # but a 6th with IPv6 is: the balance keeps one IPv6 address
)

# A second scan with a custom match list for secure, spelled the way
# main.cf spells smtp_tls_secure_cert_match (postconf -d shows
# "nexthop, dot-nexthop"); in a policy map the same list is written with
# colons, because white space separates the attributes there.
SECURE_MATCH_LAB = "nexthop, dot-nexthop, .lab.test"
SECURE_ATTR_LAB = "nexthop:dot-nexthop:.lab.test"

# What each sending transport enforces (its smtp_tls_policy_maps), and
# which of our verdicts must predict the outcome:
#   LEVEL      "DOMAIN LEVEL": the default scan's policy.LEVEL
#   securelab  "DOMAIN secure match=SECURE_ATTR_LAB": the custom scan's
#              policy.secure
#   ours       the default scan's --postfix-policy file: every line delivers
#   ourslab    the custom scan's --postfix-policy file: every line delivers
KINDS = LEVELS + ("securelab", "ours", "ourslab")


Results = stlstest.Results


def run(cmd, timeout=30, input_bytes=b"", env=None):
    """Run a helper; assert exit 0; return its merged output as text."""
    try:
        p = subprocess.run(cmd, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError("timed out after %ss: %s" % (timeout, " ".join(cmd)))
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s" % (" ".join(cmd), p.returncode, out[-3000:]))
    return out


def lab_ctl(action, lab):
    run([LAB_SH, action, lab], timeout=120)
    return True


# ---- the scan --------------------------------------------------------------

def scan(bin_path, lab, work, domains, extra=()):
    """Scan the domains; return ({domain: record}, path of the policy file)."""
    os.makedirs(work, exist_ok=True)
    policy_file = os.path.join(work, "policy")
    out_file = os.path.join(work, "scan.ndjson")
    # IPv6 on: the namespace has no default route, so "auto" would skip the
    # IPv6 addresses, while the sender (inet_protocols = all) tries them.
    run([bin_path, "scan", "-q", "--ipv6", "on",
         "--ca-file", os.path.join(lab, "pki", "ca-a.pem"),
         "--postfix-policy", policy_file, "--min-level", "may",
         "-o", out_file] + list(extra) + list(domains), timeout=120)
    records = stlstest.validate_ndjson_file(out_file, allow_empty=False)
    by_domain = {}
    for rec in records:
        by_domain[rec["domain"]] = rec
    missing = [d for d in domains if d not in by_domain]
    assert not missing, "no record for %s" % ", ".join(missing)
    return by_domain, policy_file


def with_policy(records, domains):
    """Assert that every domain got a policy object."""
    nopolicy = [d for d in domains if "policy" not in records[d]]
    assert not nopolicy, "no policy object for %s (status %s)" % (
        ", ".join(nopolicy), ", ".join(records[d]["status"] for d in nopolicy))
    return True


def policy_lines(path):
    """{domain: "LEVEL [attrs]"} from our smtp_tls_policy_maps file."""
    lines = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(" ")
            assert key not in lines, "%s: two lines for %s" % (path, key)
            lines[key] = value.strip()
    return lines


def check_postmap(conf, policy_file, lines, domains):
    """postmap the file (hash) and look every domain up again."""
    run(["postmap", "-c", conf, "hash:" + policy_file])
    bad = []
    for d in domains:
        try:
            got = run(["postmap", "-c", conf, "-q", d, "hash:" + policy_file]).strip()
        except AssertionError:
            got = None  # postmap -q exits 1 when the key is absent
        want = lines.get(d)
        if got != want:
            bad.append("%s: postmap -q gives %r, the file says %r" % (d, got, want))
    assert not bad, "\n".join(bad)
    return True


# ---- the sending Postfix -----------------------------------------------------

class Sender:
    """A second Postfix instance that delivers the test messages."""

    def __init__(self, base, cafile):
        self.base = base
        self.conf = os.path.join(base, "conf")
        self.maillog = os.path.join(base, "maillog")
        self.cafile = cafile
        self.running = False

    def write_config(self, policy_maps):
        """policy_maps: {kind: "type:path"}, one smtp transport per kind."""
        shutil.rmtree(self.base, ignore_errors=True)
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.base, "queue"))
        subst = {"@DIR@": self.base, "@CAFILE@": self.cafile, "@INET_PROTOCOLS@": "all"}
        for name in ("main.cf", "master.cf"):
            with open(os.path.join(SENDER_TEMPLATES, name + ".in"), encoding="utf-8") as f:
                text = f.read()
            for k, v in subst.items():
                text = text.replace(k, v)
            if name == "master.cf":
                for kind, maps in policy_maps.items():
                    text += ("tls_%s unix - - n - - smtp\n  -o smtp_tls_policy_maps=%s\n"
                             "  -o syslog_name=postfix-sender/tls_%s\n" % (kind, maps, kind))
            with open(os.path.join(self.conf, name), "w", encoding="utf-8") as f:
                f.write(text)
        self.write_map("transport", {"sender.test": "discard:", ".sender.test": "discard:"})
        self.write_map("sender_transport",
                       {"%s@sender.test" % k: "tls_%s:" % k for k in policy_maps})

    def path(self, name):
        return os.path.join(self.base, name)

    def write_map(self, name, table):
        with open(self.path(name), "w", encoding="utf-8") as f:
            for k, v in sorted(table.items()):
                f.write("%s %s\n" % (k, v))

    def postfix(self, *args, timeout=60):
        return run(["postfix", "-c", self.conf] + list(args), timeout=timeout)

    def start(self):
        self.postfix("check")
        self.postfix("start")
        self.running = True
        return True

    def stop(self):
        """Empty the queue and stop; an error in either is reported after both ran."""
        if not self.running:
            return True
        problems = []
        try:
            run(["postsuper", "-c", self.conf, "-d", "ALL"])
        except AssertionError as e:
            problems.append(str(e))
        self.postfix("stop")
        # `postfix stop` only signals the master; wait for it to go.
        deadline = time.time() + 15
        while self.running and time.time() < deadline:
            p = subprocess.run(["postfix", "-c", self.conf, "status"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running = p.returncode == 0
            time.sleep(0.1 if self.running else 0)
        if self.running:
            problems.append("sender Postfix in %s did not stop" % self.conf)
        assert not problems, "\n".join(problems)
        return True

    def submit(self, kind, domain):
        """Queue one message from KIND@sender.test to KIND@DOMAIN."""
        msg = ("From: %s@sender.test\nTo: %s@%s\nSubject: policy check %s %s\n\n"
               "TLS policy cross-check.\n" % (kind, kind, domain, kind, domain))
        run(["sendmail", "-C", self.conf, "-f", "%s@sender.test" % kind,
             "--", "%s@%s" % (kind, domain)], input_bytes=msg.encode())

    def outcomes(self, wanted, deadline):
        """Wait until the log has a final status for every (kind, domain) in wanted.

        Returns {(kind, domain): Outcome}.
        """
        while True:
            lines = []
            if os.path.exists(self.maillog):
                with open(self.maillog, encoding="utf-8", errors="replace") as f:
                    lines = f.read().splitlines()
            found = parse_log(lines, wanted)
            if len(found) == len(wanted) or time.time() > deadline:
                return found
            time.sleep(0.2)


class Outcome:
    """What Postfix did with one message, from its log."""

    def __init__(self, qid, status, relay, reason):
        self.qid, self.status, self.relay, self.reason = qid, status, relay, reason
        self.lines = []     # every line of this delivery (queue id or same process)
        self.problems = {}  # ip -> set of TLS problems Postfix logged for it
        self.tls = {}       # ip -> "Trusted" / "Untrusted" / "Verified" / "Anonymous"

    @property
    def connected(self):
        """Did Postfix try to connect anywhere for this message?"""
        return self.relay != "none" or any(
            "connect to " in l or "TLS connection established" in l for l in self.lines)

    @property
    def delivered(self):
        """Did the session get past TLS to the receiver's RCPT reply?"""
        if self.status == "sent":
            return True
        return (self.status == "bounced" and " said: 5" in self.reason
                and "in reply to RCPT TO command" in self.reason)


LOG_RE = re.compile(r"^\S+\s+\S+\s+\S+\s+\S+\s+(postfix-sender/[\w/]+\[\d+\]): (.*)$")
STATUS_RE = re.compile(r"^(\w+): to=<(\w+)@([^>]+)>, relay=(\S+), .*status=(\w+) \((.*)\)$")
ADDR = r"\S+\[([0-9a-fA-F.:]+)\](?::\d+)?"
# TLS evidence lines of Postfix 3.7's SMTP client at smtp_tls_loglevel = 1.
EVIDENCE = (
    # 62: hostname mismatch; 64: IP address mismatch (an MX target that
    # is an address literal, which Postfix accepts with a warning).
    (re.compile(r"certificate verification failed for %s: num=6[24]:" % ADDR), "name"),
    (re.compile(r"certificate verification failed for %s: certificate has expired" % ADDR), "expired"),
    (re.compile(r"certificate verification failed for %s: " % ADDR), "untrusted"),
    (re.compile(r"TLS is required, but was not offered by host %s" % ADDR), "starttls"),
    (re.compile(r"TLS is required, but host %s refused to start TLS" % ADDR), "starttls"),
    (re.compile(r"SSL_connect error to %s" % ADDR), "handshake"),
)
ESTABLISHED_RE = re.compile(r"^(\w+) TLS connection established to %s" % ADDR)


def parse_log(lines, wanted):
    """Find the final status of every wanted (kind, domain) and its evidence.

    The SMTP client logs the TLS details of an attempt without a queue id,
    so they are tied to a delivery by process: a process handles one
    delivery at a time, and everything it logs between two status lines
    belongs to the second.
    """
    found = {}
    pending = {}  # process -> indexes of its lines since its last status line
    segments = {}
    for i, line in enumerate(lines):
        m = LOG_RE.match(line)
        if not m:
            continue
        proc, text = m.groups()
        pending.setdefault(proc, []).append(i)
        sm = STATUS_RE.match(text)
        if not sm:
            continue
        qid, local, domain, relay, status, reason = sm.groups()
        segment, pending[proc] = pending[proc], []
        key = (local, domain)
        if key not in wanted or key in found:
            continue
        out = Outcome(qid, status, relay, reason)
        segments[key] = segment
        for j in segment:
            body = LOG_RE.match(lines[j]).group(2)
            em = ESTABLISHED_RE.match(body)
            if em:
                out.tls[em.group(2)] = em.group(1)
            for rx, problem in EVIDENCE:
                pm = rx.search(body)
                if pm:
                    out.problems.setdefault(pm.group(1), set()).add(problem)
                    break
        found[key] = out
    # Add the queue manager's and bounce daemon's lines, in log order.
    for key, out in found.items():
        mine = set(segments[key])
        mine.update(i for i, l in enumerate(lines) if (" %s: " % out.qid) in l)
        out.lines = [lines[i] for i in sorted(mine)]
    return found


def our_problems(host, level):
    """The TLS problems our record shows for one address at one level.

    Postfix logs one verification error per attempt (OpenSSL's first), so
    its problem must be one of ours. For secure, our record's
    names.recipient_domain stands in for the nexthop:dot-nexthop match.
    """
    if host["status"] in ("starttls-not-supported", "starttls-rejected"):
        return {"starttls"}
    tls = host.get("tls")
    if not tls:
        return {"handshake"}
    problems = set()
    for r in tls["trust"]["reasons"]:
        problems.add("expired" if r == "expired" else "untrusted")
    if level == "verify" and not tls["names"]["mx_hostname"]:
        problems.add("name")
    if level == "secure" and not tls["names"].get("recipient_domain"):
        problems.add("name")
    return problems


def check_evidence(record, level, out):
    """Postfix's per-address TLS verdicts must fit the facts in our record."""
    hosts = {h["ip"]: h for h in record["hosts"]}
    bad = []
    for ip, problems in sorted(out.problems.items()):
        h = hosts.get(ip)
        if h is None:
            bad.append("Postfix tried %s, which is not in our record" % ip)
            continue
        ours = our_problems(h, level)
        if not problems <= ours:
            bad.append("%s[%s]: Postfix logged %s, our record shows %s"
                       % (h["mx"], ip, "/".join(sorted(problems)), "/".join(sorted(ours)) or "none"))
    for ip, kind in sorted(out.tls.items()):
        h = hosts.get(ip)
        tls = h and h.get("tls")
        if not tls or kind == "Anonymous":
            continue
        # "Untrusted" at may/encrypt means the chain did not verify; at
        # verify/secure it is also logged for a bad name.
        trusted = kind in ("Trusted", "Verified")
        if level in ("may", "encrypt", "dane") and trusted != tls["trust"]["trusted"]:
            bad.append("%s[%s]: Postfix says %s TLS, our trust.trusted is %s"
                       % (h["mx"], ip, kind, tls["trust"]["trusted"]))
    assert not bad, "\n".join(bad)


# ---- main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="path to the starttls-scan binary")
    ap.add_argument("--keep", action="store_true", help="leave the lab and the sender running")
    opts = ap.parse_args()

    res = Results()
    if os.environ.get("STLS_IN_NETNS") != "1" or not os.environ.get("STLS_LAB_TMP"):
        res.fail("lab namespace", "run me through tests/lab/netns-run.sh "
                 "(STLS_IN_NETNS != 1 or STLS_LAB_TMP unset)")
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1
    bin_path = os.path.abspath(opts.bin)
    if not (os.path.isfile(bin_path) and os.access(bin_path, os.X_OK)):
        res.fail("binary", "%s is not an executable file" % bin_path)
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1

    tmp = os.environ["STLS_LAB_TMP"]
    lab = os.path.join(tmp, "lab")
    work = os.path.join(tmp, "policy")
    os.makedirs(work, exist_ok=True)
    if not res.check("lab starts (lab.sh start %s)" % lab, lambda: lab_ctl("start", lab)):
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1
    sender = None
    try:
        sender = Sender(os.path.join(tmp, "sender"), os.path.join(lab, "pki", "ca-a.pem"))
        run_checks(res, bin_path, lab, work, sender)
    finally:
        if opts.keep:
            print("# lab and sender left running (%s, %s)" % (lab, sender.conf))
        else:
            res.check("sender stops", sender.stop)
            res.check("lab stops", lambda: lab_ctl("stop", lab))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


def run_checks(res, bin_path, lab, work, sender):
    every = DOMAINS + LIMIT_DOMAINS + NO_MAIL_DOMAINS
    std = res.check("scan %d domains: every record valid" % len(every),
                    lambda: scan(bin_path, lab, os.path.join(work, "std"), every))
    lab_scan = res.check("scan again with --secure-match '%s'" % SECURE_MATCH_LAB,
                         lambda: scan(bin_path, lab, os.path.join(work, "lab"), every,
                                      ["--secure-match", SECURE_MATCH_LAB]))
    if not std or not lab_scan:
        return
    (records, policy_file), (records_lab, policy_file_lab) = std, lab_scan
    res.check("every domain has a policy", lambda: with_policy(records, DOMAINS))

    def no_mail():
        for d in NO_MAIL_DOMAINS:
            rec = records[d]
            assert rec["status"] == "null-mx", "%s: status %s" % (d, rec["status"])
            assert "policy" not in rec, "%s: has a policy object" % d
        return True
    res.check("null MX domains: no verdict", no_mail)
    if res.check("the lab zone has the address/session limit domains",
                 lambda: with_policy(records, LIMIT_DOMAINS)) is None:
        print("     (records to add: see LIMIT_DOMAINS in %s)" % os.path.basename(__file__))
    domains = list(DOMAINS) + [d for d in LIMIT_DOMAINS if "policy" in records[d]]
    lines = res.check("policy file parses", lambda: policy_lines(policy_file))
    lines_lab = res.check("policy file (custom match) parses",
                          lambda: policy_lines(policy_file_lab))
    if lines is None or lines_lab is None:
        return

    def setup():
        maps = {level: "texthash:" + sender.path("policy-" + level) for level in LEVELS}
        maps["securelab"] = "texthash:" + sender.path("policy-securelab")
        maps["ours"] = "hash:" + sender.path("policy-ours")
        maps["ourslab"] = "hash:" + sender.path("policy-ourslab")
        sender.write_config(maps)
        for level in LEVELS:
            sender.write_map("policy-" + level, {d: level for d in domains})
        sender.write_map("policy-securelab",
                         {d: "secure match=" + SECURE_ATTR_LAB for d in domains})
        shutil.copy(policy_file, sender.path("policy-ours"))
        shutil.copy(policy_file_lab, sender.path("policy-ourslab"))
        return True

    if not res.check("sender configuration written", setup):
        return
    # postmap needs a main.cf; the sender's will do.
    for name, table in (("policy-ours", lines), ("policy-ourslab", lines_lab)):
        res.check("postmap loads %s; postmap -q finds every line" % name,
                  lambda: check_postmap(sender.conf, sender.path(name), table, domains))
    if not res.check("sender Postfix starts", sender.start):
        return

    # (kind, domain) -> (our verdict, our result type, the level Postfix
    # applies, the record whose facts explain it, what the verdict is)
    expect = {}
    for d in domains:
        for level in LEVELS:
            v = records[d]["policy"][level]
            expect[(level, d)] = (v["pass"], v.get("result_type"), level, records[d],
                                  "ours %s" % ("pass" if v["pass"] else "fail (%s)"
                                               % v.get("result_type")))
        v = records_lab[d]["policy"]["secure"]
        expect[("securelab", d)] = (v["pass"], v.get("result_type"), "secure", records_lab[d],
                                    "ours (match %s) %s" % (SECURE_ATTR_LAB, "pass" if v["pass"]
                                                            else "fail (%s)" % v.get("result_type")))
        for kind, table, rec in (("ours", lines, records[d]), ("ourslab", lines_lab, records_lab[d])):
            if d in table:
                expect[(kind, d)] = (True, None, table[d].split()[0], rec,
                                     "under our line %r" % table[d])

    def submit_all():
        for kind, d in sorted(expect):
            sender.submit(kind, d)
        return True

    if not res.check("queue %d messages" % len(expect), submit_all):
        return
    got = sender.outcomes(set(expect), time.time() + DELIVERY_DEADLINE)

    table = {}
    for kind in KINDS:
        for d in domains:
            if (kind, d) in expect:
                table[(kind, d)] = compare(res, kind, d, expect[(kind, d)], got.get((kind, d)),
                                           sender.maillog)
    print("# agreement table (ours / Postfix; ! marks a disagreement)")
    print("# %-20s %s" % ("domain", " ".join("%-11s" % k for k in KINDS)))
    for d in domains:
        print("# %-20s %s" % (d, " ".join("%-11s" % table.get((k, d), "-") for k in KINDS)))


def compare(res, kind, d, want, out, maillog):
    """Check one (kind, domain) case; return its agreement table cell."""
    ours, rt, level, record, label = want
    name = "%s %s" % (d, kind)
    if out is None:
        res.fail(name, "no final status in %s within %ss" % (maillog, DELIVERY_DEADLINE))
        return "?"
    theirs = out.delivered
    cell = "%s/%s%s" % ("pass" if ours else "fail", "pass" if theirs else "fail",
                        "" if ours == theirs else " !")
    said = "delivers" if theirs else "does not deliver: status=%s relay=%s (%s)" % (
        out.status, out.relay, out.reason)
    detail = "%s; Postfix %s\n%s" % (label, said, "\n".join(out.lines))
    if ours != theirs:
        res.fail("%s: Postfix %s, %s" % (name, "delivers" if theirs else "does not deliver",
                                         label), detail)
        return cell
    # Same verdict. A failure of ours must not meet a Postfix that never
    # even connected (a DNS verdict such as a null MX).
    if not ours and not out.connected:
        res.fail("%s: both fail, but Postfix never reached TLS" % name, detail)
        return cell + " ?"
    try:
        check_evidence(record, level, out)
    except AssertionError as e:
        res.fail("%s: Postfix's TLS verdicts do not fit our record" % name,
                 "%s\n%s" % (e, detail))
        return cell + " ?"
    res.ok("%s: %s, Postfix %s" % (name, label, "delivers" if theirs else "defers: " + out.reason))
    return cell


if __name__ == "__main__":
    sys.exit(main())
