#!/usr/bin/env python3
"""tracecam e2e workload: a Flask app served by gunicorn (Debian's gunicorn
and python3-flask), with its sync workers (a process per request) or its
gthread workers (a thread pool), as Python web apps run in production.

    /usr/bin/python3 wsgiapp.py --port 0 [--bind 127.0.0.1] [--worker-class sync|gthread]
        [--data-dir DIR] [--downstream HOST:PORT]

Prints `READY port=<port> pid=<pid>` once gunicorn's arbiter is up (the socket
is bound here and handed to gunicorn, so port 0 works), and after each traced
request a TRUTH line (truth.py) from the worker thread that served it: its CPU
clock and run delay from the app's call to the moment gunicorn closed the
response (after writing it).

    GET /cpu?ms=200         burn ~ms of thread CPU
    GET /sleep?ms=200       time.sleep
    GET /downstream?ms=200  TCP round trip to --downstream (slowserver.py)
    GET /fsync?n=10&kb=16   n x (write + os.fsync)
    GET /lock?ms=200        wait for a lock a "lock-holder" thread holds ~ms
    GET /fast               immediate reply
"""

import ctypes
import ctypes.util
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving  # noqa: E402
import truth  # noqa: E402

from flask import Flask, request  # noqa: E402
from gunicorn.app.base import BaseApplication  # noqa: E402

flask_app = Flask(__name__)
DATA_DIR = tempfile.mkdtemp(prefix="wsgiapp-")
DOWNSTREAM = None
LOCK = threading.Lock()

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def thread_name(name):
    _libc.prctl(15, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


@flask_app.get("/cpu")
def cpu():
    ms = request.args.get("ms", 200, type=int)
    deadline = time.thread_time_ns() + ms * 1_000_000
    x = 0
    while time.thread_time_ns() < deadline:
        for i in range(2000):
            x = (x * 31 + i) & 0xFFFFFFFF
    return "cpu ms=%d\n" % ms


@flask_app.get("/sleep")
def sleep():
    ms = request.args.get("ms", 200, type=int)
    time.sleep(ms / 1000.0)
    return "sleep ms=%d\n" % ms


@flask_app.get("/downstream")
def downstream():
    ms = request.args.get("ms", 200, type=int)
    with socket.create_connection(DOWNSTREAM) as s:
        s.sendall(b"%d\n" % ms)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return "downstream ms=%d reply=%s\n" % (ms, data.decode().strip())


@flask_app.get("/fsync")
def fsync():
    n = request.args.get("n", 10, type=int)
    kb = request.args.get("kb", 16, type=int)
    buf = b"x" * (kb * 1024)
    fd = os.open(os.path.join(DATA_DIR, "fsync.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for _ in range(n):
            os.write(fd, buf)
            os.fsync(fd)
    finally:
        os.close(fd)
    return "fsync n=%d kb=%d\n" % (n, kb)


def hold(ms, held):
    thread_name("lock-holder")
    with LOCK:
        held.set()
        time.sleep(ms / 1000.0)


@flask_app.get("/lock")
def lock():
    ms = request.args.get("ms", 200, type=int)
    held = threading.Event()
    threading.Thread(target=hold, args=(ms, held), daemon=True).start()
    held.wait(2)
    time.sleep(0.02)
    t0 = time.monotonic()
    with LOCK:
        waited = (time.monotonic() - t0) * 1000
    return "lock ms=%d waited_ms=%.1f\n" % (ms, waited)


@flask_app.get("/fast")
def fast():
    return "fast\n"


class _Body:
    """The response iterable: gunicorn closes it once the body is written."""

    def __init__(self, inner, trace, begin):
        self.inner, self.trace, self.begin = inner, trace, begin

    def __iter__(self):
        return iter(self.inner)

    def close(self):
        if hasattr(self.inner, "close"):
            self.inner.close()
        truth.emit(self.trace, self.begin)


def app(environ, start_response):
    begin = truth.start()
    return _Body(flask_app(environ, start_response), truth.trace_of(environ.get("HTTP_TRACEPARENT")), begin)


class Gunicorn(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for k, v in self.options.items():
            self.cfg.set(k, v)

    def load(self):
        return app


def main():
    global DATA_DIR, DOWNSTREAM
    args = serving.parse(lambda ap: ap.add_argument("--worker-class", default="sync", choices=["sync", "gthread"]))
    DATA_DIR = args.data_dir or DATA_DIR
    DOWNSTREAM = args.downstream
    sock = serving.listen(args)
    sock.set_inheritable(True)
    opts = {"bind": "fd://%d" % sock.fileno(), "worker_class": args.worker_class, "workers": 1,
            "loglevel": "warning", "accesslog": None, "timeout": 60}
    if args.worker_class == "gthread":
        opts["threads"] = 4
    serving.ready(sock)
    Gunicorn(opts).run()


if __name__ == "__main__":
    main()
