#!/usr/bin/python3
"""A scripted SMTP server that misbehaves on purpose.

Real servers will not split a greeting into one-byte writes, inject bytes
after "220" to STARTTLS or stall forever on demand, so the fault tests drive
the probe against this peer instead. Each connection plays the steps of one
scenario file (see README.md in this directory) from the top; connections
are served one after another until the process is killed.

Usage: smtp_peer.py --listen ADDR:PORT --scenario FILE [--ready-file F] [--log F]

Port 0 picks a free port; the actual port is written to --ready-file once the
socket listens. Every received command line, every scenario failure and the
facts a test may compare against (certificate fingerprints, negotiated TLS
version and cipher) go to --log as JSON lines, and failures also to stderr.
Everything is bounded: line length, bytes sent by "send_forever", and how
long any read or write may block.
"""

import argparse
import atexit
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

MAX_LINE = 4096                   # a command line longer than this is a failure
IO_TIMEOUT = 10.0                 # no single read or write blocks longer
DRAIN_TIMEOUT = 5.0               # how long to wait for the client to hang up
SEND_FOREVER_LIMIT = 10 * 1024 * 1024


class ClientGone(Exception):
    """The client closed or reset the connection."""


class ScenarioFailure(Exception):
    """The client did something the scenario does not allow."""


class Log:
    """Writes JSON-line events to a file (flushed at once) and failures to stderr."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8") if path else None
        self.conn = 0

    def event(self, kind, **fields):
        rec = {"event": kind, "conn": self.conn, "t": round(time.time(), 3)}
        rec.update(fields)
        if self.f:
            self.f.write(json.dumps(rec) + "\n")
            self.f.flush()
        if kind == "fail":
            print("smtp_peer: FAIL conn %d: %s" % (self.conn, fields.get("why")),
                  file=sys.stderr, flush=True)


def make_cert(tmpdir, extra_sans=0):
    """Create a self-signed P-256 certificate for CN/SAN peer.test (plus
    extra_sans more dNSNames, to make it large); return facts about it."""
    cert = os.path.join(tmpdir, "peer-cert.pem")
    key = os.path.join(tmpdir, "peer-key.pem")
    sans = ["DNS:peer.test"] + ["DNS:host%04d.peer.test" % i for i in range(extra_sans)]
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-sha256",
                    "-days", "30", "-subj", "/CN=peer.test",
                    "-addext", "subjectAltName=" + ",".join(sans),
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(cert, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-pubkey"],
                         check=True, capture_output=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          check=True, capture_output=True).stdout
    return {"cert_path": cert, "key_path": key, "cert_der_len": len(der),
            "cert_sha256": hashlib.sha256(der).hexdigest(),
            "spki_sha256": hashlib.sha256(spki).hexdigest()}


def tls_context(cert, step):
    """Server context for one "starttls_tls" step; the step may pin protocol versions."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert["cert_path"], cert["key_path"])
    opts = step["starttls_tls"] if isinstance(step["starttls_tls"], dict) else {}
    if "ciphers" in opts:
        ctx.set_ciphers(opts["ciphers"])  # OpenSSL syntax; "@SECLEVEL=0" unlocks TLS 1.0/1.1
    if "group" in opts:
        # The one key exchange group the server accepts ("prime256v1"), for
        # TLS 1.3 too: a client whose key share is for another group gets a
        # HelloRetryRequest.
        ctx.set_ecdh_curve(opts["group"])
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if key in opts:
            setattr(ctx, attr, getattr(ssl.TLSVersion, opts[key].replace(".", "_")))
    return ctx


def cipher_id(ctx, name):
    """IANA two-byte id ("0x1302") of a cipher OpenSSL calls name, or None."""
    for c in ctx.get_ciphers():
        if c["name"] == name:
            return "0x%04x" % (c["id"] & 0xFFFF)
    return None


