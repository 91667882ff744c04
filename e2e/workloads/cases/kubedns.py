#!/usr/bin/env python3
"""tracecam field case 2: a cluster DNS server (a stand-in for kube-dns /
CoreDNS), UDP, hand-encoded, stdlib only.

    python3 kubedns.py --bind 10.77.0.10 --port 53 \
        --record backend.shop.svc.cluster.local=10.77.0.3 [--record NAME=IP ...]

Answers like CoreDNS's kubernetes plugin for a service with an IPv4
ClusterIP: A for a known name -> its address; AAAA for a known name ->
NOERROR with no answer; any other name -> NXDOMAIN. Authoritative, TTL 5.

Fault: after SIGUSR1 it drops the next query it receives (as a lost UDP
packet — e.g. the conntrack race that loses one of two parallel queries
from one socket — would): the client hears nothing and must time out and
retry.

Prints READY port=<port> pid=<pid> once listening, then one line per query:
    QUERY id=<id> name=<name> type=<A|AAAA|n> action=<answer|nodata|nxdomain|drop>
"""

import argparse
import os
import signal
import socket
import struct
import sys
import threading

TYPES = {1: "A", 28: "AAAA"}


def parse_question(pkt):
    if len(pkt) < 12:
        raise ValueError("short")
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if qd < 1:
        raise ValueError("no question")
    off, labels = 12, []
    while True:
        n = pkt[off]
        off += 1
        if n == 0:
            break
        labels.append(pkt[off:off + n].decode("ascii", "replace"))
        off += n
    qtype, qclass = struct.unpack("!HH", pkt[off:off + 4])
    return qid, flags, ".".join(labels).lower(), qtype, off + 4


def response(pkt, qend, flags, rcode, ip=None):
    qid = struct.unpack("!H", pkt[:2])[0]
    out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    an = 1 if ip else 0
    out = struct.pack("!HHHHHH", qid, out_flags, 1, an, 0, 0) + pkt[12:qend]
    if ip:
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(ip)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--record", action="append", default=[], help="NAME=IPv4")
    args = ap.parse_args()
    records = {}
    for r in args.record:
        name, _, ip = r.partition("=")
        records[name.lower().rstrip(".")] = ip

    drop = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: drop.set())

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    sys.stdout.write("READY port=%d pid=%d\n" % (sock.getsockname()[1], os.getpid()))
    sys.stdout.flush()
    while True:
        try:
            pkt, peer = sock.recvfrom(4096)
        except InterruptedError:
            continue
        try:
            qid, flags, name, qtype, qend = parse_question(pkt)
        except (ValueError, IndexError, struct.error):
            continue
        if drop.is_set():
            drop.clear()
            action, resp = "drop", None
        elif name in records:
            if qtype == 1:
                action, resp = "answer", response(pkt, qend, flags, 0, records[name])
            else:
                action, resp = "nodata", response(pkt, qend, flags, 0)
        else:
            action, resp = "nxdomain", response(pkt, qend, flags, 3)
        sys.stdout.write("QUERY id=%d name=%s type=%s action=%s\n" % (qid, name, TYPES.get(qtype, qtype), action))
        sys.stdout.flush()
        if resp:
            sock.sendto(resp, peer)


if __name__ == "__main__":
    main()
