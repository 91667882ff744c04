#!/usr/bin/env python3
"""tracecam e2e workload for the TCP window case: an HTTP/1.1 server whose
/big?kb=N endpoint answers with an N KiB body in one write (Content-Length).

  python3 bigserver.py --bind 10.77.1.1 --port 0

Prints "READY port=<port> pid=<pid>" once listening. After each /big
response it prints the kernel's own account of the connection, the ground
truth the test compares with (struct tcp_info, read right after the last
write returned):

  TCPINFO trace=<trace id> rwnd_limited_us=<N> sndbuf_limited_us=<N> busy_us=<N> snd_wnd=<N> written=<CLOCK_MONOTONIC s>

written is when the last write returned (CLOCK_MONOTONIC, comparable with a
client's on the same host).
"""
import argparse
import http.server
import socket
import socketserver
import struct
import sys
import os
import time

# struct tcp_info (linux/tcp.h): offsets of the u64 chrono fields (Linux >= 4.10)
# and of tcpi_snd_wnd (Linux >= 6.2).
OFF_BUSY, OFF_RWND, OFF_SNDBUF, OFF_SND_WND = 168, 176, 184, 228


def tcp_info(sock):
    b = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    busy, rwnd, sndbuf = struct.unpack_from("<QQQ", b, OFF_BUSY)
    snd_wnd = struct.unpack_from("<I", b, OFF_SND_WND)[0] if len(b) >= OFF_SND_WND + 4 else 0
    return busy, rwnd, sndbuf, snd_wnd


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        kb = 1024
        if "?" in self.path:
            for kv in self.path.split("?", 1)[1].split("&"):
                if kv.startswith("kb="):
                    kb = int(kv[3:])
        body = b"x" * (kb << 10)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        written = time.monotonic()
        busy, rwnd, sndbuf, snd_wnd = tcp_info(self.connection)
        tp = self.headers.get("traceparent", "")
        trace = tp.split("-")[1] if tp.count("-") >= 3 else ""
        print(f"TCPINFO trace={trace} rwnd_limited_us={rwnd} sndbuf_limited_us={sndbuf} busy_us={busy} snd_wnd={snd_wnd} written={written:.6f}", flush=True)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = Server((a.bind, a.port), Handler)
    print(f"READY port={srv.server_address[1]} pid={os.getpid()}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
