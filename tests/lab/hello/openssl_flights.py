#!/usr/bin/python3
"""Real server flights from `openssl s_server` for the hello parser.

Each scenario starts `openssl s_server` on loopback with one configuration
and makes it answer one client: either a ClientHello built by our own
builder (`hello_tool build`, so the builder is tried against a real server
too), or `openssl s_client` through a recording relay (the sniffer case: the
parser sees what a real client's server sends). The bytes the server sent are
kept, parsed with `hello_tool parse`, and checked against facts that come
from the server's configuration or from s_client's own report, never from
the parser under test.

Usage (inside tests/lab/netns-run.sh, which it insists on):
  openssl_flights.py --tool HELLO_TOOL check
      capture every scenario live and check it (a lab test in CTest)
  openssl_flights.py --tool HELLO_TOOL write DIR
      capture, check, and store DIR/NAME.bin (the server's bytes) and
      DIR/NAME.expect (the facts to check) for the unit test

Debian's OpenSSL refuses TLS 1.0/1.1 at its default security level, so the
legacy scenarios run s_server with OPENSSL_CONF pointing at a scratch
openssl.cnf that sets MinProtocol = TLSv1 and CipherString =
DEFAULT@SECLEVEL=0. OpenSSL 3 has no SSLv3 at all: the SSLv3 probe records
the refusal.
"""
import argparse
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

SNI = "mx.example.test"
BASE_PORT = 44300
TIMEOUT = 10.0

