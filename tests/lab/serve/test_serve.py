#!/usr/bin/python3
"""The service over real HTTP on loopback: every endpoint that needs no
scan, every error code, answers checked against docs/openapi.yaml, the
feed's event types (made by ingesting records), /metrics through the
Prometheus parser, the status page in headless Chromium, hostile clients,
a kill -9 and restart, and a graceful stop.

Usage: test_serve.py --bin PATH/starttls-scan
"""

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest as st  # noqa: E402
from servetest import record, ndjson  # noqa: E402

import stlstest  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--promtool", default="", help="promtool for `check metrics`")
    args = ap.parse_args()
    res = stlstest.Results()
    api = st.OpenAPI()
    tmp = tempfile.mkdtemp(prefix="serve-test-")
    servers = []

    def server(*a, db="main.db", **kw):
        s = st.Server(args.bin, os.path.join(tmp, db), *a, **kw)
        servers.append(s)
        return s

    def call(s, method, path, body=None, headers=None, want=None):
        """One request, checked against openapi.yaml (and want)."""
        status, hd, data = s.request(method, path, body, headers)
        if want is not None and status != want:
            raise AssertionError("%s %s: %d, want %d: %s" % (method, path, status, want, data[:300]))
        docs = api.check(method, path, status, hd, data)
        return status, hd, data, docs

    try:
        s = server("--read-timeout", "1", "--max-body", "65536", "--post-rate", "1000")

        def health():
            _, _, _, (h,) = call(s, "GET", "/v1/health", want=200)
            assert h["status"] == "ok" and h["domains"] == 0, h
        res.check("GET /v1/health", health)

        def spec():
            assert api.spec_problems() == [], api.spec_problems()
            # The check finds what it is meant to find.
            bad = copy.deepcopy(api.doc)
            bad["paths"]["/v1/scans/{id}"].pop("parameters")
            bad["paths"]["/v1/health"]["get"]["responses"]["200"]["content"][
                "application/json"]["schema"] = {"$ref": "#/components/schemas/Nope"}
            bad["components"]["schemas"]["Health"]["type"] = "objekt"
            found = "\n".join(api.spec_problems(bad))
            for want in ("Nope does not resolve", "schema Health:",
                         "get /v1/scans/{id}: path parameters ['id'] not declared"):
                assert want in found, (want, found)
        res.check("openapi.yaml is a well-formed OpenAPI 3.1 document", spec)

        def not_found_domain():
            _, _, _, (e,) = call(s, "GET", "/v1/domains/never.example", want=404)
            assert e["error"]["code"] == "not_found", e
        res.check("GET /v1/domains/{d} never scanned: 404", not_found_domain)

        def bad_domain():
            _, _, _, (e,) = call(s, "GET", "/v1/domains/not..a..domain", want=400)
            assert e["error"]["code"] == "bad_domain", e
        res.check("GET /v1/domains/{bad}: 400", bad_domain)

        def method_not_allowed():
            status, hd, data = s.request("PUT", "/v1/feed")
            assert status == 405 and "GET" in hd.get("allow", ""), (status, hd)
            assert json.loads(data)["error"]["code"] == "method_not_allowed"
            status, _, data = s.request("GET", "/v1/nothing-here")
            assert status == 404 and json.loads(data)["error"]["code"] == "not_found"
        res.check("405 with Allow, 404 for an unknown path", method_not_allowed)

        # --- ingest and the feed: one sequence of records per event type ---
        seq = [
            record(at="2026-11-01T00:00:00Z"),                                  # first-seen
            record(at="2026-11-02T00:00:00Z", starttls=False),                  # starttls-lost
            record(at="2026-11-03T00:00:00Z"),                                  # starttls-gained
            record(at="2026-11-04T00:00:00Z", version="TLSv1.3"),               # tls-version-changed
            record(at="2026-11-05T00:00:00Z", version="TLSv1.3", sha="ab" * 32),  # certificate-changed
            record(at="2026-11-06T00:00:00Z", version="TLSv1.3", sha="ab" * 32,
                   trusted=True),                                               # trust-changed
            record(at="2026-11-07T00:00:00Z", version="TLSv1.3", sha="ab" * 32,
                   trusted=True, recommended="verify"),                         # recommended-changed
            record(at="2026-11-08T00:00:00Z", version="TLSv1.3", sha="cd" * 32,
                   trusted=True, recommended="verify",
                   not_after="2026-11-15T00:00:00Z"),                          # certificate-changed + expiring
            record(at="2026-11-09T00:00:00Z", version="TLSv1.3", sha="cd" * 32,
                   trusted=True, recommended="verify",
                   not_after="2026-11-15T00:00:00Z"),                          # nothing (expiring said once)
        ]
        for r in seq:
            stlstest.validate(r)
        body = ndjson(*seq[:3]) + "this is not json\n" + ndjson(*seq[3:]) + \
            json.dumps({"schema": "starttls-scan/1", "domain": "x.example"}) + "\n"

        def ingest():
            _, _, _, (r,) = call(s, "POST", "/v1/ingest", body,
                                 {"Content-Type": "application/x-ndjson"}, want=200)
            assert r["accepted"] == len(seq), r
            assert r["rejected"] == 2, r
            assert [x["line"] for x in r["rejected_lines"]] == [4, len(seq) + 2], r
        res.check("POST /v1/ingest: accepted, rejected with line numbers", ingest)

        events = []

        def feed_types():
            _, _, data, evs = call(s, "GET", "/v1/feed", want=200)
            events.extend(evs)
            types = [e["type"] for e in evs]
            want = ["first-seen", "starttls-lost", "starttls-gained", "tls-version-changed",
                    "certificate-changed", "trust-changed", "recommended-changed",
                    "certificate-changed", "certificate-expiring"]
            assert types == want, types
            ev_validator = st.Draft202012Validator(api.event_schema,
                                                   format_checker=stlstest._format_checker())
            for e in evs:
                errs = list(ev_validator.iter_errors(e))
                assert not errs, (errs[0].message, e)
                assert e["domain"] == "example.net"
            cursors = [int(e["cursor"]) for e in evs]
            assert cursors == sorted(set(cursors)), cursors
            lost = evs[1]
            assert lost["ip"] == "192.0.2.35" and lost["before"] is True and lost["after"] is False, lost
            assert evs[3]["before"] == ["TLSv1.2"] and evs[3]["after"] == ["TLSv1.3"], evs[3]
            assert evs[6]["before"] == "may" and evs[6]["after"] == "verify", evs[6]
            assert evs[8]["after"]["not_after"] == "2026-11-15T00:00:00Z", evs[8]
        res.check("GET /v1/feed: one event of every type, in order, valid", feed_types)

        def feed_paging():
            assert events, "no events"
            c0 = events[2]["cursor"]
            _, _, _, evs = call(s, "GET", "/v1/feed?since=%s&limit=2" % c0, want=200)
            assert [e["cursor"] for e in evs] == [events[3]["cursor"], events[4]["cursor"]], evs
            _, _, data, evs = call(s, "GET", "/v1/feed?since=%s" % events[-1]["cursor"], want=200)
            assert evs == [] and data == b"", data
            for bad in ("since=abc", "limit=0", "limit=5000", "wait=61", "wait=-1"):
                status, _, _, (e,) = call(s, "GET", "/v1/feed?" + bad, want=400)
                assert e["error"]["code"] == "bad_request"
        res.check("feed: since/limit paging, 400 on bad parameters", feed_paging)

        def long_poll():
            last = events[-1]["cursor"]
            got = {}

            def poll():
                t = time.time()
                got["r"] = s.request("GET", "/v1/feed?wait=20&since=" + last)
                got["t"] = time.time() - t
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(0.5)
            assert th.is_alive(), "the long poll answered before any event"
            call(s, "POST", "/v1/ingest", ndjson(record(domain="other.example")), want=200)
            th.join(10)
            assert not th.is_alive(), "the long poll did not wake up"
            status, hd, data = got["r"]
            api.check("GET", "/v1/feed", status, hd, data)
            evs = [json.loads(x) for x in data.decode().splitlines()]
            assert status == 200 and evs and evs[0]["domain"] == "other.example", data
            assert got["t"] < 5, got["t"]
            # With nothing new, wait=1 answers empty after about a second.
            t = time.time()
            status, _, data = s.request("GET", "/v1/feed?wait=1&since=" + evs[-1]["cursor"])
            assert status == 200 and data == b"" and 0.8 < time.time() - t < 5, (status, data)
        res.check("feed: wait long-polls and wakes on a new event", long_poll)

        def latest_and_history():
            _, _, _, (r,) = call(s, "GET", "/v1/domains/example.net", want=200)
            stlstest.validate(r)
            assert r["scanned_at"] == seq[-1]["scanned_at"], r["scanned_at"]
            # Names are normalised: upper case and a trailing dot find it.
            _, _, _, (r2,) = call(s, "GET", "/v1/domains/EXAMPLE.net.", want=200)
            assert r2 == r
            _, _, _, (h,) = call(s, "GET", "/v1/domains/example.net/history?limit=3", want=200)
            assert [x["scanned_at"] for x in h["records"]] == \
                [x["scanned_at"] for x in reversed(seq[-4:-1])], h["records"]
            for x in h["records"]:
                stlstest.validate(x)
            call(s, "GET", "/v1/domains/never.example/history", want=404)
        res.check("GET /v1/domains/{d} latest, /history newest first", latest_and_history)

        def older_record():
            # An older record goes to history and makes no event.
            before = s.json("GET", "/v1/stats")["last_cursor"]
            call(s, "POST", "/v1/ingest", ndjson(record(at="2026-10-01T00:00:00Z",
                                                        starttls=False)), want=200)
            assert s.json("GET", "/v1/stats")["last_cursor"] == before
            r = s.json("GET", "/v1/domains/example.net")
            assert r["scanned_at"] == seq[-1]["scanned_at"]
        res.check("an older ingested record changes neither latest nor feed", older_record)

        def ingest_strict_lines():
            # cJSON alone takes all of these; stored, they would be served
            # byte for byte as JSON that no strict parser reads. A server of
            # its own, so that the totals checked below stay as they are.
            s3 = server(db="strict.db")
            good = json.dumps(record(domain="strict.example"))
            assert good.endswith("}")
            cut = good.index('"ok"') + 2          # inside a string value
            bad = [
                good[:cut] + "\x01" + good[cut:],                 # control byte in a string
                good[:cut] + "\x00" + good[cut:],                 # NUL in a string
                good[:cut] + "\\u0000" + good[cut:],             # \u0000 escape
                good + " x",                                      # bytes after the value
                good + "{}",                                      # a second value
            ]
            body = "\n".join(bad).encode() + b"\n" + \
                good[:cut].encode() + b"\xe6\xff" + good[cut:].encode() + b"\n" + \
                good[:cut].encode() + b"\xed\xa0\x80" + good[cut:].encode() + b"\n" + \
                good.encode() + b"\n"
            _, _, _, (r,) = call(s3, "POST", "/v1/ingest", body,
                                 {"Content-Type": "application/x-ndjson"}, want=200)
            assert r["accepted"] == 1 and r["rejected"] == 7, r
            assert [x["line"] for x in r["rejected_lines"]] == list(range(1, 8)), r
            reasons = [x["reason"] for x in r["rejected_lines"]]
            assert reasons[0] == reasons[1] == "a control byte (JSON allows none here)", reasons
            assert "u0000" in reasons[2], reasons
            assert reasons[5] == reasons[6] == "not valid UTF-8", reasons
            assert "bytes after" in reasons[3] and "bytes after" in reasons[4], reasons
            status, _, data = s3.request("GET", "/v1/domains/strict.example")
            assert status == 200, status
            rec = json.loads(data.decode("utf-8", errors="strict"))  # strict=True: no controls
            assert rec["domain"] == "strict.example"
            stlstest.validate(rec)
            s3.stop()
        res.check("ingest refuses lines that are not strict JSON (controls, bad UTF-8, "
                  "trailing bytes)", ingest_strict_lines)

        def stats_and_metrics():
            from prometheus_client.parser import text_string_to_metric_families
            status, hd, data = s.request("GET", "/metrics")
            assert status == 200 and hd["content-type"].startswith("text/plain; version=0.0.4"), hd
            api.check("GET", "/metrics", status, hd, data)
            fams = {f.name: f for f in text_string_to_metric_families(data.decode())}
            for name in ("starttls_scan_domains", "starttls_scan_probes",
                         "starttls_scan_tls_versions", "starttls_scan_trust_failures",
                         "starttls_scan_certificates_expiring", "starttls_scan_scans",
                         "starttls_scan_scan_duration_seconds",
                         "starttls_scan_http_requests", "starttls_scan_events"):
                assert name in fams, (name, sorted(fams))
            dom = {smp.labels["recommended"]: smp.value for smp in fams["starttls_scan_domains"].samples}
            stats = s.json("GET", "/v1/stats")
            api.check("GET", "/v1/stats", 200, {"content-type": "application/json"},
                      json.dumps(stats).encode())
            assert dom == {"verify": 1.0, "may": 1.0}, dom
            assert sum(dom.values()) == stats["domains"] == 2, (dom, stats)
            tls = {smp.labels["version"]: smp.value for smp in fams["starttls_scan_tls_versions"].samples}
            assert tls == {"TLSv1.3": 1.0, "TLSv1.2": 1.0}, tls
            codes = {smp.labels["code"]: smp.value for smp in fams["starttls_scan_http_requests"].samples}
            assert codes.get("404", 0) >= 2 and codes.get("405", 0) >= 1, codes
            ev = {smp.labels["type"]: smp.value for smp in fams["starttls_scan_events"].samples
                  if smp.name.endswith("_total")}
            assert ev["certificate-changed"] == 2 and ev["first-seen"] == 2, ev
            for f in fams.values():  # no label with a domain or an address
                for smp in f.samples:
                    for v in smp.labels.values():
                        assert "example" not in v and "192.0.2" not in v, smp
            # promtool (Debian 12's, taken out of the prometheus .deb by
            # scripts/install-deps.sh) parses and lints the page; it must
            # also refuse a page that breaks the conventions, or passing
            # it would prove nothing.
            assert args.promtool and os.access(args.promtool, os.X_OK), \
                "promtool is not installed (scripts/install-deps.sh)"

            def promtool(text):
                return subprocess.run([args.promtool, "check", "metrics"], input=text,
                                      capture_output=True, timeout=60)
            p = promtool(data)
            assert p.returncode == 0, p.stdout + p.stderr
            bad = data + b"# TYPE starttls_scan_unsuffixed counter\nstarttls_scan_unsuffixed 1\n"
            assert promtool(bad).returncode != 0, "promtool accepted a counter without _total"
            assert promtool(data + b'starttls_scan_broken{a="1" 1\n').returncode != 0
        res.check("/metrics parsed by prometheus_client and promtool, totals agree with /v1/stats",
                  stats_and_metrics)

        def page():
            status, hd, data = s.request("GET", "/")
            api.check("GET", "/", status, hd, data)
            html = data.decode()
            assert "http://" not in html and "https://" not in html, "page loads something remote"
            chrome = shutil.which("chromium")
            assert chrome, "chromium is not installed (scripts/install-deps.sh)"
            prof = tempfile.mkdtemp(prefix="chromium-")
            try:
                p = subprocess.run(
                    [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--user-data-dir=" + prof,
                     "--virtual-time-budget=5000", "--dump-dom",
                     "http://127.0.0.1:%d/" % s.port],
                    capture_output=True, timeout=90)
            finally:
                shutil.rmtree(prof, ignore_errors=True)
            dom = p.stdout.decode(errors="replace")
            assert p.returncode == 0 and 'id="domains-total"' in dom, p.stderr[-2000:]
            import re
            m = re.search(r'id="domains-total">(\d+)<', dom)
            assert m and int(m.group(1)) == s.json("GET", "/v1/health")["domains"], m
            # The script ran: the charts and the change list were drawn.
            assert "TLSv1.3" in dom and "recommended-changed" in dom, dom[-3000:]
        res.check("status page in headless Chromium shows the API's totals", page)

        def ingest_client():
            f = os.path.join(tmp, "shard.ndjson")
            recs = [record(domain="cli%d.example" % i) for i in range(5)]
            with open(f, "w") as fh:
                fh.write(ndjson(*recs[:2]) + "{broken\n" + ndjson(*recs[2:]))
            p = subprocess.run([args.bin, "ingest", "http://127.0.0.1:%d" % s.port, f,
                                "--batch", "8192"], capture_output=True, timeout=60)
            assert p.returncode == 1, (p.returncode, p.stderr)
            assert p.stdout.decode() == "%s:3: rejected: not valid JSON\n" % f, p.stdout
            assert b"5 accepted, 1 rejected" in p.stderr, p.stderr
            for i in range(5):
                s.json("GET", "/v1/domains/cli%d.example" % i)
            p = subprocess.run([args.bin, "ingest", "http://127.0.0.1:%d" % s.port, "-"],
                               input=ndjson(recs[0]).encode(), capture_output=True, timeout=60)
            assert p.returncode == 0 and b"1 accepted, 0 rejected" in p.stderr, p
            p = subprocess.run([args.bin, "ingest", "http://127.0.0.1:1", f],
                               capture_output=True, timeout=60)
            assert p.returncode == 1 and b"cannot connect" in p.stderr, p
        res.check("starttls-scan ingest URL FILE: batches, rejected lines by number",
                  ingest_client)

        # --- hostile clients ---
        def oversize():
            sock = st.raw_socket(s.port, b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Type: application/x-ndjson\r\n"
                                 b"Content-Length: 100000000\r\n\r\n")
            reply = st.read_until_close(sock, 5)
            sock.close()
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            assert b'"too_large"' in reply, reply
            # Chunked: refused once it grows past the limit.
            sock = st.raw_socket(s.port, b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
            try:
                for _ in range(40):
                    sock.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            except OSError:
                pass
            reply = st.read_until_close(sock, 5)
            sock.close()
            assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
            status, hd, data = s.request("GET", "/v1/domains/x." + "a" * 20000 + ".example")
            assert status == 431, status
        res.check("oversize body: 413 before reading it; oversize headers: 431", oversize)

        def slow_client():
            slow = st.raw_socket(s.port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            t = time.time()
            # Others are served meanwhile.
            assert s.request("GET", "/v1/health")[0] == 200
            reply = st.read_until_close(slow, 5)
            slow.close()
            assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
            assert time.time() - t < 4, time.time() - t
            idle = st.raw_socket(s.port)
            assert st.closed_soon(idle, 4), "an idle connection was kept past the timeout"
            idle.close()
        res.check("slow client: 408 after --read-timeout, others served", slow_client)

        def malformed():
            sock = st.raw_socket(s.port, b"NOT HTTP AT ALL\r\n\r\n")
            reply = st.read_until_close(sock, 5)
            sock.close()
            assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
        res.check("malformed request: 400", malformed)

        def keep_alive_pipelined():
            req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
            sock = st.raw_socket(s.port, req * 3 + b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n")
            reply = st.read_until_close(sock, 5)
            sock.close()
            assert reply.count(b"HTTP/1.1 200") == 4, reply
        res.check("keep-alive: four pipelined requests, four answers", keep_alive_pipelined)

        # --- limits and the token, on a second server ---
        tokfile = os.path.join(tmp, "token")
        secret = "s3cret-token-value"
        with open(tokfile, "w") as f:
            f.write(secret + "\n")
        s2 = server("--token-file", tokfile, "--post-rate", "1", "--max-conns-per-ip", "3",
                    db="limits.db")

        def token():
            body = ndjson(record(domain="tok.example"))
            _, _, _, (e,) = call(s2, "POST", "/v1/ingest", body, want=401)
            assert e["error"]["code"] == "unauthorized"
            call(s2, "POST", "/v1/ingest", body, {"Authorization": "Bearer wrong"}, want=401)
            call(s2, "POST", "/v1/ingest", body, {"Authorization": "Bearer " + secret + "x"}, want=401)
            _, _, _, (r,) = call(s2, "POST", "/v1/ingest", body,
                                 {"Authorization": "Bearer " + secret}, want=200)
            assert r["accepted"] == 1
            # GETs need no token.
            call(s2, "GET", "/v1/domains/tok.example", want=200)
            p = subprocess.run([args.bin, "ingest", "http://127.0.0.1:%d" % s2.port, "-",
                                "--token-file", tokfile],
                               input=body.encode(), capture_output=True, timeout=60)
            assert p.returncode == 0, p
            p = subprocess.run([args.bin, "ingest", "http://127.0.0.1:%d" % s2.port, "-"],
                               input=body.encode(), capture_output=True, timeout=60)
            assert p.returncode == 1 and b"HTTP 401" in p.stderr, p
            assert secret not in s2.stderr(), "the token appears in the log"
        res.check("--token-file: POST needs the bearer token; GET does not", token)

        def rate():
            hdr = {"Authorization": "Bearer " + secret}
            codes = [s2.request("POST", "/v1/ingest", "", hdr)[0] for _ in range(8)]
            assert 429 in codes, codes
            status, hd, data = s2.request("POST", "/v1/ingest", "", hdr)
            assert status == 429 and hd.get("retry-after"), (status, hd)
            api.check("POST", "/v1/ingest", status, hd, data)
            assert s2.request("GET", "/v1/health")[0] == 200
        res.check("per-client POST rate: 429 with Retry-After; GET unaffected", rate)

        def conn_cap():
            held = [st.raw_socket(s2.port) for _ in range(3)]
            time.sleep(0.2)
            extra = st.raw_socket(s2.port)
            assert st.closed_soon(extra, 3), "a 4th connection from one address was kept"
            extra.close()
            for h in held:
                h.close()
            time.sleep(0.3)
            assert s2.request("GET", "/v1/health")[0] == 200
        res.check("connections per client address are capped", conn_cap)

        def scans_unavailable():
            status, hd, data, _ = call(s, "POST", "/v1/scans", '{"domains":["a.example"]}',
                                       {"Content-Type": "application/json"})
            assert status in (202, 503), status
            if status == 503:
                assert hd.get("retry-after"), hd
        res.check("POST /v1/scans answers (202, or 503 with Retry-After)", scans_unavailable)

        # --- crash and restart on the same store ---
        def kill9_restart():
            db = "crash.db"
            c1 = server(db=db)
            recs = [record(domain="d%d.example" % i, at="2026-11-01T00:00:%02dZ" % i)
                    for i in range(20)]
            r = c1.json("POST", "/v1/ingest", ndjson(*recs))
            assert r["accepted"] == 20, r
            feed1 = c1.request("GET", "/v1/feed?limit=1000")[2]
            c1.proc.send_signal(signal.SIGKILL)
            c1.proc.wait()
            c2 = server(db=db)
            assert c2.json("GET", "/v1/health")["domains"] == 20
            assert c2.request("GET", "/v1/feed?limit=1000")[2] == feed1
            c2.json("GET", "/v1/domains/d7.example")
            # New events continue after the old cursors.
            c2.json("POST", "/v1/ingest", ndjson(record(domain="d7.example", starttls=False,
                                                        at="2026-11-02T00:00:00Z")))
            evs = [json.loads(x) for x in c2.request("GET", "/v1/feed?limit=1000")[2].decode().splitlines()]
            assert evs[-1]["type"] == "starttls-lost" and \
                int(evs[-1]["cursor"]) > int(evs[-2]["cursor"]), evs[-2:]
            assert c2.stop() == 0
        res.check("kill -9 and restart on the same --db keeps records and feed", kill9_restart)

        def graceful():
            g = server(db="graceful.db")
            got = {}

            def poll():
                got["r"] = g.request("GET", "/v1/feed?wait=30")
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(0.3)
            t = time.time()
            rc = g.stop(signal.SIGTERM)
            th.join(5)
            assert rc == 0, (rc, g.stderr())
            assert time.time() - t < 5
            assert got.get("r") and got["r"][0] == 200, got
            g2 = server(db="graceful.db", wait_ready=True)
            assert g2.stop(signal.SIGINT) == 0
        res.check("SIGTERM/SIGINT: long polls answered, exit 0", graceful)

        def usage():
            p = subprocess.run([args.bin, "serve"], capture_output=True, timeout=10)
            assert p.returncode == 2 and b"--db" in p.stderr, p
            p = subprocess.run([args.bin, "serve", "--db", os.path.join(tmp, "u.db"),
                                "--listen", "nonsense"], capture_output=True, timeout=10)
            assert p.returncode != 0 and b"listen" in p.stderr, p
            p = subprocess.run([args.bin, "help", "serve"], capture_output=True, timeout=10)
            assert p.returncode == 0 and b"--token-file" in p.stdout, p
        res.check("usage errors and help", usage)

        assert s.stop() == 0
        assert s2.stop() == 0
    finally:
        for x in servers:
            x.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
