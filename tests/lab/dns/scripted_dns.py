#!/usr/bin/python3
"""A DNS server that sends answers no real server sends, one per query name.

Runs only inside the lab namespace (tests/lab/netns-run.sh). Listens on UDP
and TCP ADDR:53 and answers each question from the SCENARIOS table below; a
name not in the table gets REFUSED. Every answer is built byte by byte, so a
test can put a compression pointer wherever it likes. "tc-NAME" is NAME's
scenario over TCP only: the UDP answer is empty and truncated (TC), and the
TCP answer is written in small pieces, so the resolver must reassemble it.

Usage: scripted_dns.py ADDR   (prints "ready" on stdout once bound)
"""

import os
import socket
import struct
import sys
import threading
import time

MX, A, AAAA, CNAME = 15, 1, 28, 5


def name(text):
    """A name in wire form, no compression."""
    out = b""
    for label in filter(None, text.split(".")):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def ptr(offset):
    return struct.pack("!H", 0xC000 | offset)


def rr(owner, rtype, rdata):
    return owner + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata


# Each scenario gives the answer records for an MX question; the question
# name is at offset 12, so ptr(12) is the name asked for.
SCENARIOS = {
    # RFC 7505 null MX, the root written as a single zero octet: null-mx.
    "null.hostile.test": lambda: [rr(ptr(12), MX, struct.pack("!H", 0) + b"\0")],
    # The exchange points at offset 0: the header read as a name. Malformed.
    "ptr0.hostile.test": lambda: [rr(ptr(12), MX, struct.pack("!H", 0) + ptr(0))],
    # Offset 4: QDCOUNT's high byte (0) read as the root label. Malformed,
    # although it decodes to "." and looks like a null MX.
    "ptr4.hostile.test": lambda: [rr(ptr(12), MX, struct.pack("!H", 0) + ptr(4))],
    # Offset 6: ANCOUNT's high byte, the same trick.
    "ptr6.hostile.test": lambda: [rr(ptr(12), MX, struct.pack("!H", 10) + ptr(6))],
    # A sound MX whose host's A answer has an owner pointing into the
    # header (read as the root): the address lookup is malformed.
    "mxa.hostile.test": lambda: [rr(ptr(12), MX, struct.pack("!H", 10) + name("a.hostile.test"))],
    # The owner of the MX record points into the header.
    "owner4.hostile.test": lambda: [rr(ptr(4), MX, struct.pack("!H", 10) + name("mx.hostile.test"))],
}


def answer(query, tcp=False):
    if len(query) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    if qd != 1 or flags & 0x8000:
        return None
    end = 12
    labels = []
    while end < len(query) and query[end] != 0:
        n = query[end]
        if n > 63:
            return None
        labels.append(query[end + 1:end + 1 + n].decode("ascii", "replace"))
        end += 1 + n
    end += 1
    if end + 4 > len(query):
        return None
    qtype = struct.unpack("!H", query[end:end + 2])[0]
    question = query[12:end + 4]
    qname = ".".join(labels).lower()
    recs = []
    rcode = 0
    tc = 0
    if qname.startswith("tc-") and qname[3:] in SCENARIOS and not tcp:
        tc = 0x0200  # ask again over TCP
    elif qname.startswith("tc-") and qname[3:] in SCENARIOS and qtype == MX:
        recs = SCENARIOS[qname[3:]]()
    elif qname.startswith("tc-") and qname[3:] in SCENARIOS:
        recs = []
    elif qname in SCENARIOS and qtype == MX:
        recs = SCENARIOS[qname]()
    elif qname == "a.hostile.test" and qtype == A:
        recs = [rr(ptr(4), A, bytes([127, 0, 0, 1]))]
    elif qname == "a.hostile.test":
        recs = []
    elif qname in SCENARIOS:
        recs = []  # NODATA for anything else about these names
    else:
        rcode = 5  # REFUSED
    # QR, opcode 0, AA, RD copied, RA; no EDNS in the answer (allowed).
    rflags = 0x8000 | 0x0400 | tc | (flags & 0x0100) | 0x0080 | rcode
    head = struct.pack("!HHHHHH", qid, rflags, 1, len(recs), 0, 0)
    return head + question + b"".join(recs)


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def tcp_client(conn):
    """Answer length-prefixed queries; each answer goes out in pieces (the
    length split from the message, the message cut in three)."""
    with conn:
        while True:
            head = read_exact(conn, 2)
            if head is None:
                return
            query = read_exact(conn, struct.unpack("!H", head)[0])
            if query is None:
                return
            reply = answer(query, tcp=True)
            if reply is None:
                continue
            msg = struct.pack("!H", len(reply)) + reply
            for piece in (msg[:1], msg[1:7], msg[7:20], msg[20:]):
                if piece:
                    conn.sendall(piece)
                    time.sleep(0.01)


def tcp_serve(addr):
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, 53))
    t.listen(16)
    return t


def tcp_loop(t):
    while True:
        conn, _ = t.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=tcp_client, args=(conn,), daemon=True).start()


def main():
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("scripted_dns: run me inside tests/lab/netns-run.sh")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 53))
    t = tcp_serve(sys.argv[1])
    threading.Thread(target=tcp_loop, args=(t,), daemon=True).start()
    print("ready", flush=True)
    while True:
        query, peer = s.recvfrom(4096)
        reply = answer(query)
        if reply is not None:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
