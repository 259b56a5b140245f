#!/usr/bin/python3
"""The service scanning for real, inside the lab namespace (Postfix, lab
DNS, and listeners of our own on 127.0.26.1:25, the address of
peer.lab.test's MX):

  jobs       POST /v1/scans, GET /v1/scans/{id} until done, the results as
             NDJSON in submission order (schema-valid, the same facts as
             `scan` finds), GET /v1/scans newest first, 404s, 400s;
  domains    ?max_age: a fresh record is answered without a scan, a stale
             one is scanned first, and concurrent requests share one scan
             (one connection to a slow listener);
  cancel     DELETE a running job: cancelled, and its queued domains are
             never scanned;
  queue      a full queue is 503 with Retry-After;
  restart    kill -9 with a job under way; after a restart the job ends;
  targets    --targets FILE --every 1s rescans, a round at a time;
  guard      without --allow-private nothing connects to a private
             address: the listener sees no connection and every host is
             "blocked" with ADDRESS_NOT_ALLOWED;
  metrics    the scan duration histogram and the queue gauges.

Usage: test_serve_scan.py --bin PATH
"""

import argparse
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

import stlstest  # noqa: E402

REPO = st.REPO
LAB_SH = os.path.join(REPO, "tests", "lab", "lab.sh")
PEER_IP = "127.0.26.1"  # mx-peer.lab.test: peer.lab.test's only MX
SLOW = "peer.lab.test"


