#!/usr/bin/env python3
"""tracecam e2e workload: a tiny UDP DNS server (hand-encoded, stdlib only).

Answers A queries:
    slow.*   -> 127.0.0.1 after --delay-ms (default 300)
    nx.*     -> NXDOMAIN
    anything else -> 127.0.0.1 immediately
Non-A queries for existing names get NOERROR with no answers. Each query is
handled on its own thread, so a slow answer never delays a fast one.

    python3 dnsserver.py --bind 127.0.0.1 --port 0 [--delay-ms 300]

Prints exactly one line to stdout once listening:

    READY port=<port> pid=<pid>
"""

import argparse
import os
import socketserver
import struct
import sys
import time

QTYPE_A = 1
QCLASS_IN = 1
RCODE_FORMERR = 1
RCODE_NXDOMAIN = 3


def parse_question(pkt):
    """Return (qid, flags, qname(str), qtype, qclass, end_offset) or raise ValueError."""
    if len(pkt) < 12:
        raise ValueError("short header")
    qid, flags, qdcount = struct.unpack("!HHH", pkt[:6])
    if qdcount < 1:
        raise ValueError("no question")
    off = 12
    labels = []
    while True:
        if off >= len(pkt):
            raise ValueError("truncated name")
        n = pkt[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            raise ValueError("compression in question")
        labels.append(pkt[off:off + n].decode("ascii", "replace"))
        off += n
    if off + 4 > len(pkt):
        raise ValueError("truncated question")
    qtype, qclass = struct.unpack("!HH", pkt[off:off + 4])
    return qid, flags, ".".join(labels), qtype, qclass, off + 4


def build_response(pkt, rcode, answer_ip=None):
    """Build a response echoing pkt's first question."""
    qid, qflags, _name, qtype, qclass, qend = parse_question(pkt)
    flags = 0x8000 | 0x0400 | (qflags & 0x0100) | 0x0080 | rcode  # QR AA RD(copy) RA
    ancount = 1 if (answer_ip and rcode == 0 and qtype == QTYPE_A and qclass == QCLASS_IN) else 0
    out = struct.pack("!HHHHHH", qid, flags, 1, ancount, 0, 0) + pkt[12:qend]
    if ancount:
        out += struct.pack("!HHHIH", 0xC00C, QTYPE_A, QCLASS_IN, 60, 4)
        out += bytes(int(p) for p in answer_ip.split("."))
    return out


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        pkt, sock = self.request
        try:
            _qid, _flags, name, _qtype, _qclass, _ = parse_question(pkt)
        except ValueError:
            if len(pkt) >= 2:
                sock.sendto(pkt[:2] + struct.pack("!HHHHH", 0x8000 | RCODE_FORMERR, 0, 0, 0, 0),
                            self.client_address)
            return
        lname = name.lower()
        if lname.startswith("nx."):
            resp = build_response(pkt, RCODE_NXDOMAIN)
        else:
            if lname.startswith("slow."):
                time.sleep(self.server.delay_ms / 1000.0)
            resp = build_response(pkt, 0, "127.0.0.1")
        sock.sendto(resp, self.client_address)


class Server(socketserver.ThreadingUDPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description="tiny UDP DNS server for tracecam e2e")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--delay-ms", type=int, default=300, help="delay for slow.* names")
    args = ap.parse_args()
    srv = Server((args.bind, args.port), Handler)
    srv.delay_ms = args.delay_ms
    sys.stdout.write("READY port=%d pid=%d\n" % (srv.server_address[1], os.getpid()))
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