class Session:
    """One connection playing one scenario."""

    def __init__(self, sock, steps, cert, log):
        self.sock = sock
        self.steps = steps
        self.cert = cert
        self.log = log
        self.buf = b""          # received bytes not yet consumed as lines
        self.tls = False
        sock.settimeout(IO_TIMEOUT)

    # --- low-level I/O -------------------------------------------------
    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout) as e:
            raise ClientGone("while sending: %s" % e)

    def read_line(self):
        """Next line without its CRLF; raises ClientGone on EOF."""
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                raise ScenarioFailure("command line longer than %d bytes" % MAX_LINE)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                raise ScenarioFailure("no command within %gs" % IO_TIMEOUT)
            except (ConnectionResetError, ssl.SSLError) as e:
                raise ClientGone("while reading: %s" % e)
            if not data:
                raise ClientGone("EOF while reading a command")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
        self.log.event("recv", line=text, tls=self.tls)
        return text

    def client_closed(self):
        """True when the client has hung up (peeks, so pending commands stay unread)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except (ConnectionResetError, ssl.SSLError, ValueError, OSError):
            return True

    # --- steps ------------------------------------------------------------
    def run(self):
        try:
            for i, step in enumerate(self.steps):
                self.step(i, step)
            if not self.steps or "close" not in self.steps[-1]:
                self.serve_leftovers()
            self.log.event("done")
        except ClientGone as e:
            self.log.event("client-gone", why=str(e))
        except ScenarioFailure as e:
            self.log.event("fail", why=str(e))
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def step(self, i, step):
        where = "step %d %s" % (i, json.dumps(step)[:80])
        if "send" in step or "send_hex" in step:
            data = step["send"].encode("latin-1") if "send" in step else bytes.fromhex(step["send_hex"])
            chunk = step.get("chunk") or len(data) or 1
            for off in range(0, len(data), chunk):
                if off and step.get("delay_ms"):
                    time.sleep(step["delay_ms"] / 1000.0)
                self.send(data[off:off + chunk])
        elif "expect" in step:
            try:
                line = self.read_line()
            except ClientGone as e:
                raise ScenarioFailure("%s: expected %s, client went away (%s)" % (where, step["expect"], e))
            verb = line.split(" ", 1)[0].upper()
            if verb != step["expect"].upper():
                raise ScenarioFailure("%s: expected %s, got %r" % (where, step["expect"], line))
        elif "starttls_tls" in step:
            self.start_tls(where, step)
        elif "sleep_ms" in step:
            self.sleep(step["sleep_ms"] / 1000.0)
        elif "read_any" in step:
            self.read_any(step.get("quiet_ms", 200) / 1000.0)
        elif "send_forever" in step:
            self.send_forever(step["send_forever"].encode("latin-1"))
        elif "close" in step:
            self.close(step["close"])
        else:
            raise ScenarioFailure("%s: unknown step" % where)

    def sleep(self, seconds):
        """Stay silent for a while, but stop early when the client hangs up."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            readable, _, _ = select.select([self.sock], [], [], left)
            if readable and self.client_closed():
                raise ClientGone("client closed during sleep")
            if readable:
                time.sleep(min(left, 0.05))  # data waits for a later "expect"

    def read_any(self, quiet):
        """Swallow whatever arrives (say a ClientHello) until the line is quiet."""
        got = 0
        while got < 1 << 20:
            readable, _, _ = select.select([self.sock], [], [], quiet if got else IO_TIMEOUT)
            if not readable:
                break
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            got += len(data)
        self.log.event("read-any", bytes=got)

    def send_forever(self, unit):
        """Repeat unit until the client leaves or the byte limit is reached."""
        block = unit * max(1, 65536 // len(unit))
        sent = 0
        try:
            while sent < SEND_FOREVER_LIMIT:
                self.sock.sendall(block)
                sent += len(block)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError) as e:
            self.log.event("send-forever-stopped", bytes=sent, why=str(e))
            raise ClientGone("client stopped the endless line after %d bytes" % sent)
        self.log.event("send-forever-stopped", bytes=sent, why="limit reached")

    def start_tls(self, where, step):
        if self.buf:
            raise ScenarioFailure("%s: client sent %r before the TLS handshake" % (where, self.buf[:60]))
        ctx = tls_context(self.cert, step)
        must_fail = isinstance(step["starttls_tls"], dict) and step["starttls_tls"].get("must_fail")
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if must_fail:
                self.log.event("tls-failed", why=str(e))
                raise ClientGone("handshake failed as the scenario wants")
            raise ScenarioFailure("%s: TLS handshake failed: %s" % (where, e))
        if must_fail:
            raise ScenarioFailure("%s: the TLS handshake succeeded but should have failed" % where)
        self.tls = True
        name, version, _ = self.sock.cipher()
        self.log.event("tls", tls_version=version, tls_cipher=name, tls_cipher_id=cipher_id(ctx, name))

    def close(self, how):
        """Hang up: "rst" resets, anything else sends close_notify (under TLS) and FIN.

        After a FIN the peer keeps reading until the client hangs up too, so
        unread client data never turns the close into a reset and every
        command the client still sends is logged.
        """
        if how == "rst":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if self.tls:
            try:
                self.sock.settimeout(1.0)
                self.sock = self.sock.unwrap()
                self.tls = False
            except (ssl.SSLError, OSError):
                pass  # the client may have hung up first; a bare FIN is fine then
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            return
        deadline = time.monotonic() + DRAIN_TIMEOUT
        total = 0
        while time.monotonic() < deadline and total < 1 << 20:
            readable, _, _ = select.select([self.sock], [], [], deadline - time.monotonic())
            if not readable:
                break
            try:
                data = socket.socket.recv(self.sock, 4096)
            except OSError:
                break
            if not data:
                break
            total += len(data)
            if self.tls:
                self.log.event("recv-after-close", bytes=len(data))
                continue
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.log.event("recv", line=line.rstrip(b"\r").decode("utf-8", "backslashreplace"),
                               tls=False, after_close=True)

    def serve_leftovers(self):
        """After the last step: log what the client still says, answer QUIT, then hang up."""
        for _ in range(16):
            try:
                line = self.read_line()
            except (ClientGone, ScenarioFailure):
                return
            if line.split(" ", 1)[0].upper() == "QUIT":
                self.send(b"221 2.0.0 peer.test closing\r\n")
                break
            self.send(b"502 5.5.1 peer: scenario over\r\n")
        self.close(True)


