#!/usr/bin/python3
"""Probe every endpoint of the Postfix lab and compare with two oracles.

Runs inside the lab namespace (tests/lab/netns-run.sh). Starts the lab
(tests/lab/lab.sh) in $STLS_LAB_TMP/lab and, for every endpoint listed in
its endpoints.json (plus two cross-trust cases), checks:

  lab     the oracles agree with the lab's own expectation table, so a
          broken lab fails loudly instead of making every probe look wrong;
  probe   our binary's record matches the expectation table (status, trust,
          result type and reasons, name match, expiry, TLS version);
  finger  posttls-finger, Postfix's own TLS prober, agrees with the probe on
          TLS version, cipher suite (by IANA id), chain trust, name match,
          leaf certificate and SPKI fingerprints and both EHLO replies;
  openssl openssl s_client -starttls smtp -verify_hostname agrees on version,
          cipher, the set of verification errors and the name match, and
          openssl x509 agrees on the leaf certificate's facts.

Why posttls-finger runs twice: at "-l secure" a name mismatch makes the
whole verification fail ("Untrusted"), so that run alone cannot tell a bad
chain from a bad name. At "-l encrypt" it verifies the chain but matches no
name: "Trusted"/"Untrusted" is the chain verdict alone. Together they give
both facts, the way our record keeps them apart.

Every record the binary prints is validated against the published JSON
Schema (tests/lib/stlstest.py). Prints one "ok"/"FAIL" line per check and a
final "N passed, M failed"; exits non-zero if anything failed.

Usage: test_postfix.py --bin PATH [--keep] [--lab-dir DIR]
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import stlstest  # noqa: E402

LAB_SH = os.path.join(HERE, "lab.sh")
TIMEOUT = 30

# TLS 1.3 suites (RFC 8446 B.4); OpenSSL calls them by their IANA names.
TLS13_IDS = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "TLS_AES_128_CCM_SHA256": 0x1304,
    "TLS_AES_128_CCM_8_SHA256": 0x1305,
}

# OpenSSL X509_V_ERR_* numbers -> our trust.reasons vocabulary.
# 62 (hostname mismatch) is a name fact, not a trust reason.
X509_HOSTNAME_MISMATCH = 62
X509_REASONS = {
    2: "untrusted-issuer",   # unable to get issuer certificate
    7: "bad-signature",      # certificate signature failure
    9: "not-yet-valid",
    10: "expired",
    18: "untrusted-issuer",  # self-signed certificate
    19: "untrusted-issuer",  # self-signed certificate in chain
    20: "untrusted-issuer",  # unable to get local issuer certificate
    21: "untrusted-issuer",  # unable to verify the first certificate
    22: "chain-too-long",    # certificate chain too long
    23: "revoked",
    # OpenSSL security level 1 (what Postfix's client uses from "verify"
    # up): a key or digest too weak. Our trust model is that level, and
    # calls it "bad-key" (weak key or hash).
    66: "bad-key",           # EE certificate key too weak
    67: "bad-key",           # CA certificate key too weak
    68: "bad-key",           # CA signature digest algorithm too weak
}


def weak_crypto_only(reasons):
    """Untrusted only because of a weak key or digest? Postfix checks the
    chain at OpenSSL security level 0 for may/encrypt (so posttls-finger -l
    encrypt calls it Trusted) and at level 1 from verify up, which is what
    our trust verdict models."""
    return bool(reasons) and set(reasons) <= {"bad-key"}


Results = stlstest.Results


def run(cmd, env=None, input_bytes=b""):
    """Run a helper command; return (exit code, merged stdout+stderr text)."""
    try:
        p = subprocess.run(cmd, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise AssertionError("timed out after %ss: %s" % (TIMEOUT, " ".join(cmd)))
    return p.returncode, p.stdout.decode("utf-8", "replace")


class Compare:
    """Collects every disagreement of one comparison, so a failure lists them all."""

    def __init__(self):
        self.bad = []

    def agree(self, what, ours, theirs, oracle):
        if ours != theirs:
            self.bad.append("%s: probe says %r, %s says %r" % (what, ours, oracle, theirs))

    def done(self):
        if self.bad:
            raise AssertionError("\n".join(self.bad))


def hex_id(value):
    """A cipher id as the schema writes it, for readable messages."""
    return None if value is None else "0x%04x" % value


# ---------------------------------------------------------------- ciphers

def openssl_cipher_ids():
    """Map OpenSSL cipher names to IANA ids from `openssl ciphers -V`."""
    ids = dict(TLS13_IDS)
    _, out = run(["openssl", "ciphers", "-V", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"])
    for m in re.finditer(r"0x([0-9A-Fa-f]{2}),0x([0-9A-Fa-f]{2}) - (\S+)", out):
        ids[m.group(3)] = int(m.group(1) + m.group(2), 16)
    if len(ids) < 20:
        raise AssertionError("could not read cipher ids from `openssl ciphers -V`:\n" + out[:500])
    return ids


# ---------------------------------------------------------------- oracles

class Finger:
    """What one posttls-finger run saw."""

    def __init__(self, out):
        self.out = out
        m = re.search(r"posttls-finger: (\w+) TLS connection established to \S+: "
                      r"(TLSv[\d.]+) with cipher (\S+)", out)
        self.level = m.group(1) if m else None  # Verified | Trusted | Untrusted | Anonymous
        # OpenSSL calls TLS 1.0 "TLSv1"; our records say "TLSv1.0".
        self.version = {"TLSv1": "TLSv1.0"}.get(m.group(2), m.group(2)) if m else None
        self.cipher = m.group(3) if m else None
        m = re.search(r"fingerprint=([0-9A-F:]+), pkey_fingerprint=([0-9A-F:]+)", out)
        self.fingerprint = m.group(1).replace(":", "").lower() if m else None
        self.pkey_fingerprint = m.group(2).replace(":", "").lower() if m else None
        self.ehlo, self.ehlo_tls = self._ehlo_replies(out)

    @staticmethod
    def _ehlo_replies(out):
        """Extension lists of the EHLO replies, before and after STARTTLS."""
        replies = []
        cur = None
        for line in out.splitlines():
            if line.startswith("posttls-finger: > EHLO"):
                cur = []
                replies.append(cur)
            elif line.startswith("posttls-finger: > "):
                cur = None
            elif cur is not None:
                m = re.match(r"posttls-finger: < 250[ -](.*)$", line)
                if m:
                    cur.append(m.group(1))
        # The first line of an EHLO reply is the greeting name, not an extension.
        exts = [r[1:] for r in replies]
        return (exts[0] if exts else None), (exts[1] if len(exts) > 1 else None)

    def summary(self):
        return "%s %s %s" % (self.level, self.version, self.cipher)


def finger_dest(case):
    if case["family"] == "ipv6":
        return "[ipv6:%s]:%d" % (case["ip"], case["port"])
    return "[%s]:%d" % (case["ip"], case["port"])


def run_finger(lab, case, level):
    """posttls-finger at the given level with the case's CA file and match name.

    Without -c: the SMTP chat is part of what we compare (EHLO replies).
    """
    env = dict(os.environ, MAIL_CONFIG=os.path.join(lab, "finger"))
    cmd = ["posttls-finger", "-l", level]
    if case["ca"]:
        cmd += ["-F", case["ca"]]
    cmd.append(finger_dest(case))
    if level in ("verify", "secure"):
        cmd.append(case["host"])  # other levels match no name and warn about one
    _, out = run(cmd, env=env)
    return Finger(out)


class SClient:
    """What one `openssl s_client -starttls smtp` run saw."""

    def __init__(self, out):
        self.out = out
        m = re.search(r"^New, (TLSv[\d.]+), Cipher is (\S+)", out, re.M)
        self.cipher = m.group(2) if m else None
        # The "New, ..." line names the cipher's version; the session's is
        # on the "Protocol" line (a TLS 1.1 session shows "TLSv1" there).
        p = re.search(r"^\s*Protocol\s*:\s*(TLSv[\d.]+)", out, re.M)
        v = p.group(1) if p else (m.group(1) if m else None)
        self.version = {"TLSv1": "TLSv1.0"}.get(v, v)
        # s_client's callback keeps going after an error and prints each one,
        # so this is the full set, unlike posttls-finger's first-error-only.
        self.errors = sorted({int(n) for n in re.findall(r"verify error:num=(\d+):", out)})
        self.certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
                                out, re.S)


def run_sclient(case):
    if case["family"] == "ipv6":
        connect = "[%s]:%d" % (case["ip"], case["port"])
    else:
        connect = "%s:%d" % (case["ip"], case["port"])
    cmd = ["openssl", "s_client", "-starttls", "smtp", "-connect", connect,
           "-servername", case["host"], "-verify_hostname", case["host"], "-showcerts"]
    if case["ca"]:
        cmd += ["-CAfile", case["ca"]]
    env = None
    if case.get("openssl_conf"):
        # Debian's OpenSSL refuses TLS 1.0/1.1 at its default security
        # level: the legacy-only servers need the lab's legacy openssl.cnf.
        env = dict(os.environ, OPENSSL_CONF=case["openssl_conf"])
    _, out = run(cmd, env=env)
    return SClient(out)


def openssl_cert_facts(pem):
    """The leaf facts our cert object carries, as openssl x509 sees them."""
    def x509(*args, binary=False):
        p = subprocess.run(["openssl", "x509"] + list(args), input=pem.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("openssl x509 %s failed: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout if binary else p.stdout.decode()

    der = x509("-outform", "DER", binary=True)
    pub = x509("-noout", "-pubkey")
    p = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                       stdout=subprocess.PIPE, timeout=TIMEOUT)
    text = x509("-noout", "-text")
    dates = x509("-noout", "-dates", "-serial")

    def when(key):
        s = re.search(r"^%s=(.*)$" % key, dates, re.M).group(1).strip()
        d = datetime.datetime.strptime(re.sub(r"\s+", " ", s), "%b %d %H:%M:%S %Y GMT")
        return d.replace(tzinfo=datetime.timezone.utc)

    algo = re.search(r"Public Key Algorithm: (\S+)", text).group(1)
    san = re.search(r"X509v3 Subject Alternative Name:.*?\n\s*(.*)\n", text)
    return {
        "sha256": hashlib.sha256(der).hexdigest(),
        "spki_sha256": hashlib.sha256(p.stdout).hexdigest(),
        "serial": int(re.search(r"^serial=([0-9A-Fa-f]+)", dates, re.M).group(1), 16),
        "not_before": when("notBefore"),
        "not_after": when("notAfter"),
        "key_type": {"rsaEncryption": "RSA", "id-ecPublicKey": "EC"}.get(algo, algo),
        "key_bits": int(re.search(r"Public-Key: \((\d+) bit\)", text).group(1)),
        "signature_algorithm": re.search(r"Signature Algorithm: (\S+)", text).group(1),
        "san_dns": [s[4:] for s in re.findall(r"DNS:[^,\s]+", san.group(1))] if san else [],
        "cn": re.search(r"Subject:.*?CN ?= ?([^,/\n]+)", text).group(1).strip(),
    }


def openssl_checkhost(pem, host):
    p = subprocess.run(["openssl", "x509", "-noout", "-checkhost", host], input=pem.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
    out = p.stdout.decode()
    if "does match" in out:
        return True
    if "does NOT match" in out:
        return False
    raise AssertionError("unexpected openssl x509 -checkhost output: %r" % out)


def rfc3339(s):
    return datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")


# ---------------------------------------------------------------- cases

def load_cases(lab):
    """The lab's endpoints plus cross-trust cases (right server, wrong root)."""
    with open(os.path.join(lab, "endpoints.json"), encoding="utf-8") as f:
        endpoints = json.load(f)
    if not endpoints:
        raise AssertionError("endpoints.json lists no endpoints")
    cases = [dict(e, label=e["name"]) for e in endpoints]
    by_name = {e["name"]: e for e in endpoints}
    pki = os.path.join(lab, "pki")
    untrusted = {"trusted": False, "result_type": "certificate-not-trusted",
                 "reasons": ["untrusted-issuer"]}
    for name, ca in (("mx-good", "ca-b.pem"), ("mx-b", "ca-a.pem")):
        if name not in by_name:
            raise AssertionError("endpoints.json has no %s endpoint" % name)
        e = by_name[name]
        cases.append(dict(e, label="%s+%s" % (name, ca[:-4]), ca=os.path.join(pki, ca),
                          expect=dict(e["expect"], **untrusted)))
    return cases


