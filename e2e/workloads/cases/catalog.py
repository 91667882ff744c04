#!/usr/bin/env python3
"""tracecam field case 1 (CPU): a product catalogue API, run the way Python
web apps usually are in production: a pre-forked pool of single-threaded
worker processes (gunicorn's "sync" workers) sharing one listening socket.

    python3 catalog.py --port 0 [--bind 127.0.0.1] [--workers 2] [--items 20000]

Prints one line once every worker is serving:  READY port=<port> pid=<pid>

    GET /export         serialises the whole catalogue (~6 MB of JSON) and
                        answers with its size and digest: the CPU spike
    GET /item?id=N      one product, a few hundred bytes of JSON: cheap
    GET /health         nothing

Ground truth: X-Handler-CPU-Us, the serving thread's own CPU time
(time.thread_time) from the start of the handler to the response; /export
also X-JSON-Bytes, the size of the document it built. And on stdout, after
each traced response is written, the thread's account of the whole request,
from its request line to its last byte (a TRUTH line, ../truth.py).
"""

import argparse
import ctypes
import ctypes.util
import hashlib
import json
import os
import random
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import truth  # noqa: E402

PR_SET_NAME = 15
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def set_thread_name(name):
    if _libc is not None:
        _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def build_catalog(n):
    rnd = random.Random(42)
    words = ["steel", "oak", "linen", "cotton", "walnut", "brass", "copper", "glass",
             "granite", "leather", "wool", "bamboo", "cedar", "marble", "silk", "jute"]
    items = []
    for i in range(n):
        items.append({
            "id": i,
            "sku": "SKU-%06d" % i,
            "name": "%s %s %s" % (rnd.choice(words).title(), rnd.choice(words), rnd.choice(["chair", "table", "lamp", "shelf", "rug"])),
            "price": {"amount": round(rnd.uniform(5, 900), 2), "currency": "EUR"},
            "stock": rnd.randint(0, 500),
            "tags": rnd.sample(words, 4),
            "dimensions": {"w": rnd.randint(10, 200), "h": rnd.randint(10, 200), "d": rnd.randint(10, 200)},
            "description": " ".join(rnd.choice(words) for _ in range(12)),
        })
    return {"version": 7, "generated": "2026-11-27T00:00:00Z", "items": items}


CATALOG = None


class Handler(truth.HandlerMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "catalog/1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def send(self, body, headers):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        t0 = time.thread_time()
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        headers = {}
        if u.path == "/export":
            doc = json.dumps(CATALOG).encode()
            digest = hashlib.sha256(doc).hexdigest()
            body = json.dumps({"items": len(CATALOG["items"]), "bytes": len(doc), "sha256": digest}).encode()
            headers["X-JSON-Bytes"] = str(len(doc))
        elif u.path == "/item":
            i = int(q.get("id", ["0"])[0]) % len(CATALOG["items"])
            body = json.dumps(CATALOG["items"][i]).encode()
        elif u.path == "/health":
            body = b'{"ok":true}'
        else:
            self.send_error(404)
            return
        headers["X-Handler-CPU-Us"] = str(int((time.thread_time() - t0) * 1e6))
        self.send(body, headers)


def serve(sock, n):
    set_thread_name("worker-%d" % n)
    srv = HTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
    srv.socket.close()
    srv.socket = sock
    srv.serve_forever()


def main():
    global CATALOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--items", type=int, default=20000)
    args = ap.parse_args()

    CATALOG = build_catalog(args.items)  # before the fork: shared copy-on-write
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    sock.listen(1024)
    children = []
    for n in range(1, args.workers + 1):
        pid = os.fork()
        if pid == 0:
            try:
                serve(sock, n)
            finally:
                os._exit(0)
        children.append(pid)
    set_thread_name("arbiter")
    sys.stdout.write("READY port=%d pid=%d\n" % (sock.getsockname()[1], os.getpid()))
    sys.stdout.flush()

    def stop(*_):
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break


if __name__ == "__main__":
    main()
