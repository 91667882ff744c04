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

import asyncio
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving  # noqa: E402
import truth  # noqa: E402

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402

app = FastAPI()
DATA_DIR = tempfile.mkdtemp(prefix="asgiapp-")
DOWNSTREAM = None


class GroundTruth:
    """ASGI middleware: the TRUTH line of a traced request once the last
    body message has been handed to the transport (on send, not when a
    body iterator ends: a client that disconnects right after the response
    may cancel the streaming task first)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        begin = truth.start()
        tp = dict(scope.get("headers") or []).get(b"traceparent", b"").decode()
        state = scope.setdefault("state", {})

        async def send_and_tell(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                truth.emit(truth.trace_of(tp), begin, **state.get("truth", {}))

        return await self.inner(scope, receive, send_and_tell)


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
    request.state.truth = {"burn_ns": time.thread_time_ns() - t0}  # the TRUTH line's extra
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
    args = serving.parse()
    DATA_DIR = args.data_dir or DATA_DIR
    DOWNSTREAM = args.downstream
    sock = serving.listen(args)
    server = uvicorn.Server(uvicorn.Config(GroundTruth(app), log_level="warning", access_log=False))
    serving.ready(sock)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