def check_lab_oracles(case, fsec, fenc, scl):
    """The oracles see what the lab's table promises (tests the lab itself)."""
    x = case["expect"]
    if case["tls"] == "none":
        assert fsec.level is None, "posttls-finger established TLS: %s" % fsec.summary()
        assert fsec.ehlo is not None, "posttls-finger saw no EHLO reply:\n" + fsec.out
        assert "STARTTLS" not in fsec.ehlo, "EHLO offers STARTTLS: %r" % fsec.ehlo
        return
    if x.get("legacy_only"):
        # Postfix's client runs OpenSSL at security level 1 from verify up,
        # which refuses the TLS 1.0/1.1 handshake signature; at encrypt
        # (level 0) it connects.
        assert fsec.level is None, "posttls-finger -l secure connected: %s" % fsec.summary()
        assert fenc.version == x["legacy_only"], \
            "posttls-finger -l encrypt negotiated %r, lab expects %r\n%s" % (
                fenc.version, x["legacy_only"], fenc.out)
        assert scl.version == x["legacy_only"], \
            "s_client negotiated %r, lab expects %r" % (scl.version, x["legacy_only"])
        return
    assert fsec.version in x["versions"], \
        "posttls-finger negotiated %r, lab expects %r\n%s" % (fsec.version, x["versions"], fsec.out)
    want_sec = "Verified" if x["trusted"] and x["mx_hostname"] else "Untrusted"
    assert fsec.level == want_sec, "posttls-finger -l secure: %r, want %r\n%s" % (
        fsec.level, want_sec, fsec.out)
    want_enc = "Trusted" if x["trusted"] or weak_crypto_only(x["reasons"]) else "Untrusted"
    assert fenc.level == want_enc, "posttls-finger -l encrypt: %r, want %r\n%s" % (
        fenc.level, want_enc, fenc.out)
    reasons = sorted({X509_REASONS.get(n, "other") for n in scl.errors if n != X509_HOSTNAME_MISMATCH})
    assert reasons == sorted(x["reasons"]), "s_client errors %r map to %r, want %r" % (
        scl.errors, reasons, x["reasons"])
    name_ok = X509_HOSTNAME_MISMATCH not in scl.errors
    assert name_ok == x["mx_hostname"], "s_client hostname check %r, want %r" % (name_ok, x["mx_hostname"])


