#!/usr/bin/env python3
"""tracecam field case 3 (slow storage): an orders service that keeps its
data in files on a volume (in a cluster: a PersistentVolume on network
storage), a thread per connection (ThreadingHTTPServer).

    python3 orders.py --port 0 --data-dir /mnt/volume [--bind 127.0.0.1]

Prints one line once listening:  READY port=<port> pid=<pid>

    GET /order?id=N     reads order N: 4 records of 4 KiB from orders.db
                        (pread), then its customer's record from customers.db
    GET /order/new      appends a 4 KiB record to journal.log, then fsync
    GET /catalog        a page of the catalogue, from memory (no storage)
    GET /health         nothing

The files live in --data-dir; orders.db and customers.db must exist there
(the test creates them). Ground truth, in the X-File-Us response header:
for each file the handler touched, the wall time it spent in that file's
syscalls ("orders.db=61234,customers.db=40321"), from time.monotonic.
"""

import argparse
import ctypes
import ctypes.util
import itertools
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RECORD = 4096
PR_SET_NAME = 15
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # pragma: no cover
    _libc = None
_ids = itertools.count(1)

CATALOG = json.dumps([{"id": i, "name": "item %d" % i, "price": i * 3 % 97} for i in range(200)]).encode()


def set_thread_name(name):
    if _libc is not None:
        _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


class Timer:
    """Wall time spent in each file's syscalls, by file name."""

    def __init__(self):
        self.us = {}

    def run(self, name, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.us[name] = self.us.get(name, 0) + int((time.monotonic() - t0) * 1e6)

    def header(self):
        return ",".join("%s=%d" % kv for kv in sorted(self.us.items()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orders/1"
    sys_version = ""

    def setup(self):
        set_thread_name("worker-%d" % next(_ids))
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def path_of(self, name):
        return os.path.join(self.server.data_dir, name)

    def read_records(self, timer, name, first, n):
        fd = os.open(self.path_of(name), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            out = []
            for i in range(n):
                off = ((first + i) * RECORD) % max(size - RECORD, 1)
                out.append(timer.run(name, os.pread, fd, RECORD, off))
            return out
        finally:
            os.close(fd)

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        timer = Timer()
        if u.path == "/order":
            oid = int(q.get("id", ["1"])[0])
            recs = self.read_records(timer, "orders.db", oid * 4, 4)
            cust = self.read_records(timer, "customers.db", oid % 100, 1)
            body = json.dumps({"order": oid, "bytes": sum(map(len, recs)) + len(cust[0])}).encode()
        elif u.path == "/order/new":
            fd = os.open(self.path_of("journal.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                timer.run("journal.log", os.write, fd, b"o" * RECORD)
                timer.run("journal.log", os.fsync, fd)
            finally:
                os.close(fd)
            body = b'{"created":true}'
        elif u.path == "/catalog":
            body = CATALOG
        elif u.path == "/health":
            body = b'{"ok":true}'
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-File-Us", timer.header())
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--data-dir", required=True)
    args = ap.parse_args()
    srv = Server((args.bind, args.port), Handler)
    srv.data_dir = args.data_dir
    sys.stdout.write("READY port=%d pid=%d\n" % (srv.server_address[1], os.getpid()))
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
