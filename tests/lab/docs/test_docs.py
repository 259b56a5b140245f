#!/usr/bin/python3
"""Docs that cannot rot: every command in README.md and docs/*.md runs
against the lab, and docs/examples/ are records of real lab runs.

Runs inside the lab namespace (tests/lab/netns-run.sh), starts the lab
(tests/lab/lab.sh) and works in a directory holding what the docs refer
to: domains.txt (targets/demo.txt), lab-ca.pem (the lab's CA bundle) and
starttls-scan on PATH. Then:

  console    every ```console block of the docs is run, in document order,
             one bash per block: each "$ command" line (with "\\"
             continuations) runs, must exit 0 (unless a "$ echo $?"
             follows to show its status), and its standard output must
             equal the lines that follow it in the block, after volatile
             values (times, fingerprints and serials, durations in ms) are
             masked on both sides;
  commands   every other code line that starts with "starttls-scan ", "jq "
             or "tests/lib/validate.py " runs too and must exit 0; what starttls-scan prints must
             be valid records. Only the long-running `serve` is left out
             (its own test, serve_api, covers it);
  examples   the records of docs/examples/ are made again by probes and a
             scan of lab domains; each must be valid, and equal the file in
             docs/examples/ after masking, and no file may be missing or
             extra. So an example cannot lack a field the program writes.

With --update, the console outputs in the Markdown files and the files of
docs/examples/ are rewritten from this run instead of compared.

Prints one "ok"/"FAIL" line per check and "N passed, M failed".

Usage: test_docs.py --bin PATH [--update]
"""

import argparse
import difflib
import glob
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import stlstest  # noqa: E402

LAB_SH = os.path.join(REPO, "tests", "lab", "lab.sh")
DOCS = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
EXAMPLES = os.path.join(REPO, "docs", "examples")
# The EHLO name of every run here, so records do not carry this machine's.
EHLO = "client.lab.test"
SKIP_COMMANDS = (
    ("starttls-scan serve", "a long-running service; serve_api tests it"),
)

# --------------------------------------------------------------- markdown