class Pred:
    """A named predicate for stlstest.expect, so failures print what was wanted."""

    def __init__(self, desc, fn):
        self.desc = self.__name__ = desc
        self.fn = fn

    def __call__(self, value):
        return self.fn(value)

    def __repr__(self):
        return self.desc


def check_probe_expect(case, rec):
    """Our record against the lab's expectation table."""
    x = case["expect"]
    family = case["family"]
    table = {
        "mx": case["host"], "ip": case["ip"], "port": case["port"], "family": family,
        "status": x["status"], "error": None,
        "banner": Pred("starts with '220 %s '" % case["host"],
                       lambda b: isinstance(b, str) and b.startswith("220 %s " % case["host"])),
    }
    if case["tls"] == "none":
        table.update({
            "tls": None,
            "ehlo.extensions": Pred("no STARTTLS", lambda e: "STARTTLS" not in e),
            "starttls": Pred("null or offered=false",
                             lambda s: s is None or s.get("offered") is False),
        })
    elif x.get("legacy_only"):
        table.update({
            "error.stage": "handshake",
            "error.code": "TLS_LEGACY_ONLY",
            "starttls.offered": True,
            "tls.version": x["legacy_only"],
            "tls.legacy_only": x["legacy_only"],
            "tls.trust.trusted": x["trusted"],
            "tls.names.mx_hostname": x["mx_hostname"],
            "tls.expired": x["expired"],
            "ehlo_tls": None,
        })
        del table["error"]
    else:
        table.update({
            "starttls.offered": True,
            "tls.version": Pred("one of %r" % x["versions"], lambda v: v in x["versions"]),
            "tls.trust.trusted": x["trusted"],
            "tls.trust.result_type": x["result_type"],
            "tls.trust.reasons": Pred("%r in any order" % x["reasons"],
                                      lambda r: sorted(r) == sorted(x["reasons"])),
            "tls.names.mx_hostname": x["mx_hostname"],
            "tls.expired": x["expired"],
            "ehlo_tls": Pred("present, without STARTTLS",
                             lambda e: e is not None and "STARTTLS" not in e["extensions"]),
        })
    stlstest.expect(rec, table)


