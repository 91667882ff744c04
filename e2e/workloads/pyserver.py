#!/usr/bin/env python3
"""tracecam e2e workload: a thread-per-connection Python HTTP/1.1 server.

Every endpoint spends the serving thread's time in one well-known way so the
profiler's per-request breakdown (cpu / runq / net / file / lock / sleep) can
be checked against what the request actually did.

    python3 pyserver.py --port 0 --bind 127.0.0.1 --data-dir /var/tmp/tc \
        [--downstream 127.0.0.1:9001] [--dns-server 127.0.0.1:5353]

Prints one line to stdout once listening:

    READY port=<port> pid=<pid>

and, after each request that carried a traceparent has been answered (its
response fully written), the serving thread's own account of it (truth.py):
its CPU clock, run delay and wall time from the moment the request line was
read to the moment the last byte of the response was handed to the kernel.

Endpoints (all reply with Content-Length, keep-alive works):
    GET  /cpu?ms=200            pure-Python CPU burn for ~ms of *thread* CPU time
    GET  /sleep?ms=150          time.sleep (clock_nanosleep)
    GET  /fsync?n=20&kb=64      n x (write kb KiB to DATA_DIR/fsync.log + fsync)
    GET  /lock?ms=200           block on a threading.Lock held ~ms by "lock-holder"
    GET  /work?sleep_ms=40&cpu_ms=2&lock_ms=0
                                a steady endpoint (cpu burn, then sleep) into which
                                a fault can be injected: lock_ms > 0 then blocks on
                                a lock held ~lock_ms by "fault-holder"
    GET  /downstream?ms=200     TCP round trip to --downstream (slowserver.py)
    GET  /dns?name=x&server=h:p UDP DNS A query, replies with the rcode
    GET  /fast                  immediate reply
    GET  /status/NNN            reply with status NNN
    POST /echo                  read the body, reply with its length
"""

import argparse
import http.client
import ctypes
import ctypes.util
import itertools
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import truth

PR_SET_NAME = 15
MAX_FSYNC_LOG = 64 << 20  # truncate fsync.log once it grows past 64 MiB

# ---------------------------------------------------------------------------
# OS thread naming (threading names are not the kernel comm in Python 3.11).

try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _prctl = _libc.prctl
except Exception:  # pragma: no cover - best effort only
    _prctl = None


def set_os_thread_name(name):
    """Set /proc/<pid>/task/<tid>/comm for the calling thread (best effort)."""
    if _prctl is None:
        return
    try:
        _prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except Exception:
        pass


_worker_ids = itertools.count(1)

# ---------------------------------------------------------------------------
# Workload primitives.

LOCK = threading.Lock()


def burn_cpu(ms):
    """Spin in pure Python until this thread has used ~ms of CPU time.

    The inner loop is plain arithmetic; time.thread_time() (one
    clock_gettime(CLOCK_THREAD_CPUTIME_ID) syscall) is only called every
    few thousand iterations.
    """
    start = time.thread_time()
    deadline = start + ms / 1000.0
    x = 0
    while True:
        for i in range(2000):
            x = (x * 31 + i) & 0xFFFFFFFF
        if time.thread_time() >= deadline:
            break
    return (time.thread_time() - start) * 1000.0, x


