#!/usr/bin/python3
"""Tests for the published JSON Schema and for the test library itself.

1. Every example in docs/examples/*.json must validate (the docs show real
   output shapes, so they must stay valid).
2. Mutated copies of those examples, each breaking one rule of the contract,
   must be REJECTED, and so must every file in tests/unit/schema/negative/. A
   schema that accepts everything would pass step 1; step 2 proves it can fail.
   Every object is closed, so an unknown field anywhere is rejected.
3. docs/output.md and the schema name the same fields: every field a table
   in output.md names is in the schema, every schema property is in
   output.md, and "*optional*" there means "not required" in the schema.
4. stlstest's helpers (run_probe, run_json_lines, validate_ndjson_file, get)
   behave as the lab and peer tests rely on, checked against fake binaries.

Prints one "ok"/"FAIL" line per check and a final "N passed, M failed".
"""

import copy
import glob
import json
import os
import re
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

import stlstest  # noqa: E402

EXAMPLES = os.path.join(REPO, "docs", "examples")
NEGATIVE = os.path.join(HERE, "negative")

passed = 0
failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s" % name)
        if detail:
            print("     " + detail.replace("\n", "\n     "))


def load(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def set_path(record, path, value):
    """Set (or with value DELETE, remove) the value at a dotted path."""
    parts = path.split(".")
    parent = stlstest.get(record, ".".join(parts[:-1])) if len(parts) > 1 else record
    key = int(parts[-1]) if isinstance(parent, list) else parts[-1]
    if value is DELETE:
        del parent[key]
    else:
        parent[key] = value


DELETE = object()

PROBE_OK = "probe-tls13.json"
PROBE_NOTLS = "probe-starttls-not-supported.json"
PROBE_REFUSED = "probe-connection-refused.json"
DOMAIN = "domain-multi-mx.json"
DOMAIN_UNREACH = "domain-ipv6-unreachable.json"
NULL_MX = "domain-null-mx.json"
SUMMARY = "summary.json"

# (name, example file, [(dotted path, new value or DELETE)...]); every one of
# these breaks the contract and must be rejected.
NEGATIVES = [
    ("probe: missing status", PROBE_OK, [("status", DELETE)]),
    ("probe: missing error key", PROBE_OK, [("error", DELETE)]),
    ("probe: missing timing_ms", PROBE_NOTLS, [("timing_ms", DELETE)]),
    ("probe: missing findings", PROBE_NOTLS, [("findings", DELETE)]),
    ("probe: missing schema", PROBE_OK, [("schema", DELETE)]),
    ("probe: missing scanned_at", PROBE_OK, [("scanned_at", DELETE)]),
    ("probe: wrong schema version", PROBE_OK, [("schema", "starttls-scan/2")]),
    ("probe: unknown status", PROBE_OK, [("status", "succeeded")]),
    ("probe: status in wrong case", PROBE_OK, [("status", "SUCCESS")]),
    ("probe: bare-string error", PROBE_REFUSED, [("error", "connection refused")]),
    ("probe: error without code", PROBE_REFUSED, [("error.code", DELETE)]),
    ("probe: unknown error stage", PROBE_REFUSED, [("error.stage", "tcp")]),
    ("probe: lowercase error code", PROBE_REFUSED, [("error.code", "econnrefused")]),
    ("probe: failure status without error", PROBE_REFUSED, [("error", None)]),
    ("probe: success with an error", PROBE_OK,
     [("error", {"stage": "quit", "code": "EOF", "message": "x"})]),
    ("probe: success without tls", PROBE_OK, [("tls", None)]),
    ("probe: starttls-not-supported with error", PROBE_NOTLS,
     [("error", {"stage": "ehlo", "code": "SMTP_502", "message": "x"})]),
    ("probe: unknown family", PROBE_OK, [("family", "inet")]),
    ("probe: ipv4 address labelled ipv6", PROBE_OK, [("family", "ipv6")]),
    ("probe: not an address", PROBE_OK, [("ip", "mx1.example.com")]),
    ("probe: bracketed ipv6", PROBE_NOTLS, [("ip", "[2001:db8:25::2]")]),
    ("probe: port out of range", PROBE_OK, [("port", 0)]),
    ("probe: port as string", PROBE_OK, [("port", "25")]),
    ("probe: negative timing", PROBE_OK, [("timing_ms.connect", -1)]),
    ("probe: fractional timing", PROBE_OK, [("timing_ms.total", 12.5)]),
    ("probe: timing missing a step", PROBE_OK, [("timing_ms.handshake", DELETE)]),
    ("probe: bad date (month 13)", PROBE_OK, [("scanned_at", "2026-13-30T04:23:02Z")]),
    ("probe: bad date (Feb 30)", PROBE_OK, [("scanned_at", "2026-02-30T04:23:02Z")]),
    ("probe: date without T", PROBE_OK, [("scanned_at", "2026-11-30 04:23:02Z")]),
    ("probe: date not UTC", PROBE_OK, [("scanned_at", "2026-11-30T05:23:02+01:00")]),
    ("probe: date as epoch", PROBE_OK, [("scanned_at", 1796012582)]),
    ("probe: unknown ehlo command", PROBE_OK, [("ehlo.command", "LHLO")]),
    ("probe: ehlo extensions as string", PROBE_OK, [("ehlo.extensions", "STARTTLS")]),
    ("probe: starttls.offered missing", PROBE_OK, [("starttls.offered", DELETE)]),
    ("probe: finding without id", PROBE_OK, [("findings", [{"message": "x"}])]),
    ("probe: finding id with spaces", PROBE_OK,
     [("findings", [{"id": "STARTTLS injection", "message": "x"}])]),
    ("tls: unknown version", PROBE_OK, [("tls.version", "TLSv1.4")]),
    ("tls: version spelled differently", PROBE_OK, [("tls.version", "TLS1.3")]),
    ("tls: cipher id without 0x", PROBE_OK, [("tls.cipher.id", "1302")]),
    ("tls: cipher id uppercase", PROBE_OK, [("tls.cipher.id", "0xC030")]),
    ("tls: cipher id as integer", PROBE_OK, [("tls.cipher.id", 4866)]),
    ("tls: empty chain", PROBE_OK, [("tls.chain", [])]),
    ("tls: uppercase sha256", PROBE_OK,
     [("tls.chain.0.sha256", "9F91161F43433E49A6DE6DB680D79F60159F2E4AC9172621A12846428158440B")]),
    ("tls: colon-separated spki_sha256", PROBE_OK,
     [("tls.chain.0.spki_sha256", ":".join(["0d"] * 32))]),
    ("tls: short sha256", PROBE_OK, [("tls.chain.1.sha256", "6959097001d10501")]),
    ("tls: serial with colons", PROBE_OK, [("tls.chain.0.serial", "4a:1c:0e")]),
    ("tls: cert missing not_after", PROBE_OK, [("tls.chain.0.not_after", DELETE)]),
    ("tls: cert bad not_before", PROBE_OK, [("tls.chain.0.not_before", "Oct  1 00:00:00 2026 GMT")]),
    ("tls: key bits as string", PROBE_OK, [("tls.chain.0.key.bits", "256")]),
    ("tls: trusted with reasons", PROBE_OK, [("tls.trust.reasons", ["expired"])]),
    ("tls: untrusted without result_type", PROBE_OK,
     [("tls.trust.trusted", False), ("tls.trust.reasons", ["untrusted-issuer"])]),
    ("tls: untrusted without reasons", PROBE_OK,
     [("tls.trust.trusted", False), ("tls.trust.result_type", "certificate-not-trusted")]),
    ("tls: result_type not RFC 8460", PROBE_OK,
     [("tls.trust.trusted", False), ("tls.trust.result_type", "untrusted"),
      ("tls.trust.reasons", ["untrusted-issuer"])]),
    ("tls: unknown trust reason", PROBE_OK,
     [("tls.trust.trusted", False), ("tls.trust.result_type", "certificate-not-trusted"),
      ("tls.trust.reasons", ["self-signed"])]),
    ("tls: names.mx_hostname null", PROBE_OK, [("tls.names.mx_hostname", None)]),
    ("tls: expired missing", PROBE_OK, [("tls.expired", DELETE)]),
    ("domain: missing dns", DOMAIN, [("dns", DELETE)]),
    ("domain: missing hosts", DOMAIN, [("hosts", DELETE)]),
    ("domain: missing duration_ms", DOMAIN, [("duration_ms", DELETE)]),
    ("domain: unknown status", DOMAIN, [("status", "servfail")]),
    ("domain: host status used as domain status", DOMAIN, [("status", "success")]),
    ("domain: bad scanned_at", DOMAIN, [("scanned_at", "yesterday")]),
    ("domain: dns.error bare string", DOMAIN, [("dns.error", "SERVFAIL")]),
    ("domain: dns-error without dns.error", DOMAIN, [("status", "dns-error"), ("hosts", [])]),
    ("domain: mx preference negative", DOMAIN, [("dns.mx.0.preference", -1)]),
    ("domain: mx address not an address", DOMAIN, [("dns.mx.0.addresses", ["mx1"])]),
    ("domain: dnssec missing", DOMAIN, [("dns.dnssec", DELETE)]),
    ("domain: host missing mx", DOMAIN, [("hosts.0.mx", DELETE)]),
    ("domain: host bad status", DOMAIN, [("hosts.1.status", "unreachable")]),
    ("domain: host shared not boolean", DOMAIN, [("hosts.2.shared", "yes")]),
    ("domain: host uppercase fingerprint", DOMAIN,
     [("hosts.0.tls.chain.0.sha256", "E8698520E62D80D9677C6B2471A6FA2BA43E6AD6EEE5269AB6F77966CF82B2C7")]),
    ("policy: level missing pass", DOMAIN, [("policy.verify.pass", DELETE)]),
    ("policy: level missing", DOMAIN, [("policy.dane", DELETE)]),
    ("policy: result_type not RFC 8460", DOMAIN, [("policy.encrypt.result_type", "no-starttls")]),
    ("policy: failing not a list", DOMAIN, [("policy.encrypt.failing", "mx2.example.net")]),
    ("policy: recommended missing", DOMAIN, [("policy.recommended", DELETE)]),
    ("null-mx: with hosts", NULL_MX, [("hosts", load(DOMAIN)["hosts"][:1])]),
    ("null-mx: null_mx false", NULL_MX, [("dns.null_mx", False)]),
    ("summary: wrong schema tag", SUMMARY, [("schema", "starttls-scan-summary/0")]),
    # Every object is closed: a field the schema does not describe is an
    # undocumented field, whatever object it is in.
    ("closed: extra top-level field in a probe", PROBE_OK, [("x_future_field", {"tlsa": []})]),
    ("closed: extra field in a cert", PROBE_OK, [("tls.chain.0.ocsp", None)]),
    ("closed: extra field in tls", PROBE_OK, [("tls.alpn", "smtp")]),
    ("closed: extra field in cipher", PROBE_OK, [("tls.cipher.bits", 256)]),
    ("closed: extra field in an error", PROBE_REFUSED, [("error.errno", 111)]),
    ("closed: extra field in timing_ms", PROBE_OK, [("timing_ms.dns", 3)]),
    ("closed: extra field in a domain record", DOMAIN, [("tags", [])]),
    ("closed: extra field in dns", DOMAIN, [("dns.ttl", 300)]),
    ("closed: extra field in an MX entry", DOMAIN, [("dns.mx.0.ttl", 300)]),
    ("closed: extra field in a host of a domain", DOMAIN, [("hosts.0.rtt", 3)]),
    ("closed: probe-only schema in a domain's host", DOMAIN, [("hosts.0.schema", "starttls-scan/1")]),
    ("closed: extra field in a policy level", DOMAIN, [("policy.may.why", "x")]),
    ("closed: extra field in policy", DOMAIN, [("policy.strictest", "may")]),
    ("closed: extra field in the summary", SUMMARY, [("version", "0.1.0")]),
    ("closed: extra field in summary.probes", SUMMARY, [("probes.failed", 0)]),
    ("cert: subject_cn missing", PROBE_OK, [("tls.chain.0.subject_cn", DELETE)]),
    ("cert: self_issued not boolean", PROBE_OK, [("tls.chain.1.self_issued", "no")]),
    ("policy: level missing note", DOMAIN, [("policy.may.note", DELETE)]),
    ("policy: unreachable missing", DOMAIN, [("policy.unreachable", DELETE)]),
]

# Mutations that the contract ALLOWS; the schema must keep accepting them.
POSITIVES = [
    ("probe: fractional seconds in date", PROBE_OK, [("scanned_at", "2026-11-30T04:23:02.123Z")]),
    ("cert: no commonName", PROBE_OK, [("tls.chain.0.subject_cn", None)]),
    ("probe: HELO fallback", PROBE_NOTLS,
     [("ehlo", {"command": "HELO", "reply": "250 mail.example.org", "extensions": []}),
      ("starttls", None)]),
    ("probe: untrusted expired", PROBE_OK,
     [("tls.trust.trusted", False), ("tls.trust.result_type", "certificate-expired"),
      ("tls.trust.reasons", ["expired", "untrusted-issuer"]), ("tls.expired", True)]),
    ("probe: starttls-injection finding", PROBE_OK,
     [("findings", [{"id": "starttls-injection", "message": "12 bytes after the 220 reply"}])]),
    ("probe: skipped with nothing", PROBE_REFUSED, [("status", "skipped"), ("error", None)]),
    ("domain: without policy", DOMAIN, [("policy", DELETE)]),
    ("domain: nxdomain", NULL_MX,
     [("status", "nxdomain"), ("dns.null_mx", False), ("dns.mx", []),
      ("dns.error", {"stage": "dns", "code": "NXDOMAIN", "message": "no such domain"})]),
]


def mutate(example, changes):
    record = copy.deepcopy(load(example))
    for path, value in changes:
        set_path(record, path, value)
    return record


def check_examples():
    files = sorted(glob.glob(os.path.join(EXAMPLES, "*.json")))
    report(len(files) >= 6, "docs/examples has the expected examples (%d files)" % len(files))
    for path in files:
        name = "example %s validates" % os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as f:
                stlstest.validate(json.load(f))
            report(True, name)
        except (AssertionError, ValueError) as e:
            report(False, name, str(e))


def check_mutations():
    for name, example, changes in NEGATIVES:
        record = mutate(example, changes)
        errs = stlstest.schema_errors(record)
        report(bool(errs), "rejects %s" % name, "" if errs else "schema accepted it")
    for name, example, changes in POSITIVES:
        record = mutate(example, changes)
        errs = stlstest.schema_errors(record)
        report(not errs, "accepts %s" % name, "\n".join(errs))
    # Explicit kinds must hold too: a host object inside a domain record
    # does not need schema/scanned_at, the probe line does.
    host = load(DOMAIN)["hosts"][0]
    report(not stlstest.schema_errors(host, "host"), "host kind accepts a domain's host entry")
    report(bool(stlstest.schema_errors(host, "probe")), "probe kind requires schema and scanned_at")


def check_negative_files():
    files = sorted(glob.glob(os.path.join(NEGATIVE, "*.json")))
    report(len(files) > 0, "tests/unit/schema/negative has files (%d)" % len(files))
    for path in files:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        errs = stlstest.schema_errors(record)
        report(bool(errs), "rejects negative/%s" % os.path.basename(path),
               "" if errs else "schema accepted it")


# Sections of docs/output.md whose "field" tables describe one schema object,
# keyed by heading. A "field" table under any other heading is an error, so a
# new table cannot escape the cross-check.
DOC_SECTIONS = {
    "Domain record": "domain",
    "`dns`": "dns",
    "Host object": "host",
    "Error object": "error",
    "`tls`": "tls",
    "`chain_quality`": "tls.chain_quality",
    "Cert": "cert",
    "`policy`": "policy",
    "Policy level": "policy_level",
    "`mta_sts`": "domain.mta_sts",
    "Run summary": "summary",
}

_CODE = re.compile(r"`([^`]+)`")
_OPTIONAL = re.compile(r"\*[^*]*(optional|only)[^*]*\*")


def doc_field_tables(text):
    """(heading, rows) for each Markdown table whose first header cell is
    "field"; a row is (names in its first cell, whole row text, last cell)."""
    heading, header, rows = None, None, []
    for line in text.split("\n") + [""]:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header, rows = cells, []
            elif not set(line) <= set("|-: "):
                rows.append((_CODE.findall(cells[0]), line, cells[-1]))
            continue
        if header is not None and header[0] == "field":
            yield heading, rows
        header = None


def resolve(schema, node):
    """Follow $ref, allOf, "object or null" and array items to an object node."""
    for _ in range(10):
        if not isinstance(node, dict) or "properties" in node:
            break
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in node:
            node = next((n for n in node["allOf"] if "$ref" in n), node["allOf"][0])
        elif "anyOf" in node:
            node = next(n for n in node["anyOf"] if n.get("type") != "null")
        elif "items" in node:
            node = node["items"]
        else:
            break
    return node


def refs_of(node):
    """The $defs names a property refers to, directly or through anyOf/items."""
    out = set()
    if isinstance(node, dict):
        if "$ref" in node:
            out.add(node["$ref"].rsplit("/", 1)[1])
        for key in ("anyOf", "oneOf"):
            for sub in node.get(key, []):
                out |= refs_of(sub)
        if "items" in node:
            out |= refs_of(node["items"])
    return out


def doc_path(base, name):
    """("tls", "chain_quality") + "trust.stores" / "mx[].host" -> a tuple path."""
    return tuple(base.split(".")) + tuple(name.replace("[]", "").split("."))


def schema_parent(schema, path):
    """(object node holding path[-1], path[-1]), or None when not in the schema."""
    node = schema["$defs"][path[0]]
    for p in path[1:-1]:
        node = resolve(schema, node).get("properties", {}).get(p)
        if node is None:
            return None
    node = resolve(schema, node)
    return (node, path[-1]) if path[-1] in node.get("properties", {}) else None


def schema_fields(schema, path, node, out, bases):
    """Every property path below path, not entering other definitions."""
    node = resolve(schema, node)
    for name, sub in node.get("properties", {}).items():
        sub_path = path + (name,)
        out.append(sub_path)
        # A definition used by reference ($defs/tls, $defs/error) is checked
        # where it is defined, not at every use.
        if sub_path in bases or refs_of(sub):
            continue
        schema_fields(schema, sub_path, sub, out, bases)
    return out


def check_docs():
    """docs/output.md and the schema describe the same fields: every field a
    table names exists in the schema, every schema property is documented
    (in a table row, or named in its parent's row), and a field is marked
    optional exactly when the schema does not require it."""
    schema = stlstest.load_schema()
    with open(os.path.join(REPO, "docs", "output.md"), encoding="utf-8") as f:
        text = f.read()
    documented = {}  # tuple path -> the meaning cell of its row
    bad_heading, not_in_schema, optional_wrong = [], [], []
    for heading, rows in doc_field_tables(text):
        base = DOC_SECTIONS.get(heading)
        if base is None:
            bad_heading.append(heading)
            continue
        for names, line, meaning in rows:
            for name in names:
                path = doc_path(base, name)
                found = schema_parent(schema, path)
                if found is None:
                    not_in_schema.append("%s: `%s`" % (heading, name))
                    continue
                documented[path] = meaning
                parent, prop = found
                optional = bool(_OPTIONAL.search(line))
                required = prop in parent.get("required", [])
                if optional == required:
                    optional_wrong.append(
                        "%s: `%s` is %s in the schema but %s in output.md"
                        % (heading, name, "required" if required else "optional",
                           "marked optional" if optional else "not marked optional"))
    report(not bad_heading, "output.md: every field table is under a known heading",
           "unknown: " + ", ".join(bad_heading))
    report(not not_in_schema, "output.md: every documented field is in the schema",
           "\n".join(not_in_schema))
    report(not optional_wrong,
           "output.md: *optional* exactly where the schema does not require",
           "\n".join(optional_wrong))

    bases = {tuple(b.split(".")) for b in DOC_SECTIONS.values()}
    undocumented = []
    for base in sorted(bases):
        node = schema["$defs"][base[0]]
        for p in base[1:]:
            node = resolve(schema, node)["properties"][p]
        for path in schema_fields(schema, base, node, [], bases):
            if path in documented:
                continue
            # An object is documented by rows for its members ("key.type").
            if any(d[:len(path)] == path for d in documented):
                continue
            # A member may be named in the row of its nearest documented
            # ancestor ("`ehlo_tls` ... `reply`, `extensions`").
            anc = path[:-1]
            while len(anc) > 1 and anc not in documented:
                anc = anc[:-1]
            if anc in documented and ("`%s`" % path[-1]) in documented[anc]:
                continue
            undocumented.append(".".join(path))
    report(not undocumented, "output.md documents every schema field",
           "undocumented: " + ", ".join(undocumented))


def postfix_model(path, start, end, strip):
    """The words between two markers of a file, without markup."""
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        text = f.read()
    if start not in text:
        return None
    text = text.split(start, 1)[1].split(end, 1)[0]
    text = re.sub(strip, " ", text).replace("`", "").replace('"', "")
    return " ".join(text.split())


def check_postfix_model():
    """README.md, docs/output.md and policy.c describe the Postfix model
    the verdicts follow in the same words, so they cannot disagree again."""
    readme = postfix_model("README.md", "<!-- postfix-model", "<!-- /postfix-model -->",
                           r"^[^\n]*-->|\n\s*")
    doc = postfix_model("docs/output.md", "<!-- postfix-model", "<!-- /postfix-model -->",
                        r"^[^\n]*-->|\n\s*")
    code = postfix_model("scanner/policy.c", " * Model (", " */", r"^[^\n]*\n \*\s*|\n \*\s*")
    report(readme is not None and readme == doc == code,
           "README.md, docs/output.md and policy.c describe the same Postfix model",
           "README:   %s\noutput.md: %s\npolicy.c: %s" % (readme, doc, code))


def fake_bin(tmp, name, script):
    """Write an executable shell script standing in for the scanner."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def expect_raise(name, fn, needle):
    try:
        fn()
    except AssertionError as e:
        ok = needle in str(e)
        report(ok, name, "" if ok else "message lacks %r: %s" % (needle, e))
        return
    report(False, name, "no AssertionError raised")


def check_library():
    one_line = json.dumps(load(PROBE_OK))
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "good.json")
        with open(good, "w") as f:
            f.write(one_line + "\n")
        # The fake checks its first argument so run_probe must pass "probe".
        ok_bin = fake_bin(tmp, "ok", '[ "$1" = probe ] || exit 9\ncat "%s"\n' % good)
        try:
            rec = stlstest.run_probe(ok_bin, ["mx1.example.com", "--ip", "192.0.2.1"])
            report(stlstest.get(rec, "tls.chain.0.key.bits") == 256, "run_probe returns the record")
        except AssertionError as e:
            report(False, "run_probe returns the record", str(e))

        bad_rc = fake_bin(tmp, "rc", 'cat "%s"\necho "oops: bad thing" >&2\nexit 1\n' % good)
        expect_raise("run_probe fails on exit 1 and shows stderr",
                     lambda: stlstest.run_probe(bad_rc, []), "oops: bad thing")
        two = fake_bin(tmp, "two", 'cat "%s" "%s"\n' % (good, good))
        expect_raise("run_probe fails on two lines", lambda: stlstest.run_probe(two, []), "exactly one")
        junk = fake_bin(tmp, "junk", 'echo "{not json"\n')
        expect_raise("run_probe fails on invalid JSON", lambda: stlstest.run_probe(junk, []), "not valid JSON")
        invalid = fake_bin(tmp, "invalid", "echo '{\"schema\": \"starttls-scan/1\"}'\n")
        expect_raise("run_probe fails on a schema violation",
                     lambda: stlstest.run_probe(invalid, []), "'status' is a required property")
        slow = fake_bin(tmp, "slow", "exec sleep 5\n")
        expect_raise("run_probe enforces its timeout",
                     lambda: stlstest.run_probe(slow, [], timeout=0.5), "timed out")

        nd = os.path.join(tmp, "out.ndjson")
        with open(nd, "w") as f:
            for ex in (DOMAIN, NULL_MX, SUMMARY):
                f.write(json.dumps(load(ex)) + "\n")
        try:
            recs = stlstest.validate_ndjson_file(nd)
            report(len(recs) == 3, "validate_ndjson_file accepts valid NDJSON")
        except AssertionError as e:
            report(False, "validate_ndjson_file accepts valid NDJSON", str(e))
        with open(nd, "a") as f:
            f.write(json.dumps(mutate(DOMAIN, [("status", "weird")])) + "\n")
        expect_raise("validate_ndjson_file names the bad line",
                     lambda: stlstest.validate_ndjson_file(nd), "out.ndjson:4")

        lines = fake_bin(tmp, "lines", 'cat "%s"\n' % nd)
        expect_raise("run_json_lines rejects a bad record",
                     lambda: stlstest.run_json_lines([lines], 10), "stdout line 4")
        expect_raise("run_json_lines checks the exit code",
                     lambda: stlstest.run_json_lines([bad_rc], 10), "exit code 1")

        validate_py = os.path.join(REPO, "tests", "lib", "validate.py")
        p = subprocess.run([sys.executable, validate_py, good, nd],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        report(p.returncode == 1 and "1 invalid" in p.stdout,
               "validate.py exits 1 and counts the invalid line", p.stdout)
        p = subprocess.run([sys.executable, validate_py, good],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        report(p.returncode == 0, "validate.py exits 0 on valid input", p.stdout)

    rec = load(DOMAIN_UNREACH)
    report(stlstest.get(rec, "hosts.1.error.code") == "ENETUNREACH", "get follows list indexes")
    report(stlstest.get(rec, "hosts.9.mx", None) is None, "get returns the default when missing")
    expect_raise("get without default names the missing part",
                 lambda: stlstest.get(rec, "dns.mx.0.nope"), "'nope'")


def main():
    try:
        stlstest.load_schema()
        report(True, "schema is a valid draft 2020-12 schema")
    except Exception as e:  # a broken schema file must fail loudly, not crash
        report(False, "schema is a valid draft 2020-12 schema", repr(e))
        print("%d passed, %d failed" % (passed, failed))
        return 1
    check_examples()
    check_mutations()
    check_negative_files()
    check_docs()
    check_postfix_model()
    check_library()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
