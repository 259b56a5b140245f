"""Helpers shared by the python tests: schema validation and running the binary.

Test scripts do `sys.path.insert(0, <repo>/tests/lib)` and `import stlstest`.
Every failure is an AssertionError whose message says what was wrong and
where (a JSON path into the record), so a failing test explains itself.
Only the standard library and jsonschema (python3-jsonschema, draft 2020-12)
are used, because the tests run under Debian's /usr/bin/python3.
"""

import datetime
import json
import os
import re
import subprocess

import jsonschema
from jsonschema import Draft202012Validator

_HERE = os.path.dirname(os.path.realpath(__file__))
REPO_ROOT = os.path.normpath(os.path.join(_HERE, "..", ".."))
SCHEMA_PATH = os.path.join(REPO_ROOT, "docs", "starttls-scan.schema.json")

KINDS = ("host", "probe", "domain", "summary")

# RFC 3339 date-time. jsonschema's own date-time checker needs the
# rfc3339-validator package, which Debian 12 does not ship, so without this
# the "format" keyword would silently accept anything.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_rfc3339(value):
    if not isinstance(value, str):
        return True  # "format" only constrains strings
    m = _RFC3339.match(value)
    if not m:
        return False
    try:
        # Parsing catches impossible dates such as 2026-02-30 or hour 25.
        datetime.datetime(*(int(m.group(i)) for i in range(1, 7)))
    except ValueError:
        return False
    return True


def _format_checker():
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_is_rfc3339)
    return checker


_schema = None
_validators = {}


def load_schema():
    """Return the published schema as a dict (loaded once)."""
    global _schema
    if _schema is None:
        with open(SCHEMA_PATH, encoding="utf-8") as f:
            _schema = json.load(f)
        Draft202012Validator.check_schema(_schema)
    return _schema


def _validator(kind):
    """A validator for one $defs entry (or the whole schema for kind "any")."""
    if kind not in _validators:
        schema = load_schema()
        if kind == "any":
            sub = schema
        else:
            # Point a small wrapper at the definition so its internal
            # "#/$defs/..." references still resolve against the full schema.
            sub = {"$ref": "#/$defs/" + kind, "$defs": schema["$defs"]}
        _validators[kind] = Draft202012Validator(sub, format_checker=_format_checker())
    return _validators[kind]


def detect_kind(record):
    """Which kind of record this is: "domain", "summary" or "probe"."""
    if isinstance(record, dict):
        if "domain" in record:
            return "domain"
        if record.get("schema") == "starttls-scan-summary/1":
            return "summary"
    return "probe"


def _json_path(path):
    out = "$"
    for p in path:
        out += "[%d]" % p if isinstance(p, int) else "." + str(p)
    return out


def _short(msg, limit=240):
    return msg if len(msg) <= limit else msg[:limit] + "..."


def _best_errors(err):
    """Flatten anyOf/oneOf failures to the leaf errors worth reading.

    For the many "null or object" alternatives, the branch that says "is not
    of type 'null'" tells nothing, so it is dropped when another branch has
    something more specific to say.
    """
    if not err.context:
        return [err]
    leaves = []
    for sub in err.context:
        leaves.extend(_best_errors(sub))
    useful = [l for l in leaves if not (l.validator == "type" and l.validator_value == "null")]
    return useful or leaves


def schema_errors(record, kind=None):
    """Return a list of "path: reason" strings; empty when the record is valid.

    kind: None (detect), "host" (a host object inside a domain record),
    "probe" (the line `starttls-scan probe` prints), "domain" or "summary".
    """
    if kind is None:
        kind = detect_kind(record)
    if kind not in KINDS:
        raise ValueError("unknown record kind %r (want one of %s)" % (kind, ", ".join(KINDS)))
    msgs = []
    for err in _validator(kind).iter_errors(record):
        for leaf in _best_errors(err):
            line = "%s: %s" % (_json_path(leaf.absolute_path), _short(leaf.message))
            if line not in msgs:
                msgs.append(line)
    return sorted(msgs)


def validate(record, kind=None):
    """Assert that record validates against the schema; the message lists every problem."""
    errs = schema_errors(record, kind)
    if errs:
        k = kind or detect_kind(record)
        text = json.dumps(record, sort_keys=True)
        if len(text) > 2000:
            text = text[:2000] + "...(truncated)"
        raise AssertionError("record does not match schema ($defs/%s):\n  %s\nrecord: %s"
                             % (k, "\n  ".join(errs), text))
    return record


def parse_json_line(line, what="line"):
    """Parse one NDJSON line into a dict, with a readable error."""
    try:
        value = json.loads(line)
    except ValueError as e:
        raise AssertionError("%s is not valid JSON (%s): %r" % (what, e, line[:500]))
    if not isinstance(value, dict):
        raise AssertionError("%s is JSON but not an object: %r" % (what, line[:500]))
    return value


def _run(cmd, timeout, env=None):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("command timed out after %ss: %s\nstdout: %s\nstderr: %s"
                             % (timeout, " ".join(map(str, cmd)),
                                _text(e.stdout), _text(e.stderr)))


def _text(b):
    if b is None:
        return ""
    if isinstance(b, bytes):
        return b.decode("utf-8", "replace")
    return b