def do_fsync(path, n, kb):
    buf = b"x" * (kb * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if os.fstat(fd).st_size > MAX_FSYNC_LOG:
            os.ftruncate(fd, 0)
        for _ in range(n):
            os.write(fd, buf)
            os.fsync(fd)
    finally:
        os.close(fd)


def lock_holder(ms, held):
    set_os_thread_name("lock-holder")
    with LOCK:
        held.set()
        time.sleep(ms / 1000.0)


def do_lock(ms):
    """Make the calling thread block (futex wait) on LOCK for roughly ms."""
    held = threading.Event()
    t = threading.Thread(target=lock_holder, args=(ms, held), name="lock-holder", daemon=True)
    t.start()
    held.wait(2.0)
    time.sleep(0.020)  # holder definitely owns the lock now
    t0 = time.monotonic()
    LOCK.acquire()  # blocking acquire -> sem_wait -> futex(FUTEX_WAIT)
    waited = (time.monotonic() - t0) * 1000.0
    LOCK.release()
    t.join()
    return waited


WORK_LOCK = threading.Lock()  # /work's fault, apart from /lock's LOCK


def fault_holder(ms, held):
    set_os_thread_name("fault-holder")
    with WORK_LOCK:
        held.set()
        time.sleep(ms / 1000.0)


def do_work(sleep_ms, cpu_ms, lock_ms):
    """The steady endpoint: cpu_ms of CPU, then sleep_ms asleep; with
    lock_ms > 0, then a wait of ~lock_ms on a lock another thread holds."""
    if cpu_ms > 0:
        burn_cpu(cpu_ms)
    if sleep_ms > 0:
        time.sleep(sleep_ms / 1000.0)
    waited = 0.0
    if lock_ms > 0:
        held = threading.Event()
        t = threading.Thread(target=fault_holder, args=(lock_ms, held), name="fault-holder", daemon=True)
        t.start()
        held.wait(2.0)  # the holder owns WORK_LOCK once this returns
        t0 = time.monotonic()
        WORK_LOCK.acquire()  # futex wait until the holder lets go
        waited = (time.monotonic() - t0) * 1000.0
        WORK_LOCK.release()
        t.join()
    return waited


def set_rcvtimeo(sock, seconds):
    """Kernel-side receive timeout. The socket stays in plain blocking mode
    (Python timeout None), so a waiting thread sleeps inside recv() itself
    (tcp_recvmsg / skb_recv_datagram) rather than in poll()."""
    sec = int(seconds)
    usec = int((seconds - sec) * 1e6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, usec))


def do_downstream(addr, ms):
    s = socket.create_connection(addr)  # blocking connect, no Python-level timeout
    with s:
        set_rcvtimeo(s, 30.0)
        s.sendall(b"%d\n" % ms)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(4096)  # blocks in recvfrom() until the slow server answers
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


def build_dns_query(qid, name, qtype=1):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1, 1 question
    q = b""
    for label in name.strip(".").split("."):
        if label:
            lb = label.encode("idna") if not label.isascii() else label.encode()
            q += bytes([len(lb)]) + lb
    q += b"\x00" + struct.pack("!HH", qtype, 1)
    return header + q


