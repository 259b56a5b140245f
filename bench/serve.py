#!/usr/bin/python3
"""Benchmark of `starttls-scan serve`: ingest rate with 100,000 domains,
GET /v1/domains/{d} latency with them stored, and the process's RSS.

Usage: serve.py --bin PATH [--domains N] [--batch N] [--gets N] [--write FILE]

Records are the service tests' record (tests/lab/serve/record.json, three
hosts, ~3.8 KB as one line) with the domain, time and certificate varied,
so every record is valid and every first ingest makes a first-seen event.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        s = f.read()
    return (int(re.search(r"VmRSS:\s+(\d+)", s).group(1)),
            int(re.search(r"VmHWM:\s+(\d+)", s).group(1)))


def cpu_s(pid):
    """User + system CPU seconds of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--domains", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--gets", type=int, default=20000)
    ap.add_argument("--write", help="append a section to this RESULTS.md")
    a = ap.parse_args()

    with open(os.path.join(REPO, "tests", "lab", "serve", "record.json")) as f:
        base = json.load(f)
    tmp = tempfile.mkdtemp(prefix="serve-bench-")
    db = os.path.join(tmp, "bench.db")
    log = open(os.path.join(tmp, "log"), "w+")
    proc = subprocess.Popen([a.bin, "serve", "--db", db, "--listen", "127.0.0.1:0",
                             "--max-body", str(256 << 20), "--post-rate", "0"],
                            stderr=log, stdout=subprocess.DEVNULL)
    try:
        port = None
        for _ in range(500):
            log.seek(0)
            m = re.search(r"\(port (\d+)\)", log.read())
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.02)
        assert port, "serve did not start"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

        # Build the batches first so only the service is timed.
        batches = []
        line_bytes = 0
        for start in range(0, a.domains, a.batch):
            lines = []
            for i in range(start, min(start + a.batch, a.domains)):
                r = json.loads(json.dumps(base))
                r["domain"] = "d%06d.bench.example" % i
                r["scanned_at"] = "2026-12-01T%02d:%02d:%02dZ" % (i // 3600 % 24, i // 60 % 60, i % 60)
                r["hosts"][0]["tls"]["chain"][0]["sha256"] = "%064x" % i
                lines.append(json.dumps(r, separators=(",", ":")))
            body = ("\n".join(lines) + "\n").encode()
            line_bytes += len(body)
            batches.append(body)

        c0 = cpu_s(proc.pid)
        t0 = time.perf_counter()
        accepted = 0
        for body in batches:
            conn.request("POST", "/v1/ingest", body, {"Content-Type": "application/x-ndjson"})
            r = conn.getresponse()
            out = json.loads(r.read())
            assert r.status == 200 and out["rejected"] == 0, out
            accepted += out["accepted"]
        ingest_s = time.perf_counter() - t0
        ingest_cpu = cpu_s(proc.pid) - c0
        assert accepted == a.domains
        rss_after_ingest, hwm_ingest = rss_kb(proc.pid)

        # Latency of the latest record, on one keep-alive connection.
        rnd = random.Random(1)
        lat = []
        for _ in range(a.gets):
            d = "d%06d.bench.example" % rnd.randrange(a.domains)
            t = time.perf_counter()
            conn.request("GET", "/v1/domains/" + d)
            r = conn.getresponse()
            body = r.read()
            lat.append(time.perf_counter() - t)
            assert r.status == 200 and len(body) > 1000
        lat.sort()
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[int(len(lat) * 0.99)] * 1000
        t = time.perf_counter()
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        r.read()
        metrics_ms = (time.perf_counter() - t) * 1000
        rss_end, hwm = rss_kb(proc.pid)
        db_mb = sum(os.path.getsize(os.path.join(tmp, f)) for f in os.listdir(tmp)
                    if f.startswith("bench.db")) / 1e6
        res = {
            "domains": a.domains, "batch": a.batch,
            "ingest_s": round(ingest_s, 2),
            "records_per_s": round(a.domains / ingest_s),
            "mb_per_s": round(line_bytes / ingest_s / 1e6, 1),
            "ingest_cpu_s": round(ingest_cpu, 2),
            "records_per_cpu_s": round(a.domains / ingest_cpu) if ingest_cpu else None,
            "load_before": os.getloadavg()[0],
            "get_p50_ms": round(p50, 3), "get_p99_ms": round(p99, 3), "gets": a.gets,
            "metrics_ms": round(metrics_ms, 1),
            "rss_mb": round(rss_end / 1024, 1), "peak_rss_mb": round(hwm / 1024, 1),
            "db_mb": round(db_mb, 1), "record_bytes": round(line_bytes / a.domains),
        }
        print(json.dumps(res, indent=1))
        proc.terminate()
        assert proc.wait(30) == 0, "serve did not stop cleanly"
        if a.write:
            ver = subprocess.run([a.bin, "version"], capture_output=True, text=True).stdout.strip()
            with open(a.write, "a") as f:
                f.write("\n## Service: `serve` ingest and lookup (%s UTC)\n\n" %
                        time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
                f.write("- Machine: %d CPUs; load average %s. %s, SQLite %s.\n" % (
                    os.cpu_count(), os.getloadavg()[0], ver,
                    subprocess.run(["sh", "-c", "dpkg-query -W -f='${Version}' libsqlite3-0"],
                                   capture_output=True, text=True).stdout))
                f.write("- Command: `bench/serve.sh` (bench/serve.py: %d records of %d bytes, "
                        "POST /v1/ingest in batches of %d, then %d GET /v1/domains/{d} of random "
                        "domains on one keep-alive connection from a Python client).\n\n" % (
                            a.domains, res["record_bytes"], a.batch, a.gets))
                f.write("| figure | value | aim |\n|---|---:|---:|\n")
                f.write("| ingest, records/s (100,000 domains, first-seen each) | %d | >= 20,000 |\n" % res["records_per_s"])
                f.write("| ingest, records per CPU second of the service | %s | |\n" % res["records_per_cpu_s"])
                f.write("| GET /v1/domains/{d} p50 | %.2f ms | |\n" % res["get_p50_ms"])
                f.write("| GET /v1/domains/{d} p99 | %.2f ms | <= 5 ms |\n" % res["get_p99_ms"])
                f.write("| RSS after ingest + lookups (peak) | %.1f MB (%.1f MB) | <= 100 MB |\n" % (res["rss_mb"], res["peak_rss_mb"]))
                f.write("| GET /metrics over 100,000 domains | %.0f ms | |\n" % res["metrics_ms"])
                f.write("| store on disk | %.0f MB | |\n" % res["db_mb"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
