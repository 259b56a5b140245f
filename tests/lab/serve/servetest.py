"""Helpers for the service tests: start `starttls-scan serve`, talk HTTP to
it, check answers against docs/openapi.yaml and make test records."""

import copy
import http.client
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

import yaml
from jsonschema import Draft202012Validator, RefResolver

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, "..", "..", "lib"))
import stlstest  # noqa: E402

REPO = stlstest.REPO_ROOT
OPENAPI = os.path.join(REPO, "docs", "openapi.yaml")
EVENT_SCHEMA = os.path.join(REPO, "docs", "feed-event.schema.json")


class Server:
    """One `serve` process on an ephemeral loopback port."""

    def __init__(self, bin, db, *args, wait_ready=True):
        self.log = tempfile.NamedTemporaryFile(prefix="serve-log-", delete=False)
        self.cmd = [bin, "serve", "--db", db, "--listen", "127.0.0.1:0"] + list(args)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        self.port = None
        if wait_ready:
            self.port = self._wait_port()

    def _wait_port(self, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            with open(self.log.name, encoding="utf-8", errors="replace") as f:
                m = re.search(r"\(port (\d+)\)", f.read())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError("serve exited %s: %s" % (self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        raise AssertionError("serve did not start: %s" % self.stderr())

    def stderr(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers dict with lower-case names, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, want=200, timeout=30):
        st, hd, data = self.request(method, path, body, headers, timeout)
        if st != want:
            raise AssertionError("%s %s: status %d, want %d: %s" % (method, path, st, want, data[:500]))
        return json.loads(data)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("serve did not stop within %ds after signal %d" % (timeout, sig))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


class OpenAPI:
    """Validates answers against the response schemas of docs/openapi.yaml.

    With python3-jsonschema (draft 2020-12 is the schema dialect of OpenAPI
    3.1), not openapi-core: Debian 12 has no python3-openapi-core, and
    Debian 13's 0.19.4 (with openapi-spec-validator 0.7.1) cannot be
    installed on Debian 12 without libc6 2.41 and Python 3.13 (checked with
    `apt-get -s install -t trixie python3-openapi-core`). The document
    itself is checked by spec_problems() below."""

    def __init__(self):
        with open(OPENAPI, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        assert self.doc["openapi"].startswith("3.1"), "openapi.yaml is not OpenAPI 3.1"
        self.resolver = RefResolver.from_schema(self.doc)
        with open(EVENT_SCHEMA, encoding="utf-8") as f:
            self.event_schema = json.load(f)
        Draft202012Validator.check_schema(self.event_schema)

    def spec_problems(self, doc=None):
        """What makes the document not a usable OpenAPI 3.1 description
        (a subset of openapi-spec-validator's checks): the version, every
        $ref resolving, every schema a valid draft 2020-12 schema, path
        parameters declared, every operation with responses whose keys are
        status codes and whose content has a schema. [] when none."""
        doc = self.doc if doc is None else doc
        resolver = RefResolver.from_schema(doc)
        probs = []
        if not str(doc.get("openapi", "")).startswith("3.1."):
            probs.append("openapi is not 3.1.x")
        if not isinstance(doc.get("info"), dict) or not {"title", "version"} <= set(doc["info"]):
            probs.append("info lacks title or version")

        def walk(node, where):
            if isinstance(node, dict):
                if "$ref" in node:
                    try:
                        resolver.resolve(node["$ref"])
                    except Exception as e:  # noqa: BLE001 - any failure is the finding
                        probs.append("%s: $ref %s does not resolve (%s)" % (where, node["$ref"], e))
                for k, v in node.items():
                    walk(v, where + "/" + str(k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, "%s/%d" % (where, i))
        walk(doc, "#")
        for name, schema in doc.get("components", {}).get("schemas", {}).items():
            try:
                Draft202012Validator.check_schema(schema)
            except Exception as e:  # noqa: BLE001
                probs.append("schema %s: %s" % (name, str(e).splitlines()[0]))
        methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
        for tmpl, item in doc.get("paths", {}).items():
            if not tmpl.startswith("/"):
                probs.append("path %s does not start with /" % tmpl)
            params = set(re.findall(r"\{([^}]+)\}", tmpl))
            declared = {p.get("name") for p in item.get("parameters", []) if p.get("in") == "path"}
            for m, op in item.items():
                if m not in methods:
                    continue
                mine = declared | {p.get("name") for p in op.get("parameters", [])
                                   if p.get("in") == "path"}
                if params - mine:
                    probs.append("%s %s: path parameters %s not declared"
                                 % (m, tmpl, sorted(params - mine)))
                resps = op.get("responses")
                if not isinstance(resps, dict) or not resps:
                    probs.append("%s %s: no responses" % (m, tmpl))
                    continue
                for code, r in resps.items():
                    if not re.fullmatch(r"[1-5][0-9X]{2}|default", str(code)):
                        probs.append("%s %s: response key %r" % (m, tmpl, code))
                    try:
                        while isinstance(r, dict) and "$ref" in r:
                            _, r = resolver.resolve(r["$ref"])
                    except Exception:  # noqa: BLE001 - reported by walk()
                        continue
                    if "description" not in r:
                        probs.append("%s %s %s: no description" % (m, tmpl, code))
                    for ct, media in r.get("content", {}).items():
                        if "schema" not in media:
                            probs.append("%s %s %s %s: no schema" % (m, tmpl, code, ct))
        return probs

    def _operation(self, method, path):
        for tmpl, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", tmpl) + "$"
            if re.match(rx, path.split("?")[0]) and method.lower() in item:
                return item[method.lower()]
        raise AssertionError("openapi.yaml has no %s %s" % (method, path))

    def _deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            _, obj = self.resolver.resolve(obj["$ref"])
        return obj

    def check(self, method, path, status, headers, body):
        """Assert that the answer is one the document describes."""
        op = self._operation(method, path)
        resp = op["responses"].get(str(status))
        if resp is None:
            raise AssertionError("openapi.yaml: %s %s has no response %d" % (method, path, status))
        resp = self._deref(resp)
        ctype = headers.get("content-type", "").split(";")[0].strip()
        content = resp.get("content", {})
        if ctype not in content:
            raise AssertionError("%s %s %d: content type %r not in openapi.yaml (%s)"
                                 % (method, path, status, ctype, list(content)))
        schema = content[ctype]["schema"]
        v = Draft202012Validator(schema, resolver=self.resolver,
                                 format_checker=stlstest._format_checker())
        if ctype == "application/x-ndjson":
            docs = [json.loads(line) for line in body.decode().splitlines() if line]
        elif ctype == "application/json":
            docs = [json.loads(body)]
        else:
            docs = [body.decode()]
        for d in docs:
            errs = sorted(v.iter_errors(d), key=lambda e: list(e.path))
            if errs:
                raise AssertionError("%s %s %d: does not match openapi.yaml: %s\n%s"
                                     % (method, path, status, errs[0].message,
                                        json.dumps(d)[:800]))
        return docs


def load_example():
    """A domain record with two MX hosts (record.json, next to this file):
    TLS 1.2 with an untrusted chain, an unreachable IPv6 address and a
    refused STARTTLS; the tests vary its facts."""
    with open(os.path.join(_HERE, "record.json"), encoding="utf-8") as f:
        return json.load(f)


def record(domain="example.net", at="2026-12-01T00:00:00Z", recommended="may",
           starttls=True, version="TLSv1.2", sha="e8" * 32, trusted=False,
           not_after="2027-01-01T00:00:00Z"):
    """A valid domain record (record.json) with the facts
    the change events compare set as given, on its first host."""
    r = copy.deepcopy(load_example())
    r["domain"] = domain
    r["scanned_at"] = at
    r["policy"]["recommended"] = recommended
    h = r["hosts"][0]
    h["mx"] = "mx1." + domain
    if not starttls:
        h.update({"status": "starttls-not-supported", "tls": None, "ehlo_tls": None,
                  "starttls": {"offered": False, "reply": None}, "error": None})
        h["ehlo"]["extensions"] = ["8BITMIME"]
    else:
        t = h["tls"]
        t["version"] = version
        t["chain"][0]["sha256"] = sha
        t["chain"][0]["not_after"] = not_after
        t["trust"] = ({"trusted": True, "result_type": None, "reasons": []} if trusted
                      else {"trusted": False, "result_type": "certificate-not-trusted",
                            "reasons": ["untrusted-issuer"]})
    # Fill what the published schema requires of a verdict and the example
    # may predate, so the records stay valid as the schema grows.
    level = stlstest.load_schema()["$defs"].get("policy_level", {})
    defaults = {"tested": True, "failing": [], "all_hosts": True, "applies": True, "note": ""}
    for v in r["policy"].values():
        if isinstance(v, dict):
            for k in level.get("required", []):
                if k not in v and k in defaults:
                    v[k] = copy.deepcopy(defaults[k])
    for other in r["hosts"][1:]:
        other["mx"] = "mx%s.%s" % ("1" if other["ip"].startswith("2001") else "2", domain)
    return r


def ndjson(*records):
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


def raw_socket(port, data=b"", timeout=5):
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if data:
        s.sendall(data)
    return s


def read_until_close(s, timeout=10):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out


def closed_soon(s, timeout=2):
    """True when the peer closes s within timeout (reads EOF or reset)."""
    r, _, _ = select.select([s], [], [], timeout)
    if not r:
        return False
    try:
        return s.recv(1) == b""
    except OSError:
        return True
