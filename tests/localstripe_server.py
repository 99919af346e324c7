#!/usr/bin/env python3
"""localstripe (PyPI), a stateful Stripe-compatible server, for the Stripe adapter's tests.

    localstripe_server.py [--port 0]

Listens on 127.0.0.1:PORT (0 picks a free port) and prints "ready <port>" on stdout once it
accepts connections. Unlike `python -m localstripe`, it keeps its state in memory only: the
package pickles its whole store to the fixed path /tmp/localstripe.pickle after every write,
which parallel test servers would share. Runs until killed.
"""

import argparse
import asyncio
import socket
import sys

from aiohttp import web
from localstripe import resources, server


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    # Listening before "ready": a client that connects at once waits in the backlog instead of
    # being refused while the app starts.
    sock.listen(128)

    async def announce(_app):
        print(f"ready {port}", flush=True)

    server.app.on_startup.append(announce)
    web.run_app(server.app, sock=sock, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    sys.exit(main())
