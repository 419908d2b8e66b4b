"""A webhook receiver for notification tests: a real HTTP server on a free port, in a thread,
keeping every JSON (or form) body posted to it. Apprise's ``json://`` URL posts to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


class WebhookReceiver:
    def __init__(self, token: str = "s3cr3t-hook-token") -> None:
        self.token = token
        self.received: list[dict[str, Any]] = []
        self.failures_left = 0  # answer 500 to this many posts first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.failures_left > 0:
                    receiver.failures_left -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    payload = json.loads(body)
                else:
                    payload = dict(parse_qsl(body.decode()))
                receiver.received.append({"path": self.path, **payload})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        """The Apprise URL of this receiver; its path holds a secret token."""
        return f"json://127.0.0.1:{self.port}/hook/{self.token}"

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.received):
                if match(message):
                    return message
            time.sleep(0.1)
        raise AssertionError(f"no notification matched; received {self.received}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