LEGACY_CNF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT@SECLEVEL=0
"""


def run(cmd, **kw):
    """Run a command that must succeed; return its stdout."""
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60, **kw)
    if res.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd),
                                              res.stderr.decode(errors="replace")))
    return res.stdout


def make_material(d):
    """Keys, certificates, an OCSP response and DH parameters in d."""
    def p(name):
        return os.path.join(d, name)

    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("ca.key"),
         "-out", p("ca.crt"), "-subj", "/CN=Hello Test CA", "-days", "3650",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    with open(p("san.ext"), "w") as f:
        f.write("subjectAltName=DNS:%s\n" % SNI)
    for name, newkey in (("rsa", ["rsa:2048"]),
                         ("ecdsa", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("ecdsa384", ["ec", "-pkeyopt", "ec_paramgen_curve:P-384"])):
        run(["openssl", "req", "-newkey"] + newkey +
            ["-nodes", "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
             "-subj", "/CN=" + SNI])
        run(["openssl", "x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"),
             "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p(name + ".crt"),
             "-days", "3650", "-extfile", p("san.ext")])
    # An OCSP response for the RSA leaf, signed by the CA, for -status_file.
    serial = run(["openssl", "x509", "-in", p("rsa.crt"), "-noout",
                  "-serial"]).decode().strip().split("=")[1]
    with open(p("index.txt"), "w") as f:
        f.write("V\t351231235959Z\t\t%s\tunknown\t/CN=%s\n" % (serial, SNI))
    run(["openssl", "ocsp", "-issuer", p("ca.crt"), "-cert", p("rsa.crt"),
         "-reqout", p("ocsp.req")])
    run(["openssl", "ocsp", "-index", p("index.txt"), "-rsigner", p("ca.crt"),
         "-rkey", p("ca.key"), "-CA", p("ca.crt"), "-reqin", p("ocsp.req"),
         "-respout", p("ocsp.der"), "-ndays", "3650"])
    # DH groups: RFC 7919 ffdhe3072, and a weak 1024-bit prime. Neither is
    # what s_server picks by itself for an RSA-2048 key (2048 bits), so the
    # parsed size shows that the prime was really read from the wire.
    run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
         "group:ffdhe3072", "-out", p("dh3072.pem")])
    run(["openssl", "dhparam", "-out", p("dh1024.pem"), "1024"])
    with open(p("legacy.cnf"), "w") as f:
        f.write(LEGACY_CNF)


def iana(openssl_name):
    """IANA name of an OpenSSL cipher name, as OpenSSL itself says."""
    if openssl_name.startswith("TLS_"):
        return openssl_name
    out = run(["openssl", "ciphers", "-stdname", "-s", "-tls1_2",
               openssl_name + ":@SECLEVEL=0"]).decode()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == openssl_name:
            return fields[0]
    raise RuntimeError("no IANA name for " + openssl_name)


class Server:
    """One `openssl s_server` we started; stopped by its pid."""

    def __init__(self, args, port, mat, legacy, naccept):
        env = dict(os.environ)
        if legacy:
            env["OPENSSL_CONF"] = os.path.join(mat, "legacy.cnf")
        cmd = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
               "-naccept", str(naccept)] + [a.replace("@M", mat) for a in args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.output = b""
        # s_server prints ACCEPT once it listens.
        deadline = time.monotonic() + TIMEOUT
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        while b"ACCEPT" not in self.output:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.stop()
                raise RuntimeError("s_server did not start: %r" % self.output)
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.stop()
                raise RuntimeError("s_server exited: %r" % self.output)
            self.output += chunk
        sel.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


def read_reply(sock, idle=0.7, cap=65536):
    """Read what the server sends until it closes or pauses (it waits for
    our next flight, which never comes)."""
    data = b""
    sock.settimeout(idle)
    deadline = time.monotonic() + TIMEOUT
    while len(data) < cap and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data[:cap]


class Relay(threading.Thread):
    """Accepts clients on one port, connects each to the server port, and
    records what the server sends on each connection."""

    def __init__(self, port, server_port, count):
        super().__init__(daemon=True)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(4)
        self.lsock.settimeout(TIMEOUT)
        self.server_port = server_port
        self.count = count
        self.streams = []
        self.error = None

    def run(self):
        try:
            for _ in range(self.count):
                client, _ = self.lsock.accept()
                server = socket.create_connection(("127.0.0.1", self.server_port),
                                                  timeout=TIMEOUT)
                self.streams.append(self.pump(client, server))
        except Exception as e:  # reported by the caller
            self.error = e
        finally:
            self.lsock.close()

    @staticmethod
    def pump(client, server):
        recorded = b""
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        deadline = time.monotonic() + TIMEOUT
        open_ends = 2
        while open_ends and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                try:
                    chunk = key.fileobj.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_ends -= 1
                    try:
                        key.data.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                if key.fileobj is server:
                    recorded += chunk
                try:
                    key.data.sendall(chunk)
                except OSError:
                    pass
        sel.close()
        client.close()
        server.close()
        return recorded


# s_client's words for signature schemes and curves, in IANA names.
SCLIENT_SIGALGS = {
    ("RSA-PSS", "256"): "rsa_pss_rsae_sha256",
    ("RSA-PSS", "384"): "rsa_pss_rsae_sha384",
    ("RSA-PSS", "512"): "rsa_pss_rsae_sha512",
    ("RSA", "1"): "rsa_pkcs1_sha1",
    ("RSA", "256"): "rsa_pkcs1_sha256",
    ("RSA", "384"): "rsa_pkcs1_sha384",
    ("RSA", "512"): "rsa_pkcs1_sha512",
    ("ECDSA", "256"): "ecdsa_secp256r1_sha256",
    ("ECDSA", "384"): "ecdsa_secp384r1_sha384",
    ("ECDSA", "512"): "ecdsa_secp521r1_sha512",
}
SCLIENT_GROUPS = {"X25519": "x25519", "X448": "x448", "prime256v1": "secp256r1",
                  "secp384r1": "secp384r1", "secp521r1": "secp521r1"}


def s_client_facts(out):
    """The facts s_client reports about a handshake, in our key names."""
    facts = {}
    m = re.search(r"^(New|Reused), (TLSv1(?:\.\d)?|SSLv3), Cipher is (\S+)",
                  out, re.M)
    if not m:
        raise RuntimeError("s_client reported no handshake:\n" + out)
    facts["version"] = {"TLSv1": "TLSv1.0"}.get(m.group(2), m.group(2))
    facts["cipher"] = iana(m.group(3))
    # "Server Temp Key: X25519, 253 bits", "ECDH, prime256v1, 256 bits",
    # "DH, 2048 bits"
    m = re.search(r"^Server Temp Key: ([^,\n]+), (?:([^,\n]+), )?(\d+) bits",
                  out, re.M)
    if m:
        kind, curve, bits = m.groups()
        if kind == "DH":
            facts["dh_bits"] = bits
        else:
            facts["group"] = SCLIENT_GROUPS[curve if kind == "ECDH" else kind]
    # TLS 1.2 only: in TLS 1.3 the signature is in the encrypted part.
    m = re.search(r"^Peer signature type: (\S+)", out, re.M)
    d = re.search(r"^Peer signing digest: SHA(\d+)", out, re.M)
    if m and d and facts["version"] == "TLSv1.2":
        facts["sigalg"] = SCLIENT_SIGALGS[(m.group(1), d.group(1))]
    if facts["version"] != "TLSv1.3":
        facts["ocsp_staple"] = (
            "1" if "OCSP Response Status: successful" in out else "0")
    return facts


# Scenarios. server: s_server arguments (@M is the material directory);
# client: ("hello", version, extra hello_tool args) or ("s_client", args) or
# ("resume", args); expect: facts from the configuration.
RSA = ["-cert", "@M/rsa.crt", "-key", "@M/rsa.key", "-cert_chain", "@M/ca.crt"]
ECDSA = ["-cert", "@M/ecdsa.crt", "-key", "@M/ecdsa.key"]
ECDSA384 = ["-cert", "@M/ecdsa384.crt", "-key", "@M/ecdsa384.key"]
DONE_HELLO = {"rc": "done", "kind": "server-hello", "error": "",
              "compression": "0"}
FLIGHT = dict(DONE_HELLO, server_hello_done="1", change_cipher_spec="0",
              secure_renegotiation="1", certificate="1")
ALERT = {"rc": "done", "kind": "alert", "alert": "1", "alert_level": "2",
         "version": "none", "error": ""}

SCENARIOS = [
    dict(name="tls12_ecdhe_rsa_ocsp",
         why="TLS 1.2 ECDHE-RSA with a stapled OCSP response and a 2-cert chain",
         server=RSA + ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256",
                       "-groups", "X25519", "-sigalgs", "RSA-PSS+SHA256",
                       "-status_file", "@M/ocsp.der"],
         client=("hello", "tls1.2", ["--sni", SNI, "--ocsp"]),
         expect=dict(FLIGHT, version="TLSv1.2", legacy_version="TLSv1.2",
                     cipher=("iana", "ECDHE-RSA-AES128-GCM-SHA256"), kx="ECDHE",
                     group="x25519", sigalg="rsa_pss_rsae_sha256",
                     status_request="1", ocsp_staple="1", cert_count="2",
                     cert_request="0", downgrade="0",
                     extended_master_secret="1")),
    dict(name="tls12_ecdhe_ecdsa_downgrade",
         why="TLS 1.2 from a server that also speaks TLS 1.3 (DOWNGRD sentinel), "
             "ECDHE on secp384r1, P-384 ECDSA key signing with SHA-384",
         server=ECDSA384 + ["-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384",
                         "-groups", "secp384r1", "-sigalgs", "ECDSA+SHA384"],
         client=("hello", "tls1.2", ["--sni", SNI]),
         expect=dict(FLIGHT, version="TLSv1.2",
                     cipher=("iana", "ECDHE-ECDSA-AES256-GCM-SHA384"), kx="ECDHE",
                     group="secp384r1", sigalg="ecdsa_secp384r1_sha384",
                     status_request="0", ocsp_staple="0", cert_count="1",
                     downgrade="12")),
    dict(name="tls12_dhe_rsa_client_auth",
         why="TLS 1.2 DHE-RSA on ffdhe3072, PKCS#1 signature, CertificateRequest",
         server=RSA + ["-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384",
                       "-dhparam", "@M/dh3072.pem", "-sigalgs", "RSA+SHA256",
                       "-verify", "1"],
         client=("hello", "tls1.2", ["--sni", SNI]),
         expect=dict(FLIGHT, version="TLSv1.2",
                     cipher=("iana", "DHE-RSA-AES256-GCM-SHA384"), kx="DHE",
                     dh_bits="3072", group="none", sigalg="rsa_pkcs1_sha256",
                     cert_request="1", cert_count="2")),
    dict(name="tls12_rsa_kx",
         why="TLS 1.2 with static RSA key exchange: no ServerKeyExchange",
         server=RSA + ["-tls1_2", "-cipher", "AES256-SHA256"],
         client=("hello", "tls1.2", []),
         expect=dict(FLIGHT, version="TLSv1.2", cipher=("iana", "AES256-SHA256"),
                     kx="RSA", server_key_exchange="0", group="none",
                     sigalg="none", cert_count="2")),
    dict(name="tls11_ecdhe_rsa",
         why="TLS 1.1 ECDHE-RSA on secp256r1 (no signature scheme before 1.2)",
         legacy=True,
         server=RSA + ["-tls1_1", "-cipher", "ECDHE-RSA-AES256-SHA:@SECLEVEL=0",
                       "-groups", "P-256"],
         client=("hello", "tls1.1", ["--sni", SNI]),
         expect=dict(FLIGHT, version="TLSv1.1", legacy_version="TLSv1.1",
                     cipher=("iana", "ECDHE-RSA-AES256-SHA"), kx="ECDHE",
                     group="secp256r1", sigalg="none", server_key_exchange="1")),
    dict(name="tls10_dhe_1024",
         why="TLS 1.0 DHE-RSA with a weak 1024-bit prime",
         legacy=True,
         server=RSA + ["-tls1", "-cipher", "DHE-RSA-AES128-SHA:@SECLEVEL=0",
                       "-dhparam", "@M/dh1024.pem"],
         client=("hello", "tls1.0", ["--sni", SNI]),
         expect=dict(FLIGHT, version="TLSv1.0", legacy_version="TLSv1.0",
                     cipher=("iana", "DHE-RSA-AES128-SHA"), kx="DHE",
                     dh_bits="1024", sigalg="none")),
    dict(name="tls10_rsa_kx",
         why="TLS 1.0 with RSA key exchange (Debian's OpenSSL has no 3DES)",
         legacy=True,
         server=RSA + ["-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0"],
         client=("hello", "tls1.0", []),
         expect=dict(FLIGHT, version="TLSv1.0",
                     cipher=("iana", "AES128-SHA"), kx="RSA",
                     server_key_exchange="0")),
    dict(name="tls10_refused",
         why="TLS 1.0 probe against Debian's default server (OpenSSL 3.0 at "
             "security level 2): it answers internal_error (80), not "
             "protocol_version",
         server=ECDSA,
         client=("hello", "tls1.0", ["--sni", SNI]),
         expect=dict(ALERT, alert_desc="80")),
    dict(name="tls11_refused_by_tls12_only",
         why="TLS 1.1 probe against a TLS 1.2-only server",
         server=RSA + ["-tls1_2"],
         client=("hello", "tls1.1", []),
         expect=dict(ALERT, alert_desc="70")),
    dict(name="ssl3_refused",
         why="SSLv3 probe (OpenSSL 3 has no SSLv3 at all): handshake_failure "
             "(40) in an SSLv3 record",
         server=ECDSA,
         client=("hello", "ssl3", []),
         expect=dict(ALERT, alert_desc="40")),
    dict(name="tls11_no_shared_cipher",
         why="TLS 1.1 allowed, but the server only has a TLS 1.2 suite",
         legacy=True,
         server=RSA + ["-cipher", "AES128-GCM-SHA256:@SECLEVEL=0"],
         client=("hello", "tls1.1", []),
         expect=dict(ALERT, alert_desc="40")),
    dict(name="tls13_sniff",
         why="s_client TLS 1.3: ServerHello then ChangeCipherSpec and "
             "encrypted records",
         server=ECDSA,
         client=("s_client", ["-tls1_3", "-groups", "X25519:P-256"]),
         expect=dict(DONE_HELLO, version="TLSv1.3", legacy_version="TLSv1.2",
                     kx="TLS1.3", hello_retry="0", server_hello_done="0",
                     certificate="0")),
    dict(name="tls13_hrr_sniff",
         why="s_client TLS 1.3 with a HelloRetryRequest to secp384r1",
         server=ECDSA + ["-groups", "secp384r1"],
         client=("s_client", ["-tls1_3", "-groups", "X25519:P-384"]),
         expect=dict(DONE_HELLO, version="TLSv1.3", kx="TLS1.3",
                     hello_retry="1", hello_retry_group="secp384r1")),
    dict(name="tls12_sniff_ocsp",
         why="s_client TLS 1.2 asking for OCSP: the full first flight",
         server=RSA + ["-tls1_2", "-status_file", "@M/ocsp.der"],
         client=("s_client", ["-tls1_2", "-status"]),
         expect=dict(FLIGHT, status_request="1", cert_count="2")),
    dict(name="tls12_resumed_sniff",
         why="s_client TLS 1.2 resuming with a session ticket: "
             "ServerHello, NewSessionTicket, ChangeCipherSpec",
         server=RSA + ["-tls1_2"],
         client=("resume", ["-tls1_2"]),
         expect=dict(DONE_HELLO, version="TLSv1.2", change_cipher_spec="1",
                     server_hello_done="0", certificate="0")),
]


def capture(sc, mat, tool, port):
    """Run one scenario; return (server bytes, expected facts)."""
    kind = sc["client"][0]
    naccept = 2 if kind == "resume" else 1
    server = Server(sc["server"], port, mat, sc.get("legacy", False), naccept)
    expect = {k: (iana(v[1]) if isinstance(v, tuple) else v)
              for k, v in sc["expect"].items()}
    try:
        if kind == "hello":
            hello = run([tool, "build", sc["client"][1]] + sc["client"][2])
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
                s.sendall(hello)
                data = read_reply(s)
            return data, expect
        relay_port = port + 1000
        count = 2 if kind == "resume" else 1
        relay = Relay(relay_port, port, count)
        relay.start()
        sess = os.path.join(mat, sc["name"] + ".sess")
        outs = []
        for i in range(count):
            cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % relay_port,
                   "-servername", SNI] + sc["client"][1]
            if kind == "resume":
                cmd += ["-sess_out", sess] if i == 0 else ["-sess_in", sess]
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=TIMEOUT * 2)
            outs.append(res.stdout.decode(errors="replace"))
        relay.join(TIMEOUT * 2)
        if relay.error or len(relay.streams) != count:
            raise RuntimeError("relay failed: %r" % relay.error)
        facts = s_client_facts(outs[-1])
        if kind == "resume" and not re.search(r"^Reused,", outs[-1], re.M):
            raise RuntimeError("the second s_client did not resume:\n" + outs[-1])
        for k, v in facts.items():
            expect.setdefault(k, v)
        return relay.streams[-1], expect
    finally:
        server.stop()


def check(tool, name, data, expect, scratch):
    """Parse data with hello_tool; return a list of mismatches."""
    path = os.path.join(scratch, name + ".bin")
    with open(path, "wb") as f:
        f.write(data)
    facts = {}
    for line in run([tool, "parse", path]).decode().splitlines():
        k, _, v = line.partition("=")
        facts[k] = v
    return ["%s: expected %s=%s, parsed %s" % (name, k, v, facts.get(k))
            for k, v in expect.items() if facts.get(k) != v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", required=True, help="path of hello_tool")
    ap.add_argument("mode", choices=["check", "write"])
    ap.add_argument("dir", nargs="?", help="fixture directory (write)")
    ap.add_argument("--only", help="run only the scenario of this name")
    ap.add_argument("--dump", help="also store every capture here, as "
                    "NAME.bin, whether it passed or not (for debugging)")
    args = ap.parse_args()
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("openssl_flights.py: run me inside tests/lab/netns-run.sh")
    if args.mode == "write" and not args.dir:
        sys.exit("openssl_flights.py: write needs a directory")
    if shutil.which("openssl") is None:
        sys.exit("openssl_flights.py: openssl not found")
    tool = os.path.abspath(args.tool)
    scratch = tempfile.mkdtemp(dir=os.environ.get("STLS_LAB_TMP"))
    failures = []
    try:
        make_material(scratch)
        for i, sc in enumerate(SCENARIOS):
            if args.only and sc["name"] != args.only:
                continue
            try:
                data, expect = capture(sc, scratch, tool, BASE_PORT + 2 * i)
                bad = check(tool, sc["name"], data, expect, scratch)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                data, bad = b"", ["%s: %s" % (sc["name"], e)]
            failures += bad
            print("%-30s %5d bytes  %s" % (sc["name"], len(data),
                                           "ok" if not bad else "FAILED"))
            for line in bad:
                print("  " + line)
            sys.stdout.flush()
            if args.dump:
                with open(os.path.join(args.dump, sc["name"] + ".bin"), "wb") as f:
                    f.write(data)
            if args.mode == "write" and not bad:
                with open(os.path.join(args.dir, sc["name"] + ".bin"), "wb") as f:
                    f.write(data)
                with open(os.path.join(args.dir, sc["name"] + ".expect"), "w") as f:
                    f.write("# %s\n" % sc["why"])
                    for k, v in expect.items():
                        f.write("%s=%s\n" % (k, v))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures), file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