def check_finger(rec, fsec, fenc, ids):
    """Probe vs posttls-finger."""
    tls = rec["tls"]
    if tls.get("legacy_only"):
        # Only -l encrypt (OpenSSL security level 0) gets a session.
        assert fenc.level, "posttls-finger -l encrypt established no TLS session:\n" + fenc.out
        c = Compare()
        c.agree("TLS version", tls["version"], fenc.version, "posttls-finger -l encrypt")
        c.agree("cipher id", tls["cipher"]["id"], hex_id(ids[fenc.cipher]),
                "posttls-finger -l encrypt (%s)" % fenc.cipher)
        c.agree("chain trusted", tls["trust"]["trusted"], fenc.level == "Trusted",
                "posttls-finger -l encrypt (%s)" % fenc.level)
        c.agree("no session from verify up", None, fsec.level, "posttls-finger -l secure")
        c.agree("leaf sha256", tls["chain"][0]["sha256"], fenc.fingerprint, "posttls-finger")
        c.done()
        return
    assert fsec.level, "posttls-finger established no TLS session:\n" + fsec.out
    assert fsec.cipher in ids, "unknown OpenSSL cipher name %r" % fsec.cipher
    c = Compare()
    c.agree("TLS version", tls["version"], fsec.version, "posttls-finger")
    c.agree("cipher id", tls["cipher"]["id"], hex_id(ids[fsec.cipher]),
            "posttls-finger (%s)" % fsec.cipher)
    if weak_crypto_only(tls["trust"]["reasons"]):
        # Level 0 at encrypt accepts weak crypto; compare with the level-1
        # verdict of the secure run instead.
        c.agree("chain trusted", tls["trust"]["trusted"], fsec.level == "Verified",
                "posttls-finger -l secure (%s)" % fsec.level)
    else:
        c.agree("chain trusted", tls["trust"]["trusted"], fenc.level == "Trusted",
                "posttls-finger -l encrypt (%s)" % fenc.level)
    c.agree("trusted and name matched", tls["trust"]["trusted"] and tls["names"]["mx_hostname"],
            fsec.level == "Verified", "posttls-finger -l secure (%s)" % fsec.level)
    c.agree("leaf sha256", tls["chain"][0]["sha256"], fsec.fingerprint, "posttls-finger")
    c.agree("leaf spki_sha256", tls["chain"][0]["spki_sha256"], fsec.pkey_fingerprint,
            "posttls-finger")
    c.done()