def run_probe(bin, args, timeout=30, env=None):
    """Run `bin probe ARGS...`; assert exit 0 and exactly one valid probe record on stdout."""
    cmd = [str(bin), "probe"] + [str(a) for a in args]
    p = _run(cmd, timeout, env)
    out, err = _text(p.stdout), _text(p.stderr)
    ctx = "command: %s\nexit: %d\nstdout: %s\nstderr: %s" % (" ".join(cmd), p.returncode,
                                                           out[:4000], err[:4000])
    if p.returncode != 0:
        raise AssertionError("probe exited with %d, want 0\n%s" % (p.returncode, ctx))
    lines = out.split("\n")
    if len(lines) != 2 or lines[1] != "" or lines[0] == "":
        raise AssertionError("probe must print exactly one newline-terminated JSON line, got %d line(s)\n%s"
                             % (len([l for l in lines if l]), ctx))
    record = parse_json_line(lines[0], "probe output")
    try:
        validate(record, "probe")
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, ctx))
    return record


def run_json_lines(cmd, timeout=60, env=None, expect_rc=0):
    """Run cmd; assert its exit code (None = any) and that stdout is NDJSON of valid records.

    Returns (records, completed_process). Each record is validated against
    the kind detect_kind() picks for it.
    """
    cmd = [str(c) for c in cmd]
    p = _run(cmd, timeout, env)
    out, err = _text(p.stdout), _text(p.stderr)
    ctx = "command: %s\nexit: %d\nstderr: %s" % (" ".join(cmd), p.returncode, err[:4000])
    if expect_rc is not None and p.returncode != expect_rc:
        raise AssertionError("exit code %d, want %d\nstdout: %s\n%s"
                             % (p.returncode, expect_rc, out[:4000], ctx))
    if out and not out.endswith("\n"):
        raise AssertionError("stdout does not end with a newline (a truncated record?)\n%s" % ctx)
    records = []
    for n, line in enumerate(out.splitlines(), 1):
        rec = parse_json_line(line, "stdout line %d" % n)
        try:
            validate(rec)
        except AssertionError as e:
            raise AssertionError("stdout line %d: %s\n%s" % (n, e, ctx))
        records.append(rec)
    return records, p


def validate_ndjson_file(path, allow_empty=True):
    """Assert every line of path is a JSON object that matches the schema; return the records."""
    records = []
    with open(path, encoding="utf-8") as f:
        data = f.read()
    if data and not data.endswith("\n"):
        raise AssertionError("%s: last line has no newline (truncated record?)" % path)
    for n, line in enumerate(data.splitlines(), 1):
        rec = parse_json_line(line, "%s:%d" % (path, n))
        try:
            validate(rec)
        except AssertionError as e:
            raise AssertionError("%s:%d: %s" % (path, n, e))
        records.append(rec)
    if not records and not allow_empty:
        raise AssertionError("%s: no records" % path)
    return records


_MISSING = object()  # "no default given" for get()
_ABSENT = object()  # what expect() asks get() to return for a missing path


def get(record, path, default=_MISSING):
    """Dotted-path getter: get(r, "tls.chain.0.sha256").

    Integer components index lists. Without a default, a missing key or
    index raises AssertionError naming the path, so table-driven tests fail
    with a useful message instead of a KeyError.
    """
    cur = record
    done = []
    for part in path.split(".") if path else []:
        try:
            if isinstance(cur, list):
                cur = cur[int(part)]
            elif isinstance(cur, dict):
                cur = cur[part]
            else:
                raise KeyError(part)
        except (KeyError, IndexError, ValueError):
            if default is not _MISSING:
                return default
            raise AssertionError("%s: no %r at %s (value there: %s)"
                                 % (path, part, ".".join(done) or "$",
                                    json.dumps(cur)[:300]))
        done.append(part)
    return cur


def expect(record, table):
    """Check {dotted_path: expected} pairs; assert with every mismatch listed.

    An expected value that is a callable is called with the actual value
    and must return true.
    """
    bad = []
    for path, want in table.items():
        have = get(record, path, _ABSENT)
        if have is _ABSENT:
            bad.append("%s: missing, want %r" % (path, want))
        elif callable(want):
            if not want(have):
                bad.append("%s: %r fails %s" % (path, have, getattr(want, "__name__", "check")))
        elif have != want:
            bad.append("%s: got %r, want %r" % (path, have, want))
    if bad:
        raise AssertionError("unexpected values:\n  %s\nrecord: %s"
                             % ("\n  ".join(bad), json.dumps(record, sort_keys=True)[:2000]))


class Results:
    """Counts the checks of a lab test and prints one line per check; the
    caller prints the closing "N passed, M failed" line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name):
        self.passed += 1
        print("ok   %s" % name, flush=True)

    def fail(self, name, detail=""):
        self.failed += 1
        print("FAIL %s" % name, flush=True)
        if detail:
            print("     " + str(detail).replace("\n", "\n     "), flush=True)

    def check(self, name, fn):
        """Run fn(); an AssertionError (or any crash) is a failure. Returns
        fn's value, or None when it failed."""
        try:
            value = fn()
        except AssertionError as e:
            self.fail(name, str(e))
            return None
        except Exception as e:  # a crash in a check is a failure, never a pass
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            return None
        self.ok(name)
        return value

    def attempt(self, name, fn):
        """Run a step that gathers data: only its failure is reported and
        counted."""
        try:
            return fn()
        except Exception as e:
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            return None
