#!/usr/bin/python3
"""Fault tests: the probe against the scripted SMTP peer, one scenario per file.

Usage: test_faults.py --bin PATH [--only NAME]

Must run inside the lab namespace (tests/lab/netns-run.sh), because it opens
listening sockets and lets the probe connect to them. For each file in
scenarios/ it starts smtp_peer.py on 127.0.26.1 (a free port), runs
`PATH probe 127.0.26.1:PORT ARGS...`, validates the record against the JSON
Schema and compares it with the scenario's "expect" map, then reads the
peer's log: the peer must not have failed its script, the probe must have
sent exactly the scenario's "commands" (when given) and never MAIL, RCPT,
DATA or BDAT ("quit_optional": true also accepts one more QUIT at the
end). Prints "ok NAME" or "FAIL NAME: why" per scenario and a final
"N passed, M failed" line; exits non-zero on any failure.

"expect" maps a dotted path into the record ("tls.chain.0.subject"; a final
"#" means the length of a list) to a value compared exactly, or to a matcher:
  {"$in": [a, b]}       one of these values
  {"$re": "regex"}      a string this regex finds something in
  {"$type": "int"}      any value of that JSON type (int, str, bool, list, dict)
  {"$contains": x}      a list holding x
  {"$absent": true}     the path is absent (or null)
  {"$peer": "fact"}     the value the peer logged: cert_sha256, spki_sha256,
                        tls_version, tls_cipher_id, ...
Two keys are special: "findings" lists finding ids that must be present and
"findings_absent" ids that must not be.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lib"))

PEER_ADDR = "127.0.26.1"
FORBIDDEN = ("MAIL", "RCPT", "DATA", "BDAT")
MISSING = object()


def resolve(record, path):
    """Follow a dotted path; MISSING when some part of it is absent or null."""
    cur = record
    for part in path.split("."):
        if part == "#" and isinstance(cur, list):
            return len(cur)
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


def same(a, b):
    """Equality that keeps JSON types apart (false is not 0, 1 is not 1.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


JSON_TYPES = {"int": int, "str": str, "bool": bool, "list": list, "dict": dict}


def check_value(path, got, want, facts):
    """Return None when got satisfies want, else a sentence saying why not."""
    shown = "missing" if got is MISSING else json.dumps(got)
    if isinstance(want, dict) and len(want) == 1 and next(iter(want)).startswith("$"):
        op, arg = next(iter(want.items()))
        if op == "$peer":
            if arg not in facts:
                return "%s: the peer logged no %r to compare with" % (path, arg)
            want, op = facts[arg], None
        elif op == "$in":
            ok = any(same(got, w) for w in arg)
        elif op == "$re":
            ok = isinstance(got, str) and re.search(arg, got) is not None
        elif op == "$type":
            ok = got is not MISSING and type(got) is JSON_TYPES[arg]
        elif op == "$absent":
            ok = got is MISSING
        elif op == "$contains":
            ok = isinstance(got, list) and any(same(g, arg) for g in got)
        else:
            return "%s: unknown matcher %s" % (path, op)
        if op is not None:
            return None if ok else "%s = %s, want %s %s" % (path, shown, op, json.dumps(arg))
    if got is not MISSING and same(got, want):
        return None
    return "%s = %s, want %s" % (path, shown, json.dumps(want))


def check_record(record, expect, facts):
    """All the ways record differs from expect, as sentences."""
    problems = []
    ids = [f.get("id") for f in record.get("findings") or [] if isinstance(f, dict)]
    for path, want in expect.items():
        if path == "findings":
            problems += ["finding %s missing (findings: %s)" % (w, ids) for w in want if w not in ids]
        elif path == "findings_absent":
            problems += ["unexpected finding %s" % w for w in want if w in ids]
        else:
            why = check_value(path, resolve(record, path), want, facts)
            if why:
                problems.append(why)
    return problems


def read_log(path):
    events = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    events.append(json.loads(line))
    except FileNotFoundError:
        pass
    return events


def wait_for(predicate, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Peer:
    """One smtp_peer.py process; stop() kills it by PID whatever happened."""

    def __init__(self, scenario_path, workdir):
        self.log = os.path.join(workdir, "peer.log")
        self.ready = os.path.join(workdir, "ready")
        self.stderr = open(os.path.join(workdir, "peer.stderr"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "smtp_peer.py"), "--listen", PEER_ADDR + ":0",
             "--scenario", scenario_path, "--ready-file", self.ready, "--log", self.log],
            stdout=subprocess.DEVNULL, stderr=self.stderr)

    def start(self):
        """Wait until it listens; return its port."""
        if not wait_for(lambda: os.path.exists(self.ready) or self.proc.poll() is not None, 15):
            raise AssertionError("peer did not become ready within 15s")
        if self.proc.poll() is not None:
            raise AssertionError("peer exited with %d: %s" % (self.proc.returncode, self.errors()))
        with open(self.ready, encoding="ascii") as f:
            return int(f.read().strip())

    def events(self):
        return read_log(self.log)

    def wait_idle(self, timeout):
        """Wait until every connection the peer accepted has ended."""
        def idle():
            ev = self.events()
            return sum(e["event"] == "accept" for e in ev) == sum(e["event"] == "end" for e in ev)
        return wait_for(idle, timeout)

    def errors(self):
        """The tail of the peer's stderr (kept after stop())."""
        if not self.stderr.closed:
            self.stderr.seek(0)
            self.stderr_text = self.stderr.read().strip()[-2000:]
        return self.stderr_text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errors()
        self.stderr.close()


def check_peer_log(events, scenario):
    """Problems visible from the peer's side: script failures, commands sent."""
    problems = []
    conns = {e["conn"] for e in events if e["event"] == "accept"}
    # A handshake refused the way old servers refuse ours (EOF, alerts
    # handshake_failure or protocol_version) is followed by one more
    # connection with a hand-built TLS 1.2 hello (legacy detection).
    want_conns = scenario.get("connections", 1)
    if len(conns) != want_conns:
        problems.append("the probe opened %d connections, want %d" % (len(conns), want_conns))
    problems += ["peer: %s" % e["why"] for e in events if e["event"] == "fail"]
    lines = [e["line"] for e in events if e["event"] == "recv"]
    verbs = [l.split(" ", 1)[0].upper() for l in lines]
    bad = [l for l, v in zip(lines, verbs) if v in FORBIDDEN]
    if bad:
        problems.append("the probe sent forbidden commands: %s" % bad)
    if scenario.get("quit_optional") and verbs[-1:] == ["QUIT"]:
        verbs = verbs[:-1]  # a polite QUIT is welcome but not required here
    if "commands" in scenario and verbs != scenario["commands"]:
        problems.append("the probe sent %s, want %s" % (verbs, scenario["commands"]))
    return problems


def peer_facts(events):
    """Facts the peer logged (certificate hashes, negotiated TLS) for $peer matchers."""
    facts = {}
    for e in events:
        if e["event"] in ("listening", "tls"):
            facts.update({k: v for k, v in e.items() if k not in ("event", "conn", "t")})
    return facts


def run_scenario(stlstest, bin_path, path, workdir):
    """Run one scenario; return a list of problems (empty = pass)."""
    with open(path, encoding="utf-8") as f:
        scenario = json.load(f)
    peer = Peer(path, workdir)
    problems = []
    try:
        port = peer.start()
        facts = peer_facts(peer.events())
        host = scenario.get("probe_host")
        target = ["%s:%d" % (host, port), "--ip", PEER_ADDR] if host else ["%s:%d" % (PEER_ADDR, port)]
        args = target + [a.format(**facts) for a in scenario.get("probe_args", [])]
        started = time.monotonic()
        try:
            record = stlstest.run_probe(bin_path, args, timeout=30)
        except AssertionError as e:
            record = None
            problems.append(str(e))
        elapsed = time.monotonic() - started
        if "max_seconds" in scenario and elapsed > scenario["max_seconds"]:
            problems.append("the probe took %.1fs, want at most %ss" % (elapsed, scenario["max_seconds"]))
        if not peer.wait_idle(15):
            problems.append("the peer's connection did not end within 15s of the probe exiting")
        events = peer.events()
        facts = peer_facts(events)
        if record is not None:
            problems += check_record(record, scenario["expect"], facts)
        problems += check_peer_log(events, scenario)
        if problems and record is not None:
            problems.append("probe printed: %s" % json.dumps(record)[:3000])
    except AssertionError as e:
        problems.append(str(e))
    finally:
        peer.stop()
    if problems and peer.errors():
        problems.append("peer stderr: %s" % peer.errors())
    return problems


def main():
    ap = argparse.ArgumentParser(description="Fault tests against the scripted SMTP peer.")
    ap.add_argument("--bin", required=True, help="path of the starttls-scan binary")
    ap.add_argument("--only", help="run only this scenario (file name without .json)")
    args = ap.parse_args()

    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("test_faults: refusing to run outside the lab namespace; use tests/lab/netns-run.sh")
    if not os.access(args.bin, os.X_OK):
        sys.exit("test_faults: %s is not an executable" % args.bin)
    try:
        import stlstest
    except ImportError as e:
        sys.exit("test_faults: cannot import tests/lib/stlstest.py: %s" % e)

    paths = sorted(glob.glob(os.path.join(HERE, "scenarios", "*.json")))
    if args.only:
        paths = [p for p in paths if os.path.basename(p)[:-5] == args.only]
        if not paths:
            sys.exit("test_faults: no scenario named %r" % args.only)
    if not paths:
        sys.exit("test_faults: no scenarios found")

    passed = failed = 0
    scratch = tempfile.mkdtemp(prefix="faults-", dir=os.environ.get("STLS_LAB_TMP"))
    for path in paths:
        name = os.path.basename(path)[:-5]
        workdir = os.path.join(scratch, name)
        os.mkdir(workdir)
        problems = run_scenario(stlstest, args.bin, path, workdir)
        if problems:
            failed += 1
            print("FAIL %s: %s" % (name, "\n    ".join(problems)), flush=True)
        else:
            passed += 1
            print("ok %s" % name, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
