#!/usr/bin/env python3
"""tracecam field case 2 (DNS by service name): two services of a shop, each
run in its own network namespace as a pod would be.

    python3 shop.py --role backend  --port 8080 [--bind 0.0.0.0]
    python3 shop.py --role frontend --port 8080 --backend backend:8080

Prints one line once listening:  READY port=<port> pid=<pid>

backend:
    GET /price?sku=N    looks the price up (a 20 ms query, a sleep here)
frontend:
    GET /checkout       calls the backend by its service name, exactly as an
                        HTTP client library does: getaddrinfo(name) through
                        the pod's /etc/resolv.conf (glibc: search list,
                        ndots, A and AAAA in parallel, timeout and retry),
                        then GET /price on a new connection, forwarding the
                        request's traceparent
    GET /health         nothing

Both reply with Content-Length and one thread per connection. Ground truth,
in response headers of /checkout: X-Resolve-Us (the getaddrinfo call),
X-Backend-Us (connect + request + response), X-Backend-Addr (what the name
resolved to).
"""

import argparse
import ctypes
import ctypes.util
import http.client
import itertools
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PR_SET_NAME = 15
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover
    _libc = None
_ids = itertools.count(1)


def set_thread_name(name):
    if _libc is not None:
        _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self):
        set_thread_name("worker-%d" % next(_ids))
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, headers=None):
        body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        role = self.server.role
        if u.path == "/health":
            self.reply(200, "ok\n")
        elif role == "backend" and u.path == "/price":
            time.sleep(0.020)  # the price lookup
            self.reply(200, "sku %s price 42.00\n" % q.get("sku", ["1"])[0])
        elif role == "frontend" and u.path == "/checkout":
            self.checkout()
        else:
            self.reply(404, "not found\n")

    def checkout(self):
        host, port = self.server.backend
        t0 = time.monotonic()
        try:
            infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except socket.gaierror as e:
            self.reply(502, "resolving %s: %s\n" % (host, e),
                       {"X-Resolve-Us": str(int((time.monotonic() - t0) * 1e6))})
            return
        t1 = time.monotonic()
        addr = infos[0][4]
        conn = http.client.HTTPConnection(addr[0], addr[1], timeout=30)
        headers = {"Host": "%s:%d" % (host, port)}
        tp = self.headers.get("traceparent")
        if tp:
            headers["traceparent"] = tp
        try:
            conn.request("GET", "/price?sku=7", headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        t2 = time.monotonic()
        self.reply(200, "checkout ok: %s" % body.decode(errors="replace"), {
            "X-Resolve-Us": str(int((t1 - t0) * 1e6)),
            "X-Backend-Us": str(int((t2 - t1) * 1e6)),
            "X-Backend-Addr": "%s:%d" % (addr[0], addr[1]),
        })


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=["frontend", "backend"], required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--backend", default="backend:8080", help="frontend: the backend's service name:port")
    args = ap.parse_args()
    srv = Server((args.bind, args.port), Handler)
    srv.role = args.role
    host, _, port = args.backend.rpartition(":")
    srv.backend = (host, int(port))
    sys.stdout.write("READY port=%d pid=%d\n" % (srv.server_address[1], os.getpid()))
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
