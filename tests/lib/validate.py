#!/usr/bin/python3
"""Validate NDJSON output of starttls-scan against the published schema.

Usage: validate.py [--kind host|probe|domain|summary] FILE...   ("-" reads stdin)

Every line must be a JSON object that matches the schema (the record kind
is detected per line unless --kind is given). Prints each invalid line with
its reasons, then a summary; exits 1 when any line is invalid or a file
cannot be read, 2 on usage errors.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import stlstest  # noqa: E402


def check_stream(name, f, kind, counts):
    for n, line in enumerate(f, 1):
        if not line.endswith("\n"):
            print("%s:%d: last line has no newline (truncated record?)" % (name, n))
            counts["invalid"] += 1
        line = line.rstrip("\n")
        try:
            record = json.loads(line)
        except ValueError as e:
            print("%s:%d: not valid JSON: %s" % (name, n, e))
            counts["invalid"] += 1
            continue
        if not isinstance(record, dict):
            print("%s:%d: not a JSON object" % (name, n))
            counts["invalid"] += 1
            continue
        errs = stlstest.schema_errors(record, kind)
        k = kind or stlstest.detect_kind(record)
        if errs:
            print("%s:%d: invalid %s record:\n  %s" % (name, n, k, "\n  ".join(errs)))
            counts["invalid"] += 1
        else:
            counts["valid"] += 1
            counts[k] = counts.get(k, 0) + 1


def main(argv):
    kind = None
    files = []
    args = iter(argv)
    for a in args:
        if a == "--kind":
            kind = next(args, None)
            if kind not in stlstest.KINDS:
                print("validate.py: --kind wants one of %s" % ", ".join(stlstest.KINDS), file=sys.stderr)
                return 2
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            files.append(a)
    if not files:
        print("usage: validate.py [--kind KIND] FILE...", file=sys.stderr)
        return 2
    counts = {"valid": 0, "invalid": 0}
    unreadable = 0
    for path in files:
        try:
            if path == "-":
                check_stream("<stdin>", sys.stdin, kind, counts)
            else:
                with open(path, encoding="utf-8") as f:
                    check_stream(path, f, kind, counts)
        except (OSError, UnicodeDecodeError) as e:
            print("%s: cannot read: %s" % (path, e))
            unreadable += 1
    kinds = ", ".join("%d %s" % (counts[k], k) for k in stlstest.KINDS if counts.get(k))
    print("%d valid (%s), %d invalid, %d file(s)%s"
          % (counts["valid"], kinds or "none", counts["invalid"], len(files),
             ", %d unreadable" % unreadable if unreadable else ""))
    return 1 if counts["invalid"] or unreadable else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
