"""Run the whole platform on one machine: the one command behind ``make run``.

It starts the embedded Redis (when no ``REDIS_URL`` is set; with an append-only file in
``var/``), migrates, creates the first administrator, then starts daphne, a Celery worker and
Celery beat and supervises them until Ctrl-C or SIGTERM:

* a child that exits is logged and restarted after a back-off (0.5 s, doubling up to 10 s with
  each crash in the last minute); one that crashes more than 5 times within 60 s stops the
  whole platform, which then exits with status 1;
* the URLs are printed once the web server answers, a Celery worker answers a ping and beat
  has left its heartbeat, and only those that answer, followed by the first administrator's
  password when this run created it (the workers' log lines would have scrolled it away by then);
* ``var/runplatform.json`` holds the supervisor's pid and each child's pid (``null`` while it
  waits to be restarted), rewritten on every change and removed on a clean stop;
* stopping stops the web first (it flushes its buffers) and the embedded Redis last.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core import embedded_redis

ASGI_APP = "orchestra.asgi:application"
STOP_TIMEOUT_SECONDS = 15
POLL_SECONDS = 0.2
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
CRASH_WINDOW_SECONDS = 60.0
MAX_CRASHES_IN_WINDOW = 5
READY_TIMEOUT_SECONDS = 60.0
STATE_FILE = "runplatform.json"
STOP_ORDER = ("web", "worker", "beat", "redis")
# What the banner may show: label, path shown, path checked (None: a WebSocket handshake).
# A base URL (an SDK's base_url answers 404 itself) is checked through an endpoint under it.
LINKS = (
    ("Dashboard", "/", "/"),
    ("Admin", "/admin/", "/admin/"),
    ("API docs", "/api/docs/", "/api/docs/"),
    ("OpenAI base URL", "/v1", "/v1/models"),
    ("WebSocket", "/ws/", None),
    ("Health", "/health", "/health"),
    ("Metrics", "/metrics", "/metrics"),
)


class CrashHistory:
    """The crashes of one child in the last minute, which set its back-off and its end."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def record(self, now: float) -> float | None:
        """Count a crash at ``now``: the delay before restarting, or None to give up."""
        while self.times and now - self.times[0] > CRASH_WINDOW_SECONDS:
            self.times.popleft()
        self.times.append(now)
        if len(self.times) > MAX_CRASHES_IN_WINDOW:
            return None
        return min(BACKOFF_FIRST_SECONDS * 2 ** (len(self.times) - 1), BACKOFF_MAX_SECONDS)


@dataclass
class Child:
    name: str
    launch: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    restart_at: float | None = None
    crashes: CrashHistory = field(default_factory=CrashHistory)