def check_finger_ehlo(rec, fsec):
    c = Compare()
    c.agree("EHLO extensions", rec["ehlo"]["extensions"] if rec["ehlo"] else None,
          fsec.ehlo, "posttls-finger")
    if rec.get("tls"):
        c.agree("EHLO extensions after STARTTLS",
                rec["ehlo_tls"]["extensions"] if rec["ehlo_tls"] else None,
                fsec.ehlo_tls, "posttls-finger")
    c.done()


def check_sclient(case, rec, scl, ids):
    """Probe vs openssl s_client (version, cipher, verification, name)."""
    tls = rec["tls"]
    assert scl.version, "s_client established no TLS session:\n" + scl.out[-2000:]
    assert scl.certs, "s_client printed no certificates"
    c = Compare()
    c.agree("TLS version", tls["version"], scl.version, "s_client")
    c.agree("cipher id", tls["cipher"]["id"], hex_id(ids.get(scl.cipher)),
            "s_client (%s)" % scl.cipher)
    reasons = sorted({X509_REASONS.get(n, "other") for n in scl.errors if n != X509_HOSTNAME_MISMATCH})
    c.agree("trust reasons", sorted(tls["trust"]["reasons"]), reasons,
            "s_client (verify errors %r)" % scl.errors)
    c.agree("trusted", tls["trust"]["trusted"], not reasons, "s_client")
    c.agree("names.mx_hostname", tls["names"]["mx_hostname"],
            X509_HOSTNAME_MISMATCH not in scl.errors, "s_client -verify_hostname")
    c.agree("names.mx_hostname", tls["names"]["mx_hostname"],
            openssl_checkhost(scl.certs[0], case["host"]), "openssl x509 -checkhost")
    c.agree("chain length", len(tls["chain"]), len(scl.certs), "s_client -showcerts")
    c.done()


