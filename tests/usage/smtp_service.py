"""A real SMTP server on loopback for the e-mail tests (aiosmtpd), which records what it accepted.

`SmtpServer.start()` / `.stop()` take it up and down on the same port, so a test can make SMTP
unavailable and come back. `hold_next()` makes the next message wait, after its data arrived
and before the server acknowledges it, until `release()`: a client that dies meanwhile never
gets the acknowledgement and the message is not delivered (RFC 5321: the server takes
responsibility only with its 250 reply).
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RecordingHandler:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict] = []
        self._hold = False
        self.held = threading.Event()
        self._release = threading.Event()

    def hold_next(self) -> None:
        self._hold = True
        self.held.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self._hold:
            self._hold = False
            self.held.set()
            while not self._release.is_set():
                await asyncio.sleep(0.02)
            if server.transport is None or server.transport.is_closing():
                return "421 The client went away before the acknowledgement"
        message = email.message_from_bytes(envelope.content)
        with self.lock:
            self.messages.append({
                "message_id": message["Message-ID"],
                "to": list(envelope.rcpt_tos),
                "subject": message["Subject"],
                "raw": envelope.content,
            })
        return "250 Message accepted for delivery"

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.messages)


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.handler = RecordingHandler()
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._controller is None:
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()

    @property
    def messages(self) -> list[dict]:
        return self.handler.snapshot()

    def wait_for(self, count: int, *, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                break
            time.sleep(0.05)
        return self.messages