def parse_listen(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="ADDR:PORT ([v6]:PORT); port 0 picks one")
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--ready-file", help="write the listening port here once ready")
    ap.add_argument("--log", help="append JSON-line events here")
    args = ap.parse_args()

    with open(args.scenario, encoding="utf-8") as f:
        scenario = json.load(f)
    steps = scenario["steps"]
    log = Log(args.log)

    # SIGTERM (how tests stop us) must still run the atexit cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Inside the lab namespace its tmpfs scratch dir vanishes with it, even after SIGKILL.
    tmpdir = tempfile.mkdtemp(prefix="smtp-peer-", dir=os.environ.get("STLS_LAB_TMP"))
    atexit.register(shutil.rmtree, tmpdir, True)
    cert = (make_cert(tmpdir, scenario.get("cert_extra_sans", 0))
            if any("starttls_tls" in s for s in steps) else {})

    family, host, port = parse_listen(args.listen)
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(16)
    port = srv.getsockname()[1]
    log.event("listening", host=host, port=port, scenario=os.path.basename(args.scenario),
              **{k: v for k, v in cert.items() if k != "key_path"})
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.ready_file)  # readers never see a half-written file

    while True:
        conn, addr = srv.accept()
        log.conn += 1
        log.event("accept", client="%s:%d" % addr[:2])
        Session(conn, steps, cert, log).run()
        log.event("end")


if __name__ == "__main__":
    main()