def check_cert_facts(rec, scl):
    """Every chain entry's facts vs openssl x509 on the certificates as sent."""
    chain = rec["tls"]["chain"]
    assert len(chain) == len(scl.certs), "chain has %d certs, server sent %d" % (
        len(chain), len(scl.certs))
    now = datetime.datetime.now(datetime.timezone.utc)
    facts = [openssl_cert_facts(pem) for pem in scl.certs]
    c = Compare()
    for i, (ours, o) in enumerate(zip(chain, facts)):
        w = "chain[%d]." % i
        c.agree(w + "sha256", ours["sha256"], o["sha256"], "openssl")
        c.agree(w + "spki_sha256", ours["spki_sha256"], o["spki_sha256"], "openssl")
        c.agree(w + "serial", int(ours["serial"], 16), o["serial"], "openssl")
        c.agree(w + "not_before", rfc3339(ours["not_before"]), o["not_before"], "openssl")
        c.agree(w + "not_after", rfc3339(ours["not_after"]), o["not_after"], "openssl")
        c.agree(w + "key.type", ours["key"]["type"], o["key_type"], "openssl")
        c.agree(w + "key.bits", ours["key"]["bits"], o["key_bits"], "openssl")
        c.agree(w + "signature_algorithm", ours["signature_algorithm"],
                o["signature_algorithm"], "openssl")
        c.agree(w + "san_dns", sorted(ours["san_dns"]), sorted(o["san_dns"]), "openssl")
        c.agree(w + "subject names CN", "CN=%s" % o["cn"] in ours["subject"], True,
                "openssl (CN %r)" % o["cn"])
    c.agree("tls.expired", rec["tls"]["expired"], facts[0]["not_after"] < now,
            "openssl (leaf notAfter)")
    c.done()


def run_case(res, lab, case, bin_path, ids):
    label = case["label"]
    fsec = res.attempt("%s: posttls-finger -l secure" % label,
                       lambda: run_finger(lab, case, "secure"))
    tls = case["tls"] != "none"
    fenc = scl = None
    if tls:
        fenc = res.attempt("%s: posttls-finger -l encrypt" % label,
                           lambda: run_finger(lab, case, "encrypt"))
        scl = res.attempt("%s: openssl s_client" % label, lambda: run_sclient(case))
    if fsec and (fenc and scl or not tls):
        res.check("%s: lab: oracles see the expected server" % label,
                  lambda: check_lab_oracles(case, fsec, fenc, scl))

    if bin_path is None:
        return
    args = [case["host"], "--ip", case["ip"]]
    if case["ca"]:
        args += ["--ca-file", case["ca"]]
    rec = res.check("%s: probe ran, one schema-valid record" % label,
                    lambda: stlstest.run_probe(bin_path, args, timeout=TIMEOUT))
    if rec is None:
        return
    res.check("%s: probe: expected %s" % (label, case["expect"]["status"]),
              lambda: check_probe_expect(case, rec))
    if fsec:
        res.check("%s: probe vs posttls-finger: EHLO extensions" % label,
                  lambda: check_finger_ehlo(rec, fsec))
    if not tls or not rec.get("tls"):
        return
    if fsec and fenc:
        res.check("%s: probe vs posttls-finger: version, cipher, trust, name, fingerprints" % label,
                  lambda: check_finger(rec, fsec, fenc, ids))
    if scl:
        res.check("%s: probe vs s_client: version, cipher, verify errors, name" % label,
                  lambda: check_sclient(case, rec, scl, ids))
        res.check("%s: probe vs openssl x509: certificate facts" % label,
                  lambda: check_cert_facts(rec, scl))
    if "+" not in label:  # the cross-trust variants add nothing here
        res.check("%s: --versions vs posttls-finger -p, version by version" % label,
                  lambda: check_versions(lab, case, bin_path))


