#!/usr/bin/env python3
"""tracecam e2e workload: a FastAPI app served by uvicorn (Debian's
python3-fastapi and python3-uvicorn): one asyncio event loop thread serving
every request, with endpoints that spend their time in one known way each.

    /usr/bin/python3 asgiapp.py --port 0 [--bind 127.0.0.1] [--data-dir DIR]
        [--downstream HOST:PORT]

Prints `READY port=<port> pid=<pid>` once listening (the socket is bound
here and handed to uvicorn, so port 0 works), and after each request that
carried a traceparent has been answered, a TRUTH line (truth.py): the loop
thread's CPU clock and run delay from the request's arrival in the app to
its last body byte handed to the transport. On an event loop that span may
include other requests' callbacks: burn_ns is /cpu's own burn.

    GET /cpu?ms=200         burn ~ms of thread CPU inside the handler (blocks the loop)
    GET /sleep?ms=200       await asyncio.sleep
    GET /downstream?ms=200  asyncio TCP round trip to --downstream (slowserver.py)
    GET /fsync?n=10&kb=16   n x (write + os.fsync), blocking, on the loop
    GET /fast               immediate reply
"""

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import truth  # noqa: E402

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402

app = FastAPI()
DATA_DIR = tempfile.mkdtemp(prefix="asgiapp-")
DOWNSTREAM = None


@app.middleware("http")
async def ground_truth(request: Request, call_next):
    begin = truth.start()
    response = await call_next(request)
    tp = request.headers.get("traceparent")
    extra = getattr(request.state, "truth", {})
    body = getattr(response, "body_iterator", None)
    if body is None:
        truth.emit(truth.trace_of(tp), begin, **extra)
        return response

    # Streaming responses (what call_next returns): the TRUTH line goes out
    # once the last body chunk has been handed to the transport.
    async def tail():
        async for chunk in body:
            yield chunk
        truth.emit(truth.trace_of(tp), begin, **extra)

    response.body_iterator = tail()
    return response


@app.get("/cpu", response_class=PlainTextResponse)
async def cpu(request: Request, ms: int = 200):
    t0 = time.thread_time_ns()
    deadline = t0 + ms * 1_000_000
    x = 0
    while True:
        for i in range(2000):
            x = (x * 31 + i) & 0xFFFFFFFF
        if time.thread_time_ns() >= deadline:
            break
    request.state.truth = {"burn_ns": time.thread_time_ns() - t0}
    return "cpu ms=%d\n" % ms


@app.get("/sleep", response_class=PlainTextResponse)
async def sleep(ms: int = 200):
    await asyncio.sleep(ms / 1000.0)
    return "sleep ms=%d\n" % ms


@app.get("/downstream", response_class=PlainTextResponse)
async def downstream(ms: int = 200):
    host, port = DOWNSTREAM
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"%d\n" % ms)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return "downstream ms=%d reply=%s\n" % (ms, line.decode().strip())


@app.get("/fsync", response_class=PlainTextResponse)
async def fsync(n: int = 10, kb: int = 16):
    buf = b"x" * (kb * 1024)
    fd = os.open(os.path.join(DATA_DIR, "fsync.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for _ in range(n):
            os.write(fd, buf)
            os.fsync(fd)
    finally:
        os.close(fd)
    return "fsync n=%d kb=%d\n" % (n, kb)


@app.get("/fast", response_class=PlainTextResponse)
async def fast():
    return "fast\n"


def main():
    global DATA_DIR, DOWNSTREAM
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--downstream", default=None)
    args = ap.parse_args()
    if args.data_dir:
        DATA_DIR = args.data_dir
    if args.downstream:
        h, _, p = args.downstream.rpartition(":")
        DOWNSTREAM = (h or "127.0.0.1", int(p))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    sock.listen(1024)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    sys.stdout.write("READY port=%d pid=%d\n" % (sock.getsockname()[1], os.getpid()))
    sys.stdout.flush()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
