"""The command line and listening socket the framework workloads
(asgiapp.py, wsgiapp.py) share: they bind the socket themselves and hand it
to their server, so `--port 0` works and the READY line names the real port.
"""

import argparse
import os
import socket
import sys


def parse(add=None):
    """--port, --bind, --data-dir, --downstream (HOST:PORT → a (host, port)
    tuple, or None), plus whatever add(parser) adds."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--downstream", default=None)
    if add:
        add(ap)
    args = ap.parse_args()
    if args.downstream:
        h, _, p = args.downstream.rpartition(":")
        args.downstream = (h or "127.0.0.1", int(p))
    return args


def listen(args):
    """A listening TCP socket on --bind:--port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    sock.listen(1024)
    return sock


def ready(sock):
    sys.stdout.write("READY port=%d pid=%d\n" % (sock.getsockname()[1], os.getpid()))
    sys.stdout.flush()
