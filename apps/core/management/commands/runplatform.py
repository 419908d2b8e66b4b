"""Run the whole platform on one machine: the one command behind ``make run``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from orchestra import embedded_redis

STOP_TIMEOUT_SECONDS = 15
ASGI_APP = "orchestra.asgi:application"


class Command(BaseCommand):
    help = (
        "Migrate, create the first administrator if needed, then run daphne, a Celery worker "
        "and Celery beat (and the embedded Redis when REDIS_URL is not set) until Ctrl-C."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("ORCHESTRA_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("ORCHESTRA_PORT", 8000)))
        parser.add_argument("--concurrency", type=int, default=8, help="Celery worker threads.")

    def handle(self, *args, host: str, port: int, concurrency: int, **options) -> None:
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            env = self.prepare_environment()
            call_command("migrate", interactive=False, verbosity=1)
            call_command("ensure_admin")
            self.start_services(env, host, port, concurrency)
            self.announce(host, port)
            self.supervise()
        finally:
            self.stop_all()

    def prepare_environment(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if settings.EMBEDDED_REDIS:
            socket = settings.EMBEDDED_REDIS_SOCKET
            if embedded_redis.answers(socket):
                raise CommandError(f"Something already serves {socket}: is the platform running?")
            process = embedded_redis.start(socket, log_file=settings.VAR_DIR / "redis.log")
            self.processes.append(("redis", process))
            self.stdout.write(f"Embedded Redis on unix://{socket}")
        metrics_dir = settings.VAR_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        return env

    def start_services(self, env: dict[str, str], host: str, port: int, concurrency: int) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "orchestra"]
        commands = {
            "web": [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), ASGI_APP],
            "worker": [*celery, "worker", "-l", "info", "-P", "threads", "-c", str(concurrency)],
            "beat": [*celery, "beat", "-l", "info", "--pidfile", ""],
        }
        for name, command in commands.items():
            process = subprocess.Popen(
                command, env=env, cwd=settings.BASE_DIR, start_new_session=True
            )
            self.processes.append((name, process))

    def announce(self, host: str, port: int) -> None:
        base = f"http://{host}:{port}"
        self.stdout.write(
            self.style.SUCCESS("AI Orchestra is starting. Ctrl-C stops everything.")
            + f"\n  Dashboard      {base}/"
            + f"\n  Admin          {base}/admin/"
            + f"\n  API docs       {base}/api/docs/"
            + f"\n  OpenAI API     {base}/v1"
            + f"\n  WebSocket      ws://{host}:{port}/ws/"
            + f"\n  Health         {base}/health"
            + f"\n  Metrics        {base}/metrics"
        )

    def request_stop(self, signum, frame) -> None:
        self.stopping = True

    def supervise(self) -> None:
        while not self.stopping:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise CommandError(f"{name} exited with code {process.returncode}; stopping.")
            time.sleep(0.2)

    def stop_all(self) -> None:
        """Stop the web first (it flushes its buffers), the embedded Redis last."""
        for name, process in sorted(self.processes, key=lambda item: item[0] == "redis"):
            self.stop(name, process)

    def stop(self, name: str, process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.stdout.write(f"Stopped {name}.")
