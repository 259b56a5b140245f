#!/usr/bin/python3
"""The command line as a user meets it: help, version and option spelling.

Runs the binary without the lab: every command below either prints and
exits before any network activity, or (if a check regressed) could only
reach 127.0.0.1:1, which is closed. Checks:

  - "--version" anywhere prints the version and does nothing else; it is
    never taken as an abbreviation of --versions;
  - long options are accepted only in full: an abbreviation is a usage
    error (exit 2) that names the option(s) meant;
  - "help COMMAND" prints that command's help; "help bogus",
    "help a b" and "version --bogus" exit 2 with a message on stderr;
  - "help check" names the smtp_tls_policy_maps line "check" prints;
  - the man page (docs/starttls-scan.1) is free of groff warnings, and it
    and the bash completion (scripts/starttls-scan.bash-completion) name
    every option each command's help lists, and no option the binary
    refuses.

Prints one "ok"/"FAIL" line per check and "N passed, M failed".

Usage: test_cli.py --bin PATH
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
import stlstest  # noqa: E402

CLOSED = "127.0.0.1:1"
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
MAN = os.path.join(REPO, "docs", "starttls-scan.1")
COMPLETION = os.path.join(REPO, "scripts", "starttls-scan.bash-completion")


def run(bin, *args):
    p = subprocess.run([bin] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20, text=True)
    return p.returncode, p.stdout, p.stderr


def expect(args, rc, out=None, err=None, out_lacks=None):
    """A check: exit code, and substrings expected on stdout/stderr."""
    def fn():
        code, o, e = run(BIN, *args)
        where = "starttls-scan %s: exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), code, o[:600], e[:600])
        assert code == rc, "want exit %d; %s" % (rc, where)
        if out is not None:
            assert (o == out) if isinstance(out, str) and out.endswith("\n") \
                else (out in o), "stdout lacks %r; %s" % (out, where)
        if err is not None:
            assert err in e, "stderr lacks %r; %s" % (err, where)
            assert e.count("\n") == 1, "want a one-line message; %s" % where
            assert o == "", "nothing on stdout after a usage error; %s" % where
        if out_lacks is not None:
            assert out_lacks not in o, "stdout has %r; %s" % (out_lacks, where)
    return fn


def help_options(cmd):
    """The long options a command's --help lists."""
    code, out, _ = run(BIN, "help", cmd)
    assert code == 0, "help %s: exit %d" % (cmd, code)
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", out))


def completion_options(cmd):
    """What the bash completion offers after "starttls-scan CMD --"."""
    script = ('source "%s"; COMP_WORDS=(starttls-scan %s --); COMP_CWORD=2; '
              '_starttls_scan; printf "%%s\\n" "${COMPREPLY[@]}"' % (COMPLETION, cmd))
    p = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=20)
    assert p.returncode == 0 and not p.stderr, "bash: %s" % p.stderr
    return set(p.stdout.split())


def accepted(cmd, opt):
    """The binary knows opt for cmd: "CMD OPT --help --help" either prints
    help or complains about a value, never that OPT is not an option."""
    code, _, err = run(BIN, cmd, opt, "--help", "--help")
    return code in (0, 2) and "unknown option" not in err and "is not an option" not in err