def do_dns(name, server, timeout=2.0):
    """Returns (rcode, ancount) or raises socket.timeout."""
    qid = int.from_bytes(os.urandom(2), "big")
    pkt = build_dns_query(qid, name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        set_rcvtimeo(s, timeout)  # blocking recv with a kernel timeout (no poll)
        s.connect(server)
        s.send(pkt)
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = s.recv(4096)
            except BlockingIOError:  # SO_RCVTIMEO expired -> EAGAIN
                raise socket.timeout("dns: timeout")
            if len(resp) >= 12:
                rid, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", resp[:12])
                if rid == qid and flags & 0x8000:
                    return flags & 0x000F, an
            if time.monotonic() >= deadline:
                raise socket.timeout("dns: no matching reply")


def do_call(url, traceparent):
    """GET url over a fresh HTTP/1.1 connection, forwarding traceparent."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        headers = {"traceparent": traceparent} if traceparent else {}
        conn.request("GET", (u.path or "/") + ("?" + u.query if u.query else ""), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def parse_hostport(s, default_host="127.0.0.1"):
    host, _, port = s.rpartition(":")
    return (host or default_host, int(port))


# ---------------------------------------------------------------------------
# HTTP.

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class Handler(truth.HandlerMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tracecam-pyserver/1"
    sys_version = ""
    disable_nagle_algorithm = True  # avoid Nagle/delayed-ACK stalls on keep-alive

    # -- plumbing ---------------------------------------------------------

    def setup(self):
        set_os_thread_name("worker-%d" % next(_worker_ids))
        super().setup()

    def log_message(self, fmt, *args):  # quiet access log
        pass


    def version_string(self):
        return self.server_version

    def reply(self, code, text):
        body = text.encode()
        tp = self.headers.get("traceparent")
        if tp and code not in (204, 304):
            body += b" traceparent=" + tp.encode()
        if code in (204, 304):
            body = b""
        if not body.endswith(b"\n") and body:
            body += b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        if code not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def qint(self, q, key, default):
        try:
            return int(q.get(key, [default])[0])
        except (TypeError, ValueError):
            return default

    # -- routes -----------------------------------------------------------

    def do_GET(self):
        u = urlsplit(self.path)
        q = parse_qs(u.query)
        path = u.path
        try:
            if path == "/cpu":
                ms = self.qint(q, "ms", 200)
                used, _ = burn_cpu(ms)
                self.reply(200, "cpu ms=%d thread_cpu_ms=%.1f" % (ms, used))
            elif path == "/sleep":
                ms = self.qint(q, "ms", 150)
                time.sleep(ms / 1000.0)
                self.reply(200, "sleep ms=%d" % ms)
            elif path == "/fsync":
                n = self.qint(q, "n", 20)
                kb = self.qint(q, "kb", 64)
                do_fsync(os.path.join(self.server.data_dir, "fsync.log"), n, kb)
                self.reply(200, "fsync n=%d kb=%d" % (n, kb))
            elif path == "/lock":
                ms = self.qint(q, "ms", 200)
                waited = do_lock(ms)
                self.reply(200, "lock ms=%d waited_ms=%.1f" % (ms, waited))
            elif path == "/work":
                waited = do_work(self.qint(q, "sleep_ms", 40), self.qint(q, "cpu_ms", 2), self.qint(q, "lock_ms", 0))
                self.reply(200, "work lock_waited_ms=%.1f" % waited)
            elif path == "/downstream":
                ms = self.qint(q, "ms", 200)
                if self.server.downstream is None:
                    self.reply(503, "downstream not configured (--downstream HOST:PORT)")
                    return
                got = do_downstream(self.server.downstream, ms)
                self.reply(200, "downstream ms=%d reply=%r" % (ms, got))
            elif path == "/dns":
                name = q.get("name", ["foo.example"])[0]
                server = parse_hostport(q.get("server", [self.server.dns_server])[0])
                try:
                    rcode, an = do_dns(name, server)
                except socket.timeout:
                    self.reply(504, "dns name=%s timeout" % name)
                    return
                self.reply(200, "dns name=%s rcode=%d %s answers=%d"
                           % (name, rcode, RCODES.get(rcode, "?"), an))
            elif path == "/call":
                # Call another service over HTTP, propagating the trace
                # context as an instrumented client would: the callee's
                # profile joins the same trace.
                target = q.get("url", [""])[0]
                if not target.startswith("http://"):
                    self.reply(400, "call: want ?url=http://...")
                    return
                status, body = do_call(target, self.headers.get("traceparent"))
                self.reply(200, "call url=%s status=%d bytes=%d" % (target, status, len(body)))
            elif path == "/fast":
                self.reply(200, "fast")
            elif path.startswith("/status/"):
                try:
                    code = int(path[len("/status/"):])
                except ValueError:
                    code = 0
                if not 200 <= code <= 599:
                    self.reply(400, "bad status code")
                    return
                self.reply(code, "status %d" % code)
            else:
                self.reply(404, "not found: %s" % path)
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as e:  # keep the connection usable on workload errors
            self.reply(500, "error: %s: %s" % (type(e).__name__, e))

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        if urlsplit(self.path).path == "/echo":
            self.reply(200, "echo len=%d" % (length - remaining))
        else:
            self.reply(404, "not found: %s" % self.path)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--data-dir", default=None,
                    help="directory for fsync.log (default: a new temp dir); use a real disk fs, not tmpfs")
    ap.add_argument("--downstream", default=None, help="HOST:PORT of slowserver.py")
    ap.add_argument("--dns-server", default="127.0.0.1:5353",
                    help="default DNS server for /dns when ?server= is absent")
    args = ap.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="pyserver-")
    os.makedirs(data_dir, exist_ok=True)

    srv = Server((args.bind, args.port), Handler)
    srv.data_dir = data_dir
    srv.downstream = parse_hostport(args.downstream) if args.downstream else None
    srv.dns_server = args.dns_server

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
