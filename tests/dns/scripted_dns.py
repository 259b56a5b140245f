#!/usr/bin/python3
"""A DNS server that sends answers no real server sends, one per query name.

Runs only inside the lab namespace (tests/lab/netns-run.sh). Listens on UDP
ADDR:53 and answers each question from the SCENARIOS table below; a name
not in the table gets REFUSED. Every answer is built byte by byte, so a
test can put a compression pointer wherever it likes.

Usage: scripted_dns.py ADDR   (prints "ready" on stdout once bound)
"""

import os
import socket
import struct
import sys

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


def answer(query):
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
    if qname in SCENARIOS and qtype == MX:
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
    rflags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    head = struct.pack("!HHHHHH", qid, rflags, 1, len(recs), 0, 0)
    return head + question + b"".join(recs)


def main():
    if os.environ.get("STLS_IN_NETNS") != "1":
        sys.exit("scripted_dns: run me inside tests/lab/netns-run.sh")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 53))
    print("ready", flush=True)
    while True:
        query, peer = s.recvfrom(4096)
        reply = answer(query)
        if reply is not None:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main()
