#!/usr/bin/env python3
"""A real SMTP server for tests: every message it accepts becomes one JSON file.

    smtp_sink.py DIR PORT [--host 127.0.0.1]

Listens on HOST:PORT (PORT 0 picks a free port), prints "ready <port>" on stdout once it accepts
connections, and writes each received message to DIR/<n>-<uuid>.json as

    {"to": [...], "from": "...", "subject": "...", "text": "...", "html": "...",
     "message_id": "...", "envelope_from": "...", "envelope_to": [...]}

with the MIME parts decoded (quoted-printable/base64, charsets) and line ends as LF. The file is written to a
temporary name and renamed, so a reader never sees half a message. Runs until killed.

Needs aiosmtpd (PyPI): python3 -m venv /work/venv-smtp && /work/venv-smtp/bin/pip install aiosmtpd
"""

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import os
import signal
import sys
import uuid

from aiosmtpd.controller import Controller


def lf(text: str) -> str:
    """SMTP carries CRLF line ends; tests compare with the LF text that was sent."""
    return text.replace("\r\n", "\n")


def decode(raw: bytes) -> dict:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = None
    html = None
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and text is None:
            text = lf(part.get_content())
        elif kind == "text/html" and html is None:
            html = lf(part.get_content())
    to = [str(a.addr_spec) for a in msg["to"].addresses] if msg["to"] else []
    return {
        "to": to,
        "from": str(msg["from"]) if msg["from"] else None,
        "subject": str(msg["subject"]) if msg["subject"] else None,
        "text": text,
        "html": html,
        "message_id": str(msg["message-id"]) if msg["message-id"] else None,
    }


class Sink:
    def __init__(self, directory: str):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        try:
            doc = decode(envelope.original_content or envelope.content)
        except Exception as e:  # a message we cannot parse is still a message: keep the raw text
            doc = {"to": list(envelope.rcpt_tos), "from": envelope.mail_from, "subject": None,
                   "text": None, "html": None, "message_id": None, "error": repr(e)}
        doc["envelope_from"] = envelope.mail_from
        doc["envelope_to"] = list(envelope.rcpt_tos)
        name = f"{next(self.counter):06d}-{uuid.uuid4().hex}.json"
        tmp = os.path.join(self.directory, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
        os.replace(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="directory to write one JSON file per message into (created if missing)")
    parser.add_argument("port", type=int, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    port = args.port
    if port == 0:
        import socket
        with socket.socket() as s:
            s.bind((args.host, 0))
            port = s.getsockname()[1]

    controller = Controller(Sink(args.dir), hostname=args.host, port=port,
                            decode_data=False, enable_SMTPUTF8=True, data_size_limit=10 * 1024 * 1024)
    controller.start()
    print(f"ready {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