def check_man_and_completion(r):
    def man_lint():
        env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
        p = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", MAN],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=60)
        assert p.returncode == 0 and p.stdout, "man exit %d: %s" % (p.returncode, p.stderr)
        assert not p.stderr.strip(), "groff warnings:\n" + p.stderr
    r.check("man page: no groff warnings (man --warnings)", man_lint)

    with open(MAN, encoding="utf-8") as f:
        man = f.read().replace("\\-", "-")
    man_opts = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", man))
    # Every command "starttls-scan help" lists, so a new one cannot be
    # left out of the man page and the completion.
    _, main_help, _ = run(BIN, "help")
    listed = re.findall(r"^  ([a-z]+) ", main_help.split("Commands:", 1)[-1].split("\n\n")[0],
                        re.M)
    commands = [c for c in listed if c not in ("help", "version")]
    r.check("help lists the commands (%s)" % ", ".join(commands),
            lambda: {"probe", "scan", "check"} <= set(commands) or
            (_ for _ in ()).throw(AssertionError("listed: %s" % listed)))
    # A help text may mention another command's option ("serve's default
    # --max-body"): only the options the command accepts count.
    helps = {c: {o for o in help_options(c) if accepted(c, o)} for c in commands}
    # check takes every scan option (its help says so) plus its own.
    # (-i, -o, --resume, --shard and --summary make no sense for one domain.)
    helps["check"] |= helps["scan"] - {"--input", "--output", "--resume", "--shard",
                                       "--summary"}
    for cmd, opts in sorted(helps.items()):
        opts = opts | {"--help", "--version"}
        r.check("the man page describes the %s command" % cmd,
                lambda: re.search(r"^\.(SS|SY|TP|B|BR|BI)?\s*.*\b%s\b" % cmd, man, re.M) and
                ("Options of %s" % cmd in man or re.search(r"Options of [a-z, ]*\b%s\b" % cmd, man))
                or (_ for _ in ()).throw(AssertionError("no 'Options of %s' section" % cmd)))
        comp = completion_options(cmd)
        r.check("completion for %s offers every option of its help" % cmd,
                lambda: not (opts - comp) or
                (_ for _ in ()).throw(AssertionError("missing: %s" % sorted(opts - comp))))
        r.check("the man page names every option of %s --help" % cmd,
                lambda: not (opts - man_opts) or
                (_ for _ in ()).throw(AssertionError("missing: %s" % sorted(opts - man_opts))))
        r.check("%s accepts every option its completion offers" % cmd,
                lambda: not [o for o in comp if not accepted(cmd, o)] or
                (_ for _ in ()).throw(AssertionError(
                    "refused: %s" % sorted(o for o in comp if not accepted(cmd, o)))))
    everywhere = set().union(*helps.values()) | {"--help", "--version"}
    r.check("the man page names no option the program lacks",
            lambda: not (man_opts - everywhere) or
            (_ for _ in ()).throw(AssertionError("unknown: %s" % sorted(man_opts - everywhere))))


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    BIN = os.path.abspath(ap.parse_args().bin)
    r = stlstest.Results()

    code, version, _ = run(BIN, "version")
    r.check("version prints 'starttls-scan X.Y.Z'",
            lambda: (code == 0 and version.startswith("starttls-scan ")
                     and version.count("\n") == 1) or
            (_ for _ in ()).throw(AssertionError("got %r, exit %d" % (version, code))))

    for args in (["--version"], ["probe", CLOSED, "--version"],
                 ["probe", "--version", CLOSED], ["probe", "--versions", CLOSED, "--version"],
                 ["scan", "--version"], ["scan", "example.com", "--version"],
                 ["check", "example.com", "--version"], ["help", "--version"],
                 ["version", "--version"], ["probe", "--bogus", "--version"]):
        r.check("%s prints the version only" % " ".join(args),
                expect(args, 0, out=version))

    # An option's argument that happens to read "--version" stays an argument.
    r.check("probe --ehlo --version: an EHLO name, not a version request",
            expect(["probe", "--ehlo", "--version"], 2, err="missing HOST"))

    for abbrev, meant in (("--vers", "--versions"), ("--ver", "--versions"),
                          ("--ehl", "--ehlo"), ("--ca", "--ca-file"),
                          ("--connect", "--connect-timeout"), ("--dom", "--domain")):
        r.check("probe %s is refused and names %s" % (abbrev, meant),
                expect(["probe", abbrev, "x", CLOSED], 2, err=meant))
    for cmd, abbrev, meant in (("scan", "--no-ret", "--no-retry"), ("scan", "--ver", "--versions"),
                               ("scan", "--out", "--output"), ("check", "--lev", "--level"),
                               ("check", "--js", "--json")):
        r.check("%s %s is refused and names %s" % (cmd, abbrev, meant),
                expect([cmd, abbrev, "example.com"], 2, err=meant))
    # (--shard 0/1 makes it a usage error: with no domains and stdin not a
    # terminal, scan would read its targets from stdin.)
    r.check("scan --ehlo --version: an EHLO name, not a version request",
            expect(["scan", "--ehlo", "--version", "--shard", "0/1"], 2, err="bad --shard"))
    r.check("serve --max-conns-p is refused (not taken for --max-conns-per-ip)",
            expect(["serve", "--max-conns-p", "4", "--db", "x"], 2, err="--max-conns-per-ip"))
    r.check("serve --version prints the version only",
            expect(["serve", "--db", "x", "--version"], 0, out=version))
    r.check("probe --bogus: unknown option",
            expect(["probe", "--bogus", CLOSED], 2, err="unknown option '--bogus'"))
    r.check("probe --ehlo at the end: needs an argument",
            expect(["probe", CLOSED, "--ehlo"], 2, err="'--ehlo' needs an argument"))
    r.check("probe --help=x: takes no argument",
            expect(["probe", "--help=x"], 2, err="'--help' takes no argument"))

    for cmd, first in (("probe", "usage: starttls-scan probe"),
                       ("serve", "usage: starttls-scan serve"),
                       ("ingest", "usage: starttls-scan ingest"),
                       ("scan", "usage: starttls-scan scan"),
                       ("check", "usage: starttls-scan check")):
        r.check("help %s prints its usage" % cmd, expect(["help", cmd], 0, out=first))
        r.check("%s --help prints its usage" % cmd, expect([cmd, "--help"], 0, out=first))
    r.check("help alone prints the commands", expect(["help"], 0, out="Commands:"))
    r.check("help bogus exits 2", expect(["help", "bogus"], 2, err="no command 'bogus'"))
    r.check("help check probe exits 2", expect(["help", "check", "probe"], 2, err="one COMMAND"))
    r.check("version --bogus exits 2",
            expect(["version", "--bogus"], 2, err="unknown option '--bogus'"))
    r.check("version extra exits 2", expect(["version", "x"], 2, err="unexpected argument"))
    r.check("no command exits 2", lambda: run(BIN)[0] == 2 or
            (_ for _ in ()).throw(AssertionError("exit %d" % run(BIN)[0])))
    r.check("unknown command exits 2", expect(["bogus"], 2, err="unknown command 'bogus'"))
    # check prints the recommended level's smtp_tls_policy_maps line (the
    # lab test "check: the report ends with the policy-map line" shows it),
    # and its help says so.
    r.check("help check promises the policy-map line check prints",
            expect(["help", "check"], 0, out="its smtp_tls_policy_maps line"))

    check_man_and_completion(r)

    print("%d passed, %d failed" % (r.passed, r.failed))
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