class Listener:
    """A TCP listener on PEER_IP:25 that counts connections; silent (the
    scan waits for a greeting until its timeout) unless greet is set."""

    def __init__(self, greet=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((PEER_IP, 25))
        self.sock.listen(64)
        self.greet = greet
        self.count = 0
        self.conns = []
        self.stop = False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.count += 1
            self.conns.append(c)
            if self.greet:
                try:
                    c.sendall(self.greet)
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.th.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def wait_job(s, jid, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        j = s.json("GET", "/v1/scans/" + jid)
        if j["state"] in ("done", "cancelled"):
            return j
        time.sleep(0.2)
    raise AssertionError("job %s not done after %ds: %s" % (jid, timeout, j))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("test_serve_scan: run me through tests/lab/netns-run.sh")
    res = stlstest.Results()
    api = st.OpenAPI()
    tmp = tempfile.mkdtemp(prefix="serve-scan-", dir=os.environ.get("STLS_LAB_TMP"))
    # Postfix's users must reach the lab directory: not under mkdtemp's 0700.
    lab = os.path.join(os.environ.get("STLS_LAB_TMP") or "/tmp", "serve-lab-%d" % os.getpid())
    p = subprocess.run(["bash", LAB_SH, "start", lab], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=180)
    if p.returncode != 0:
        sys.exit("lab.sh start failed:\n" + p.stdout.decode(errors="replace"))
    ca = os.path.join(lab, "pki", "ca-a.pem")
    scan_opts = ["--resolver", "127.0.53.53", "--ca-file", ca, "--ipv6", "off",
                 "--ehlo", "client.lab.test", "--no-retry",
                 "--greeting-timeout", "2", "--connect-timeout", "2"]
    servers = []

    def server(*a, db="scan.db", **kw):
        s = st.Server(args.bin, os.path.join(tmp, db), *a, **kw)
        servers.append(s)
        return s

    def call(s, method, path, body=None, headers=None, want=None):
        status, hd, data = s.request(method, path, body, headers)
        if want is not None and status != want:
            raise AssertionError("%s %s: %d, want %d: %s" % (method, path, status, want, data[:300]))
        return status, hd, data, api.check(method, path, status, hd, data)

    try:
        s = server("--allow-private", *scan_opts)
        doms = ["good.lab.test", "plain.lab.test", "SELF.lab.test.", "nxdomain.lab.test"]
        job = {}

        def post_job():
            _, _, _, (r,) = call(s, "POST", "/v1/scans", json.dumps({"domains": doms}),
                                 {"Content-Type": "application/json"}, want=202)
            job["id"] = r["id"]
            j = wait_job(s, r["id"])
            assert j["state"] == "done" and j["done"] == j["total"] == 4, j
            call(s, "GET", "/v1/scans/" + r["id"], want=200)
        res.check("POST /v1/scans: 202, the job runs to done", post_job)

        def results():
            _, hd, data, recs = call(s, "GET", "/v1/scans/%s/results" % job["id"], want=200)
            assert [r["domain"] for r in recs] == ["good.lab.test", "plain.lab.test",
                                                   "self.lab.test", "nxdomain.lab.test"], recs
            for r in recs:
                stlstest.validate(r)
            by = {r["domain"]: r for r in recs}
            assert by["good.lab.test"]["hosts"][0]["status"] == "success"
            assert by["good.lab.test"]["hosts"][0]["tls"]["trust"]["trusted"] is True
            assert by["plain.lab.test"]["hosts"][0]["status"] == "starttls-not-supported"
            assert by["self.lab.test"]["hosts"][0]["tls"]["trust"]["trusted"] is False
            assert by["nxdomain.lab.test"]["status"] == "nxdomain"
            # The same facts as `scan` finds for the same domains.
            p = subprocess.run([args.bin, "scan", "-q"] + scan_opts + doms,
                               capture_output=True, timeout=120)
            assert p.returncode == 0, p.stderr
            cli = {r["domain"]: r for r in map(json.loads, p.stdout.decode().splitlines())}

            def facts(r):
                return (r["status"], (r.get("policy") or {}).get("recommended"),
                        [(h["ip"], h["status"], (h.get("tls") or {}).get("version"))
                         for h in r["hosts"]])
            for d, r in by.items():
                assert facts(r) == facts(cli[d]), (d, facts(r), facts(cli[d]))
                assert sorted(r) == sorted(cli[d]), (d, sorted(r), sorted(cli[d]))
        res.check("GET /v1/scans/{id}/results: NDJSON in order, as `scan` writes", results)

        def lists_and_errors():
            _, _, _, (r,) = call(s, "POST", "/v1/scans", '{"domains": ["ecdsa.lab.test"]}', want=202)
            wait_job(s, r["id"])
            _, _, _, (lst,) = call(s, "GET", "/v1/scans?limit=10", want=200)
            assert [j["id"] for j in lst["scans"][:2]] == [r["id"], job["id"]], lst
            _, _, _, (one,) = call(s, "GET", "/v1/scans?limit=1", want=200)
            assert len(one["scans"]) == 1
            call(s, "GET", "/v1/scans/nosuchjob", want=404)
            call(s, "GET", "/v1/scans/nosuchjob/results", want=404)
            call(s, "DELETE", "/v1/scans/nosuchjob", want=404)
            for bad in ('{"domains": []}', '{"domains": "x"}', 'not json', '{}',
                        '{"domains": ["ok.example", 5]}'):
                call(s, "POST", "/v1/scans", bad, want=400)
            _, _, _, (e,) = call(s, "POST", "/v1/scans", '{"domains": ["a..b"]}', want=400)
            assert e["error"]["code"] == "bad_domain"
            call(s, "GET", "/v1/scans?limit=0", want=400)
        res.check("GET /v1/scans newest first; 404 and 400 answers", lists_and_errors)

        def max_age():
            r0 = s.json("GET", "/v1/domains/good.lab.test")
            # Fresh enough: no scan.
            _, _, _, (r1,) = call(s, "GET", "/v1/domains/good.lab.test?max_age=3600", want=200)
            assert r1 == r0
            time.sleep(1.1)
            _, _, _, (r2,) = call(s, "GET", "/v1/domains/good.lab.test?max_age=0", want=200)
            stlstest.validate(r2)
            assert r2["scanned_at"] > r0["scanned_at"], (r0["scanned_at"], r2["scanned_at"])
            # Never seen: scanned now.
            _, _, _, (r3,) = call(s, "GET", "/v1/domains/tls12.lab.test?max_age=60", want=200)
            assert r3["hosts"][0]["tls"]["version"] == "TLSv1.2", r3["hosts"][0]
            call(s, "GET", "/v1/domains/good.lab.test?max_age=x", want=400)
        res.check("?max_age: fresh answered as is, stale and unknown scanned first", max_age)

        def shared_scan():
            lis = Listener()
            try:
                out = []

                def get():
                    out.append(s.request("GET", "/v1/domains/%s?max_age=0" % SLOW, timeout=30))
                ths = [threading.Thread(target=get) for _ in range(4)]
                for t in ths:
                    t.start()
                    time.sleep(0.05)
                for t in ths:
                    t.join(30)
                assert len(out) == 4 and all(o[0] == 200 for o in out), [o[0] for o in out]
                recs = [json.loads(o[2]) for o in out]
                assert len({r["scanned_at"] for r in recs}) == 1, [r["scanned_at"] for r in recs]
                assert recs[0]["hosts"][0]["status"] == "io-timeout", recs[0]["hosts"][0]
                assert lis.count == 1, "%d connections for one shared scan" % lis.count
            finally:
                lis.close()
        res.check("concurrent ?max_age requests share one scan (one connection)", shared_scan)

        def cancel():
            lis = Listener()
            try:
                c = server("--allow-private", *scan_opts, "-c", "1", "--per-ip", "1",
                           db="cancel.db")
                names = [SLOW] + ["good.lab.test", "plain.lab.test", "self.lab.test",
                                  "wrong.lab.test", "ecdsa.lab.test"]
                r = c.json("POST", "/v1/scans", json.dumps({"domains": names}), want=202)
                time.sleep(0.5)
                _, _, _, (j,) = call(c, "DELETE", "/v1/scans/" + r["id"], want=200)
                assert j["state"] == "cancelled" and j["finished_at"], j
                time.sleep(3)
                j = c.json("GET", "/v1/scans/" + r["id"])
                assert j["state"] == "cancelled" and j["done"] < len(names), j
                # Deleting again changes nothing.
                assert c.json("DELETE", "/v1/scans/" + r["id"])["state"] == "cancelled"
                # The cancelled domains were never scanned.
                never = [d for d in names[2:]
                         if c.request("GET", "/v1/domains/" + d)[0] == 404]
                assert len(never) >= 3, never
                assert c.stop() == 0
            finally:
                lis.close()
        res.check("DELETE /v1/scans/{id} cancels; its queued domains are dropped", cancel)

        def queue_full():
            lis = Listener()
            try:
                q = server("--allow-private", *scan_opts, "-c", "1", "--queue", "2",
                           db="queue.db")
                _, hd, _, (e,) = call(q, "POST", "/v1/scans",
                                      json.dumps({"domains": ["a.lab.test", "b.lab.test",
                                                              "c.lab.test"]}), want=503)
                assert e["error"]["code"] == "queue_full" and hd.get("retry-after"), (e, hd)
                assert q.stop() == 0
            finally:
                lis.close()
        res.check("a full queue: 503 with Retry-After", queue_full)

        def restart():
            lis = Listener()
            try:
                db = "restart.db"
                k = server("--allow-private", *scan_opts, "-c", "1", "--per-ip", "1", db=db)
                names = [SLOW, "good.lab.test", "plain.lab.test"]
                r = k.json("POST", "/v1/scans", json.dumps({"domains": names}), want=202)
                time.sleep(0.5)
                k.proc.send_signal(signal.SIGKILL)
                k.proc.wait()
            finally:
                lis.close()
            k2 = server("--allow-private", *scan_opts, db=db)
            j = wait_job(k2, r["id"], 60)
            assert j["state"] == "done" and j["done"] == 3, j
            recs = [json.loads(x) for x in
                    k2.request("GET", "/v1/scans/%s/results" % r["id"])[2].decode().splitlines()]
            assert [x["domain"] for x in recs] == names, recs
            assert "queued again" in k2.stderr()
            assert k2.stop() == 0
        res.check("kill -9 during a job; after a restart the job finishes", restart)

        def targets():
            tf = os.path.join(tmp, "targets.txt")
            with open(tf, "w") as f:
                f.write("# lab domains\ngood.lab.test\nplain.lab.test\n")
            t = server("--allow-private", *scan_opts, "--targets", tf, "--every", "1s",
                       db="targets.db")
            time.sleep(3.5)
            h = t.json("GET", "/v1/domains/good.lab.test/history")
            assert len(h["records"]) >= 1, h
            from prometheus_client.parser import text_string_to_metric_families
            fams = {f.name: f for f in text_string_to_metric_families(
                t.request("GET", "/metrics")[2].decode())}
            rounds = {x.labels["outcome"]: x.value for x in fams["starttls_scan_target_rounds"].samples
                      if x.name.endswith("_total")}
            assert rounds["started"] >= 2, rounds
            dur = [x for x in fams["starttls_scan_scan_duration_seconds"].samples
                   if x.name.endswith("_count")]
            assert dur and dur[0].value >= 4, dur
            assert t.stop() == 0
        res.check("--targets --every rescans; duration histogram counts them", targets)

        def guard():
            lis = Listener(greet=b"220 must never be reached\r\n")
            try:
                g = server(*scan_opts, db="guard.db")  # no --allow-private
                _, _, _, (r,) = call(g, "GET", "/v1/domains/%s?max_age=0" % SLOW, want=200)
                stlstest.validate(r)
                hosts = r["hosts"]
                assert hosts and all(h["status"] == "blocked" for h in hosts), hosts
                assert all(h["error"]["code"] == "ADDRESS_NOT_ALLOWED" for h in hosts), hosts
                _, _, _, (r2,) = call(g, "GET", "/v1/domains/good.lab.test?max_age=0", want=200)
                st2 = [h["status"] for h in r2["hosts"]]
                # (its IPv6 address is skipped: --ipv6 off)
                assert "blocked" in st2 and set(st2) <= {"blocked", "skipped"}, r2["hosts"]
                time.sleep(0.3)
                assert lis.count == 0, "the guard let %d connection(s) through" % lis.count
                assert g.stop() == 0
            finally:
                lis.close()
        res.check("guard: private addresses are blocked, no connection is made", guard)

        def graceful_with_scans():
            lis = Listener()
            try:
                g = server("--allow-private", *scan_opts, db="stop.db")
                g.json("POST", "/v1/scans", json.dumps({"domains": [SLOW]}), want=202)
                time.sleep(0.3)
                t = time.time()
                assert g.stop() == 0
                assert time.time() - t < 10
            finally:
                lis.close()
        res.check("SIGTERM with a scan under way: it ends, exit 0", graceful_with_scans)

        assert s.stop() == 0
    finally:
        for x in servers:
            x.close()
        subprocess.run(["bash", LAB_SH, "stop", lab], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(lab, ignore_errors=True)
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