# posttls-finger -p spelling of one protocol version.
FINGER_PROTOCOLS = {"TLSv1.0": ">=TLSv1,<=TLSv1", "TLSv1.1": ">=TLSv1.1,<=TLSv1.1",
                    "TLSv1.2": ">=TLSv1.2,<=TLSv1.2", "TLSv1.3": ">=TLSv1.3"}


def finger_accepts(lab, case, version):
    """Does posttls-finger, limited to one version, get a TLS session?"""
    env = dict(os.environ, MAIL_CONFIG=os.path.join(lab, "finger"))
    cmd = ["posttls-finger", "-c", "-l", "encrypt", "-p", FINGER_PROTOCOLS[version]]
    if case["ca"]:
        cmd += ["-F", case["ca"]]
    cmd.append(finger_dest(case))
    _, out = run(cmd, env=env)
    return Finger(out).level is not None


def check_versions(lab, case, bin_path):
    """--versions against posttls-finger limited to each version in turn
    (SSLv3 is left out: OpenSSL 3 cannot speak it)."""
    args = [case["host"], "--ip", case["ip"], "--versions"]
    if case["ca"]:
        args += ["--ca-file", case["ca"]]
    rec = stlstest.run_probe(bin_path, args, timeout=TIMEOUT)
    ours = rec["protocol_versions"]
    c = Compare()
    for v in FINGER_PROTOCOLS:
        c.agree("%s accepted" % v, ours[v]["accepted"], finger_accepts(lab, case, v),
                "posttls-finger -p '%s' (ours: %s)" % (FINGER_PROTOCOLS[v], ours[v]["how"]))
    c.done()


def lab_ctl(action, lab):
    p = subprocess.run([LAB_SH, action, lab], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    if p.returncode != 0:
        raise AssertionError("lab.sh %s %s failed (exit %d):\n%s" % (
            action, lab, p.returncode, p.stdout.decode("utf-8", "replace")))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="path to the starttls-scan binary")
    ap.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    ap.add_argument("--lab-dir", help="lab directory (default: $STLS_LAB_TMP/lab)")
    opts = ap.parse_args()

    res = Results()
    if os.environ.get("STLS_IN_NETNS") != "1":
        res.fail("lab namespace", "run me through tests/lab/netns-run.sh (STLS_IN_NETNS != 1)")
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1
    lab = opts.lab_dir or os.path.join(os.environ.get("STLS_LAB_TMP", ""), "lab")
    if not opts.lab_dir and not os.environ.get("STLS_LAB_TMP"):
        res.fail("lab directory", "STLS_LAB_TMP is not set and no --lab-dir given")
        print("%d passed, %d failed" % (res.passed, res.failed))
        return 1

    # A missing binary is a failure, but the oracle-vs-lab checks still run,
    # so the lab can be validated on its own.
    bin_path = os.path.abspath(opts.bin)
    if not (os.path.isfile(bin_path) and os.access(bin_path, os.X_OK)):
        res.fail("probe binary", "%s is not an executable file" % bin_path)
        bin_path = None

    ids = res.attempt("cipher id table from openssl ciphers -V", openssl_cipher_ids)
    started = res.check("lab starts (lab.sh start %s)" % lab, lambda: lab_ctl("start", lab))
    if started:
        cases = res.attempt("endpoints.json", lambda: load_cases(lab))
        try:
            for case in cases or []:
                run_case(res, lab, case, bin_path, ids or {})
        finally:
            if opts.keep:
                print("# lab left running in %s" % lab)
            else:
                res.check("lab stops", lambda: lab_ctl("stop", lab))

    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
