#!/usr/bin/env python3
"""tracecam e2e workload: a slow TCP "downstream dependency".

For each connection: read one line holding a number of milliseconds, sleep
that long, reply "ok <ms>\\n" and close. One thread per connection.

    python3 slowserver.py --port 0 --bind 127.0.0.1

Prints exactly one line to stdout once listening:

    READY port=<port> pid=<pid>
"""

import argparse
import os
import socketserver
import sys
import time

MAX_MS = 60_000


class Handler(socketserver.StreamRequestHandler):
    timeout = 30

    def handle(self):
        try:
            line = self.rfile.readline(64)
        except OSError:
            return
        try:
            ms = int(line.strip() or b"0")
        except ValueError:
            self.wfile.write(b"err bad-ms\n")
            return
        ms = max(0, min(ms, MAX_MS))
        time.sleep(ms / 1000.0)
        try:
            self.wfile.write(b"ok %d\n" % ms)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser(description="slow TCP downstream for tracecam e2e")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()
    srv = Server((args.bind, args.port), Handler)
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