def parse_docs(path):
    """Console blocks and other command lines of one Markdown file, in order.

    Returns a list of ("console", line, [(command, [expected lines])]) and
    ("command", line, command)."""
    items = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(```+)\s*(\S*)", line)
        if fence:
            lang = fence.group(2)
            body, start = [], i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith(fence.group(1)):
                body.append(lines[i])
                i += 1
            i += 1
            if lang == "console":
                items.append(("console", start, parse_console(body)))
            else:
                items.extend(("command", start + n, c) for n, c in code_commands(body))
            continue
        if line.startswith("    ") and (i == 0 or not lines[i - 1].strip() or
                                         lines[i - 1].startswith("    ")):
            body, start = [], i
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            items.extend(("command", start + n, c) for n, c in code_commands(body))
            continue
        i += 1
    return items


def join_continued(body):
    """(index, line) with "\\"-continued lines joined."""
    out = []
    i = 0
    while i < len(body):
        start, text = i, body[i]
        while text.endswith("\\") and i + 1 < len(body):
            i += 1
            text = text[:-1] + "\n" + body[i]
        out.append((start, text))
        i += 1
    return out


def code_commands(body):
    """Command lines of a code block that is not a console transcript."""
    out = []
    for n, text in join_continued([re.sub(r"^\$ ", "", b) for b in body]):
        if re.match(r"^(starttls-scan|jq|tests/lib/validate.py) ", text):
            # A jq program may go on over lines that open with a quote.
            out.append((n, text))
        elif out and re.match(r"^\s+\S", text) and out[-1][1].count("'") % 2 == 1:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + text)
    return out


def parse_console(body):
    """[(command, expected output lines)] of a console block."""
    steps = []
    i = 0
    while i < len(body):
        line = body[i]
        if line.startswith("$ "):
            cmd = line[2:]
            # "\" continues a command, and so does a quoted jq program
            # until its quotes close.
            while (cmd.endswith("\\") or cmd.count("'") % 2 == 1) and i + 1 < len(body):
                i += 1
                cmd = cmd + "\n" + body[i]
            steps.append((cmd, []))
        elif steps:
            steps[-1][1].append(line)
        i += 1
    return steps


# ---------------------------------------------------------------- masking

_MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b[0-9a-f]{16,}\b"), "<hex>"),
    (re.compile(r'"(connect|greeting|ehlo|starttls|handshake|ehlo_tls|total|txt|fetch|'
                r'duration_ms)": \d+'), r'"\1": <ms>'),
    (re.compile(r'"(connect|greeting|ehlo|starttls|handshake|ehlo_tls|total|txt|fetch|'
                r'duration_ms)":\d+'), r'"\1":<ms>'),
    (re.compile(r"\b\d+(\.\d+)?s; "), "<s>; "),
    (re.compile(r'"run_id": ?"[^"]*"'), '"run_id": "<run>"'),
    (re.compile(r'"wait_ms": ?\d+'), '"wait_ms": <ms>'),
]


def mask(text):
    for rx, repl in _MASKS:
        text = rx.sub(repl, text)
    return text


def mask_lines(lines):
    out = [mask(l.rstrip()) for l in lines]
    while out and not out[-1]:
        out.pop()
    return out


# ------------------------------------------------------------------- runs

class Lab:
    def __init__(self, binary, tmp):
        self.lab = os.path.join(tmp, "lab")
        self.work = os.path.join(tmp, "docs")
        self.bin_dir = os.path.join(tmp, "docs-bin")
        os.makedirs(self.work, exist_ok=True)
        os.makedirs(self.bin_dir, exist_ok=True)
        link = os.path.join(self.bin_dir, "starttls-scan")
        if not os.path.exists(link):
            os.symlink(binary, link)
        shutil.copy(os.path.join(REPO, "targets", "demo.txt"),
                    os.path.join(self.work, "domains.txt"))
        # Commands of the source tree (tests/lib/validate.py) as the docs
        # spell them, from the top of a checkout.
        if not os.path.exists(os.path.join(self.work, "tests")):
            os.symlink(os.path.join(REPO, "tests"), os.path.join(self.work, "tests"))
        self.env = dict(os.environ, PATH=self.bin_dir + ":" + os.environ["PATH"],
                        LC_ALL="C.UTF-8", TZ="UTC")

    def start(self):
        p = subprocess.run(["bash", LAB_SH, "start", self.lab], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        if p.returncode != 0:
            sys.exit("test_docs: lab.sh start failed:\n%s" % p.stdout.decode(errors="replace"))
        ca = os.path.join(self.work, "lab-ca.pem")
        if not os.path.exists(ca):
            os.symlink(os.path.join(self.lab, "sts", "ca-bundle.pem"), ca)

    def stop(self):
        subprocess.run(["bash", LAB_SH, "stop", self.lab], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)

    def bash(self, script, timeout=300):
        return subprocess.run(["bash", "-c", script], cwd=self.work, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)


MARK = "@@stls-docs-step-end@@"


def run_console(lab, steps):
    """Run one block's commands in one bash; [(stdout lines, stderr)] per step."""
    script = ["set -o pipefail"]
    for cmd, _ in steps:
        # Keep $? for a following "echo $?" across the marker.
        script.append(cmd + "\n__rc=$?; echo '%s'$__rc; echo '%s' >&2; (exit $__rc)"
                      % (MARK, MARK))
    p = lab.bash("\n".join(script))
    outs = re.split(re.escape(MARK) + r"(\d+)\n", p.stdout)
    errs = p.stderr.split(MARK + "\n")
    got = []
    for k in range(len(steps)):
        out = outs[2 * k] if 2 * k < len(outs) else ""
        rc = int(outs[2 * k + 1]) if 2 * k + 1 < len(outs) else None
        err = errs[k] if k < len(errs) else ""
        got.append((out.rstrip("\n").split("\n") if out.strip() else [], err, rc))
    return got


def check_console(res, lab, path, line, steps, update):
    rel = os.path.relpath(path, REPO)
    got = run_console(lab, steps)
    new_steps = []
    for k, ((cmd, want), (have, err, rc)) in enumerate(zip(steps, got)):
        name = "%s:%d: $ %s" % (rel, line, cmd.split("\n")[0][:70])
        # --update keeps the text when only masked values differ.
        new_steps.append((cmd, want if mask_lines(want) == mask_lines(have) else have))
        # A failing command is shown with "$ echo $?" after it, or not at all.
        shows_rc = k + 1 < len(steps) and steps[k + 1][0].strip() == "echo $?"
        if rc != 0 and not shows_rc:
            res.fail(name, "exit %s\nstderr: %s" % (rc, err[-1500:]))
            continue
        if update:
            continue
        w, h = mask_lines(want), mask_lines(have)
        if w == h:
            res.ok(name)
        else:
            diff = "\n".join(difflib.unified_diff(w, h, "documented", "this run", lineterm="",
                                                  n=2))
            res.fail(name, diff[:4000] + ("\nstderr: " + err[-1500:] if err.strip() else ""))
    return new_steps


def check_command(res, lab, path, line, cmd):
    rel = os.path.relpath(path, REPO)
    name = "%s:%d: %s runs" % (rel, line, cmd.split("\n")[0][:70])
    p = lab.bash("set -o pipefail\n" + cmd, timeout=300)
    if p.returncode != 0:
        res.fail(name, "exit %d\nstdout: %s\nstderr: %s" % (p.returncode, p.stdout[-1500:],
                                                             p.stderr[-1500:]))
        return
    if cmd.startswith("starttls-scan ") and "|" not in cmd:
        try:
            for n, out in enumerate(p.stdout.splitlines(), 1):
                stlstest.validate(stlstest.parse_json_line(out, "stdout line %d" % n))
        except AssertionError as e:
            res.fail(name, "output is not valid records: %s" % e)
            return
    res.ok(name)


def rewrite_console(path, outputs):
    """Replace the expected output of each console block of path, in order."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i, k = [], 0, 0
    while i < len(lines):
        out.append(lines[i])
        if re.match(r"^```+\s*console\s*$", lines[i]):
            fence = re.match(r"^(```+)", lines[i]).group(1)
            i += 1
            while i < len(lines) and not lines[i].startswith(fence):
                i += 1
            for cmd, have in outputs[k]:
                out.append("$ " + cmd)
                out.extend(h.rstrip() for h in have)
            k += 1
            continue
        i += 1
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


# --------------------------------------------------------------- examples

# docs/examples/NAME: how each is made. Probes print one record; the scan
# (one run, --no-dedupe so no record depends on completion order) gives
# the domain records and the summary.
PROBES = {
    "probe-tls13.json": ["mx-ecdsa.lab.test", "--domain", "lab.test"],
    "probe-starttls-not-supported.json": ["mx-plain.lab.test"],
    "probe-connection-refused.json": ["mx-refused1.lab.test"],
}
SCAN_DOMAINS = {
    "domain-multi-mx.json": "multi.lab.test",
    "domain-ipv6-unreachable.json": "unreach6.lab.test",
    "domain-dane.json": "ee.dane.test",
    "domain-mta-sts.json": "sts-enforce.lab.test",
    "domain-legacy-tls10.json": "tls10.lab.test",
    "domain-null-mx.json": "nullmx.lab.test",
    "domain-nxdomain.json": "nonexistent.lab.test",
    "domain-invalid.json": "not a domain",
}
SUMMARY = "summary.json"


def make_examples(lab, out_dir):
    """Make every example into out_dir; returns {name: error} for failures."""
    errors = {}
    os.makedirs(out_dir, exist_ok=True)
    common = ["--ca-file", "lab-ca.pem", "--ehlo", EHLO]
    for name, args in PROBES.items():
        p = subprocess.run(["starttls-scan", "probe"] + args + common, cwd=lab.work,
                           env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=120)
        if p.returncode != 0 or len(p.stdout.splitlines()) != 1:
            errors[name] = "probe exit %d: %s %s" % (p.returncode, p.stdout[-500:], p.stderr[-500:])
            continue
        write_example(out_dir, name, json.loads(p.stdout))
    targets = os.path.join(lab.work, "examples.txt")
    with open(targets, "w", encoding="utf-8") as f:
        f.write("\n".join(SCAN_DOMAINS.values()) + "\n")
    out = os.path.join(lab.work, "examples.ndjson")
    summary = os.path.join(lab.work, "examples-summary.json")
    p = subprocess.run(["starttls-scan", "scan", "-i", targets, "-o", out, "--summary", summary,
                        "--dane", "--mta-sts", "--ipv6", "on", "--no-dedupe", "-q"] + common,
                       cwd=lab.work, env=lab.env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    if p.returncode != 0:
        errors["scan"] = "scan exit %d: %s" % (p.returncode, p.stderr[-1000:])
        return errors
    by_domain = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            by_domain[rec["domain"]] = rec
    for name, domain in SCAN_DOMAINS.items():
        if domain not in by_domain:
            errors[name] = "no record for %r" % domain
        else:
            write_example(out_dir, name, by_domain[domain])
    with open(summary, encoding="utf-8") as f:
        write_example(out_dir, SUMMARY, json.load(f))
    return errors


def write_example(out_dir, name, record):
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        f.write(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def masked_json(text):
    """Lines to compare: key order does not matter (the summary's counters
    come in the order statuses were first seen), volatile values are masked."""
    return mask_lines(json.dumps(json.loads(text), indent=2, sort_keys=True).split("\n"))


def check_examples(res, fresh_dir, update):
    want = set(PROBES) | set(SCAN_DOMAINS) | {SUMMARY}
    if update:
        for old in glob.glob(os.path.join(EXAMPLES, "*.json")):
            if os.path.basename(old) not in want:
                os.unlink(old)
        for name in sorted(want):
            old = os.path.join(EXAMPLES, name)
            if not (os.path.exists(old) and
                    masked_json(open(old, encoding="utf-8").read()) ==
                    masked_json(open(os.path.join(fresh_dir, name), encoding="utf-8").read())):
                shutil.copy(os.path.join(fresh_dir, name), old)
        return
    have = {os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.json"))}
    if have == want:
        res.ok("docs/examples holds exactly the examples made here (%d)" % len(want))
    else:
        res.fail("docs/examples holds exactly the examples made here",
                 "missing: %s; not made by this test: %s"
                 % (sorted(want - have), sorted(have - want)))
    for name in sorted(want & have):
        fresh = open(os.path.join(fresh_dir, name), encoding="utf-8").read()
        doc = open(os.path.join(EXAMPLES, name), encoding="utf-8").read()
        rec = json.loads(fresh)
        errs = stlstest.schema_errors(rec)
        if errs:
            res.fail("example %s: this run's record is valid" % name, "\n".join(errs))
            continue
        w, h = masked_json(doc), masked_json(fresh)
        if w == h:
            res.ok("example %s: equal to a real lab run" % name)
        else:
            res.fail("example %s: equal to a real lab run (tests/lab/docs/test_docs.py --update "
                     "rewrites it)" % name,
                     "\n".join(difflib.unified_diff(w, h, "docs/examples/" + name, "this run",
                                                    lineterm="", n=2))[:4000])


# ------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--update", action="store_true",
                    help="rewrite console outputs and docs/examples from this run")
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1" or not os.environ.get("STLS_LAB_TMP"):
        sys.exit("test_docs: run me inside the lab namespace: tests/lab/netns-run.sh %s --bin PATH"
                 % sys.argv[0])
    binary = os.path.abspath(args.bin)
    res = stlstest.Results()
    lab = Lab(binary, os.environ["STLS_LAB_TMP"])

    items = {path: parse_docs(path) for path in DOCS}
    consoles = sum(1 for v in items.values() for it in v if it[0] == "console")
    commands = sum(1 for v in items.values() for it in v if it[0] == "command")
    # A parser that finds nothing would pass everything: the README alone
    # has several transcripts and command lines.
    if consoles >= 3 and commands >= 2:
        res.ok("found %d console blocks and %d other commands in %d files"
               % (consoles, commands, len(DOCS)))
    else:
        res.fail("found console blocks and commands", "%d console, %d commands"
                 % (consoles, commands))

    lab.start()
    try:
        for path in DOCS:
            outputs = []
            for kind, line, what in items[path]:
                if kind == "console":
                    outputs.append(check_console(res, lab, path, line, what, args.update))
                    continue
                skip = [why for prefix, why in SKIP_COMMANDS if what.startswith(prefix)]
                if skip:
                    print("skip %s:%d: %s (%s)" % (os.path.relpath(path, REPO), line,
                                                   what.split("\n")[0][:60], skip[0]))
                    continue
                check_command(res, lab, path, line, what)
            if args.update and outputs:
                rewrite_console(path, outputs)
        fresh = os.path.join(lab.work, "examples")
        errors = make_examples(lab, fresh)
        for name, err in sorted(errors.items()):
            res.fail("example %s made" % name, err)
        if not errors:
            check_examples(res, fresh, args.update)
    finally:
        lab.stop()
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
