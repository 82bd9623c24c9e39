"""A real webhook receiver on loopback for the tests: an HTTP server thread that records every
request (headers, raw body) and answers what the test tells it.

- `answers`: statuses to answer in order (then `default_status`); `"slow"` sleeps past the
  client's timeout before answering 200;
- `hold_next()`: the next request waits (before answering) until `release()`; if its client
  went away meanwhile (a worker killed mid-request), it is recorded as aborted and never
  answered, as a receiver that acknowledges only what it answered;
- `acknowledged()`: the requests answered 2xx, the ones a receiver has accepted.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server_version = "TestReceiver/1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        receiver: Receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
            "status": None,
            "aborted": False,
        }
        with receiver.lock:
            receiver.requests.append(record)
            answer = receiver.answers.popleft() if receiver.answers else receiver.default_status
            hold = receiver._hold_next
            receiver._hold_next = False
        if hold:
            receiver.held.set()
            receiver._released.wait(60)
            if self._client_gone():
                record["aborted"] = True
                self.close_connection = True
                return
        if answer == "slow":
            time.sleep(receiver.slow_seconds)
            answer = 200
        record["status"] = answer
        self.send_response(answer)
        if 300 <= answer < 400:
            self.send_header("Location", receiver.url("/redirected"))
        self.send_header("Content-Length", "2")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(b"ok")

    def _client_gone(self) -> bool:
        """The client closed its end (EOF readable without blocking)."""
        sock = self.connection
        readable, _, _ = select.select([sock], [], [], 0.5)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class Receiver:
    def __init__(self, *, ssl_context=None) -> None:
        self.ssl_context = ssl_context  # serve HTTPS with this server-side context
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.answers: deque = deque()
        self.default_status = 200
        self.slow_seconds = 3.0
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hold_next = False
        self.held = threading.Event()
        self._released = threading.Event()

    def start(self) -> None:
        if self.server is not None:
            return
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        self.server.daemon_threads = True
        if self.ssl_context is not None:
            self.server.socket = self.ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.server.receiver = self
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.release()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.answers.clear()
            self.default_status = 200
            self._hold_next = False
        self.held.clear()
        self._released.clear()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hold_next(self) -> None:
        self._hold_next = True
        self.held.clear()
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def acknowledged(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["status"] is not None and 200 <= r["status"] < 300]

    def wait_for(self, count: int, *, timeout: float = 60, acknowledged: bool = True) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.acknowledged() if acknowledged else list(self.requests)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.requests)} request(s), expected {count}")
