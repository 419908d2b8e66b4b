"""Run a fake upstream as a subprocess and steer it over its control endpoints.

Only the standard library is used so that sync tests, async tests and benchmark drivers in any
process can share one fake without pulling in an HTTP client or an event loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[2]

# Control calls go to loopback; an HTTP(S)_PROXY in the environment must not reroute them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free a moment ago, e.g. to point a client at a dead upstream."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RawReply(NamedTuple):
    """A response as sent, for what SDKs hide or reject (odd usage values, SSE lines...)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[tuple[str | None, str]]:
        """SSE events as ``(event name or None, data)``, ``data: [DONE]`` included."""
        events = []
        for block in self.body.decode().split("\n\n"):
            name, data = None, []
            for line in block.splitlines():
                if line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    data.append(line[len("data: ") :])
            if data:
                events.append((name, "\n".join(data)))
        return events


class FakeUpstream:
    """Handle on one ``python -m tests.fake_upstream`` subprocess."""

    def __init__(
        self,
        name: str = "fake",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: int | None = None,
        models: Sequence[str] | None = None,
        startup_timeout: float = 10.0,
        uvloop: bool = True,
    ) -> None:
        self.name = name
        self.host = host
        self.requested_port = port
        self.tokens = tokens
        self.models = list(models) if models is not None else None
        self.startup_timeout = startup_timeout
        self.uvloop = uvloop
        self.process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FakeUpstream(name={self.name!r}, port={self._port})"

    def command(self) -> list[str]:
        """The exact command line, handy for running the same fake outside of tests."""
        cmd = [sys.executable, "-m", "tests.fake_upstream", "--host", self.host]
        cmd += ["--port", str(self.requested_port), "--name", self.name]
        if self.tokens is not None:
            cmd += ["--tokens", str(self.tokens)]
        if self.models is not None:
            cmd += ["--models", ",".join(self.models)]
        if not self.uvloop:
            cmd.append("--no-uvloop")
        return cmd

    def start(self) -> FakeUpstream:
        """Spawn the server and block until it reports the port it is listening on."""
        if self.process is not None:
            raise RuntimeError(f"{self!r} is already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            self.command(), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.process = process
        assert process.stdout is not None
        first_line: list[bytes] = []
        got_line = threading.Event()

        def pump(stream: IO[bytes] = process.stdout) -> None:
            first_line.append(stream.readline())
            got_line.set()
            for _ in stream:  # keep draining so a chatty server can never block on a full pipe
                pass

        threading.Thread(target=pump, name=f"fake-upstream-{self.name}", daemon=True).start()
        if not got_line.wait(self.startup_timeout):
            self.stop()
            raise RuntimeError(f"fake upstream {self.name!r} did not start in time")
        line = first_line[0].decode().strip()
        if not line.startswith("LISTENING "):
            code = self.stop()
            raise RuntimeError(f"fake upstream {self.name!r} failed to start ({code}): {line!r}")
        self._port = int(line.split()[1])
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """Terminate gracefully, kill if it won't go; returns the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{self!r} has not been started")
        return self._port

    @property
    def url(self) -> str:
        """Root URL without ``/v1``, for control endpoints and raw HTTP."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client's ``base_url`` should be."""
        return f"{self.url}/v1"

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with _OPENER.open(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise RuntimeError(f"{method} {path} -> {exc.code}: {detail}") from None

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> RawReply:
        """Send one request to any path (``/v1/...``) and return the reply as is, errors too."""
        data = None if payload is None else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=all_headers
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return RawReply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return RawReply(exc.code, dict(exc.headers), exc.read())

    def configure(self, **behavior: Any) -> dict[str, Any]:
        """Replace the default behavior; ``configure()`` with no keys restores normal answers."""
        return dict(self._call("POST", "/_control/behavior", behavior))

    def enqueue(self, *behaviors: dict[str, Any]) -> dict[str, Any]:
        """Queue one-shot behaviors for the next LLM requests, before the default applies."""
        return dict(self._call("POST", "/_control/enqueue", {"behaviors": list(behaviors)}))

    def reset(self) -> None:
        """Clear behavior, queue, counters and stored responses."""
        self._call("POST", "/_control/reset", {})

    def stats(self) -> dict[str, Any]:
        """Counters and the last LLM request, see the package docstring for the fields."""
        return dict(self._call("GET", "/_control/stats"))

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> dict[str, Any]:
        """Poll stats until ``predicate`` holds, since effects on the server are asynchronous."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s; last stats: {stats}")
            time.sleep(interval)