def exit_description(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Command(BaseCommand):
    help = (
        "Migrate, create the first administrator if needed, then run daphne, a Celery worker "
        "and Celery beat (and the embedded Redis when REDIS_URL is not set), restarting any "
        "that crashes, until Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("ORCHESTRA_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("ORCHESTRA_PORT", 8000)))
        parser.add_argument("--concurrency", type=int, default=8, help="Celery worker threads.")

    def handle(self, *args, host: str, port: int, concurrency: int, **options) -> None:
        self.children: dict[str, Child] = {}
        self.stopping = False
        self.state_path = settings.VAR_DIR / STATE_FILE
        # Where this process (and the banner) reaches the web server.
        local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
        self.probe_host = local
        self.base_url = f"http://[{local}]:{port}" if ":" in local else f"http://{local}:{port}"
        self.port = port
        if isinstance(sys.stdout, io.TextIOWrapper):  # `make run | tee run.log` sees it at once
            sys.stdout.reconfigure(line_buffering=True)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            self.check_port_free(host, port)
            env = self.prepare_environment()
            call_command("migrate", interactive=False, verbosity=1)
            call_command("bootstrap_providers")
            call_command("bootstrap_github")
            self.first_admin = self.ensure_admin()
            if not self.stopping:
                self.start_services(env, host, port, concurrency)
                self.supervise()
        finally:
            self.stop_all()

    def ensure_admin(self) -> str:
        """Create the first administrator if needed: what it printed (its password), if it did."""
        printed = io.StringIO()
        call_command("ensure_admin", stdout=printed)
        self.stdout.write(printed.getvalue(), ending="")
        return printed.getvalue().strip()

    def check_port_free(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise CommandError(f"Cannot listen on {host}:{port}: {exc}") from exc
                raise CommandError(
                    f"Port {port} on {host} is in use (is the platform already running?). "
                    f"Choose another one: make run PORT={port + 1}"
                ) from exc

    def prepare_environment(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if settings.EMBEDDED_REDIS:
            path = settings.EMBEDDED_REDIS_SOCKET
            if embedded_redis.answers(path):
                raise CommandError(f"Something already serves {path}: is the platform running?")

            def start_redis() -> subprocess.Popen:
                return embedded_redis.start(
                    path, data_dir=settings.VAR_DIR, log_file=settings.VAR_DIR / "redis.log"
                )

            self.children["redis"] = Child("redis", start_redis)
            self.launch(self.children["redis"])
            self.stdout.write(f"Embedded Redis on unix://{path}")
        metrics_dir = settings.VAR_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        self.metrics_dir = env["PROMETHEUS_MULTIPROC_DIR"]
        return env

    def start_services(self, env: dict[str, str], host: str, port: int, concurrency: int) -> None:
        from celery.utils.nodenames import default_nodename

        self.worker_name = default_nodename(None)
        celery = [sys.executable, "-m", "celery", "-A", "orchestra"]
        threads = ["-P", "threads", "-c", str(concurrency)]
        commands = {
            "web": [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), ASGI_APP],
            "worker": [*celery, "worker", "-l", "info", *threads, "-n", self.worker_name],
            "beat": [*celery, "beat", "-l", "info", "--pidfile", ""],
        }
        for name, command in commands.items():

            def start(command: list[str] = command) -> subprocess.Popen:
                return subprocess.Popen(
                    command, env=env, cwd=settings.BASE_DIR, start_new_session=True
                )

            self.children[name] = Child(name, start)
            self.launch(self.children[name])

    def request_stop(self, signum, frame) -> None:
        self.stopping = True

    # --- Supervision ----------------------------------------------------------------------

    def supervise(self) -> None:
        ready_deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        announced = warned = False
        while not self.stopping:
            for child in self.children.values():
                self.watch(child)
            if not announced and not self.stopping:
                web = self.web_answers()
                if web and self.worker_answers() and self.beat_ticks():
                    self.announce()
                    announced = True
                elif not warned and time.monotonic() > ready_deadline:
                    self.warn_not_ready(web)
                    warned = True
            time.sleep(POLL_SECONDS)

    def watch(self, child: Child) -> None:
        """Restart a child whose back-off is over; notice one that has exited."""
        if child.restart_at is not None:
            if time.monotonic() >= child.restart_at and not self.stopping:
                self.launch(child, restart=True)
            return
        process = child.process
        if process is not None and (code := process.poll()) is not None:
            self.crashed(child, f"(pid {process.pid}) {exit_description(code)}")

    def launch(self, child: Child, *, restart: bool = False) -> None:
        child.restart_at = None
        try:
            child.process = child.launch()
        except (OSError, RuntimeError) as exc:
            if not restart:
                raise CommandError(f"Could not start {child.name}: {exc}") from exc
            self.crashed(child, f"did not start again ({exc})")
            return
        verb = "Restarted" if restart else "Started"
        self.stdout.write(f"{verb} {child.name} (pid {child.process.pid}).")
        self.write_state()

    def crashed(self, child: Child, what: str) -> None:
        if child.process is not None:
            self.forget_metrics_of(child.process.pid)
        delay = child.crashes.record(time.monotonic())
        if delay is None:
            often = f"more than {MAX_CRASHES_IN_WINDOW} times within {CRASH_WINDOW_SECONDS:g} s"
            self.stdout.write(
                self.style.ERROR(f"{child.name} {what}, {often}: stopping the platform.")
            )
            log = f" and in {settings.VAR_DIR / 'redis.log'}" if child.name == "redis" else ""
            raise CommandError(f"{child.name} kept crashing ({often}); its output is above{log}.")
        self.stdout.write(self.style.WARNING(f"{child.name} {what}; restarting it in {delay:g} s."))
        child.restart_at = time.monotonic() + delay
        self.write_state()

    def forget_metrics_of(self, pid: int) -> None:
        """A dead process's live gauges (WebSocket connections…) must not count in /metrics."""
        from prometheus_client import multiprocess

        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid, self.metrics_dir)

    def write_state(self) -> None:
        """The pids of the supervisor and its children, for scripts and tests."""
        children = {
            name: child.process.pid if child.process and child.restart_at is None else None
            for name, child in self.children.items()
        }
        state = {"pid": os.getpid(), "url": self.base_url, "children": children}
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(self.state_path)

    # --- Readiness ------------------------------------------------------------------------

    def web_answers(self) -> bool:
        try:
            with socket.create_connection((self.probe_host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def worker_answers(self) -> bool:
        from celery import current_app as app

        try:  # a connection of its own: a pooled one may predate a restart of the broker
            with app.connection_for_write() as connection:
                replies = app.control.ping(
                    destination=[self.worker_name], timeout=0.5, connection=connection
                )
        except Exception:  # the broker restarting: not ready yet
            return False
        return bool(replies)

    def beat_ticks(self) -> bool:
        """Beat has left a fresh heartbeat, so /health is ok once the banner shows."""
        from apps.core.beat import beat_heartbeat_age

        try:
            age = beat_heartbeat_age()
        except Exception:  # the embedded Redis restarting: not ready yet
            return False
        return age is not None and age <= settings.BEAT_HEARTBEAT_MAX_AGE

    def status_of(self, path: str | None) -> int | None:
        """The status the web server answers for ``path`` (None: the WebSocket handshake)."""
        connection = http.client.HTTPConnection(self.probe_host, self.port, timeout=10)
        try:
            if path is None:
                key = base64.b64encode(os.urandom(16)).decode()
                headers = {
                    "Upgrade": "websocket", "Connection": "Upgrade",
                    "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13",
                }  # fmt: skip
                connection.request("GET", "/ws/", headers=headers)
            else:
                connection.request("GET", path)
            return connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    def announce(self) -> None:
        """Print the URLs, leaving out any that does not answer (or answers 404), then the password
        of the administrator this run created."""
        lines = []
        for label, shown, checked in LINKS:
            status = self.status_of(checked)
            if status is None or status == 404:
                continue
            base = self.base_url.replace("http://", "ws://") if checked is None else self.base_url
            lines.append(f"\n  {label:<16} {base}{shown}")
        if self.first_admin:  # one write: no other process's line comes between
            lines.append("\n\n" + self.style.SUCCESS(self.first_admin))
        self.stdout.write(
            self.style.SUCCESS("AI Orchestra is ready. Ctrl-C stops everything.") + "".join(lines)
        )

    def warn_not_ready(self, web: bool) -> None:
        missing = (
            "no Celery worker answers a ping, or Celery beat has left no heartbeat"
            if web
            else f"the web server does not answer on {self.base_url}"
        )
        self.stdout.write(
            self.style.WARNING(
                f"Not ready after {READY_TIMEOUT_SECONDS:g} s: {missing}. See the output above; "
                "still waiting, the URLs follow once it is ready."
            )
        )

    # --- Stopping -------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop the web first (it flushes its buffers), the embedded Redis last."""
        for name in STOP_ORDER:
            if name in self.children:
                self.stop(self.children[name])
        if self.children:
            self.state_path.unlink(missing_ok=True)

    def stop(self, child: Child) -> None:
        process = child.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stdout.write(f"Stopped {child.name}.")
