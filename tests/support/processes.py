"""Real processes for end-to-end tests: daphne, Celery workers, the platform itself."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from tests.fake_upstream import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_DIR = REPO_ROOT / "var" / "test-logs"

# What the test run sets and a fresh checkout's shell does not: a platform started without
# them runs as ``make run`` does on a new machine (SQLite, the embedded Redis, no DEBUG).
CONFIGURED = (
    "DATABASE_URL", "REDIS_URL", "CACHE_URL", "CHANNEL_LAYER_URL", "CELERY_BROKER_URL",
    "DJANGO_SETTINGS_MODULE", "EMBEDDED_REDIS_NAME", "PROMETHEUS_MULTIPROC_DIR",
    "CALL_RECORDS_STORE_ON_SHIP", "DEBUG", "LOG_FORMAT", "SERVE_STATIC", "ORCHESTRA_HOST",
    "ORCHESTRA_PORT",
    "PYTHONUNBUFFERED",  # the banner must not wait in a buffer
    # a developer's real providers must not reach a test platform (bootstrap_providers)
    "OPENAI_API_KEY", "XAI_API_KEY", "GROK_API_KEY", "OLLAMA_HOST", "OLLAMA_URL",
    "LLM_DEFAULT_PROVIDER", "LLM_LOAD_BALANCING", "LLM_ENABLE_FALLBACK",
)  # fmt: skip
READY = "AI Orchestra is ready. Ctrl-C stops everything."
# How long a server may take to answer after its start: a ready one is taken at once, but
# under parallel workers on 2 shared cores importing Django alone can take half a minute.
START_TIMEOUT = 60.0


def fresh_checkout_env(var_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of ``make run`` on a fresh checkout, with its own var dir."""
    env = {key: value for key, value in os.environ.items() if key not in CONFIGURED}
    return {**env, "ORCHESTRA_VAR_DIR": str(var_dir), **settings}


class ServerProcess:
    """A subprocess whose output goes to a log file under ``var/test-logs`` for post-mortems."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int = 0) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.port = port  # where it listens, for servers
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> Self:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def port_open(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return ready


def image_web_command(port: int) -> list[str]:
    """The production image's web command, read from the Dockerfile's ``CMD`` (so a test of it
    cannot drift from it), listening on 127.0.0.1:``port`` with the image's ``WEB_WORKERS``."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    workers = re.search(r"\bWEB_WORKERS=(\d+)", dockerfile)
    assert cmd and workers, "the Dockerfile has a CMD and sets WEB_WORKERS"
    shell, flag, script = json.loads(cmd.group(1))
    assert (shell, flag) == ("sh", "-c"), cmd.group(1)
    words = shlex.split(script.replace("$WEB_WORKERS", workers.group(1)))
    assert words[:2] == ["exec", "uvicorn"], script
    command = [sys.executable, "-m", "uvicorn", *words[2:]]
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


class AsgiServer(ServerProcess):
    """``orchestra.asgi:application`` on a free port, under daphne (as ``make run``), uvicorn
    or granian (one worker each) or ``image``: the production image's own command."""

    def __init__(self, env: dict[str, str], name: str = "daphne", server: str = "daphne") -> None:
        port = free_port()
        app = "orchestra.asgi:application"
        if server == "image":
            command = image_web_command(port)
        elif server == "uvicorn":
            command = [
                sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port",
                str(port), "--lifespan", "on", "--no-access-log", "--no-proxy-headers",
            ]  # fmt: skip
        elif server == "granian":
            command = [
                sys.executable, "-m", "granian", app, "--interface", "asgi", "--host",
                "127.0.0.1", "--port", str(port), "--no-access-log",
            ]  # fmt: skip
        else:
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
        super().__init__(name, command, env, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(
        self, ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT
    ) -> Self:
        return super().start(ready or port_open(self.port), timeout)


class CeleryWorker(ServerProcess):
    """A real Celery worker process on the test broker; ready when it answers a ping."""

    def __init__(
        self,
        env: dict[str, str],
        name: str = "celery",
        concurrency: int = 8,
        queues: str = "celery",
    ) -> None:
        self.hostname = f"{name}-{os.getpid()}-{time.monotonic_ns()}@localhost"
        command = [
            sys.executable, "-m", "celery", "-A", "orchestra", "worker", "-l", "info",
            "-P", "threads", "-c", str(concurrency), "-n", self.hostname, "-Q", queues,
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        super().__init__(name, command, env)

    def start(
        self, ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT
    ) -> Self:
        from orchestra.celery import app

        def answers() -> bool:
            return bool(app.control.ping(destination=[self.hostname], timeout=0.5))

        return super().start(ready or answers, timeout)


class CeleryBeat(ServerProcess):
    """A real Celery beat process (the platform's scheduler); ready once its heartbeat is
    fresher than when it was started."""

    def __init__(self, env: dict[str, str], name: str = "beat") -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "orchestra",
            "beat",
            "-l",
            "info",
            "--pidfile",
            "",
        ]
        super().__init__(name, command, env)

    def start(
        self, ready: Callable[[], bool] | None = None, timeout: float = START_TIMEOUT
    ) -> Self:
        from apps.core.beat import beat_heartbeat_age

        started = time.monotonic()

        def ticked() -> bool:
            age = beat_heartbeat_age()
            return age is not None and age < time.monotonic() - started

        return super().start(ready or ticked, timeout)


class PrivateRedis:
    """A Redis server of a test's own (the embedded one, on a Unix socket), to kill (SIGKILL)
    and start again without touching the Redis every other test shares. ``persistent`` keeps
    an append-only file, as production's Redis does, so a restart keeps what it acknowledged."""

    def __init__(self, *, persistent: bool = False) -> None:
        from apps.core import embedded_redis

        self._embedded = embedded_redis
        self.directory = Path(tempfile.mkdtemp(prefix="ao-private-redis-"))
        self.path = self.directory / "redis.sock"
        self.data_dir = self.directory / "data" if persistent else None
        self.process = embedded_redis.start(self.path, data_dir=self.data_dir)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        self.process = self._embedded.start(self.path, data_dir=self.data_dir)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


POSTGRES_BIN = Path(os.environ.get("POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def worker_redis_start(path: Path) -> subprocess.Popen | None:
    """A pytest-xdist worker's own Redis on the Unix socket ``path``: the installed
    ``redis-server`` when there is one (the version CI's service runs), else the embedded one.
    Nothing is persisted. None when one answers there already (left by a killed run)."""
    from apps.core import embedded_redis

    if embedded_redis.answers(path):
        return None
    executable = shutil.which("redis-server")
    if executable is None:
        return embedded_redis.start(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    command = [
        executable, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
        "--save", "", "--appendonly", "no", "--dir", str(path.parent), "--logfile", os.devnull,
        "--databases", "16",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not embedded_redis.answers(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"redis-server did not start on {path}")
        time.sleep(0.02)
    return process


class PrivatePostgres:
    """A PostgreSQL cluster of a test's own (in a temporary directory, on a free port), to
    restart or stop without touching the PostgreSQL every other test shares. PostgreSQL refuses
    to run as root, so as root its commands run as the ``postgres`` user. Skips the test when
    the binaries are not there."""

    def __init__(self) -> None:
        import pytest

        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        if not (POSTGRES_BIN / "pg_ctl").exists() or (
            self._as_postgres and shutil.which("runuser") is None
        ):
            pytest.skip(f"a private PostgreSQL needs initdb and pg_ctl in {POSTGRES_BIN}")
        self.directory = Path(tempfile.mkdtemp(prefix="ao-private-postgres-"))
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self.start()

    def _run(self, command: str, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, str(POSTGRES_BIN / command), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.directory,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
            "-c max_connections=100"
        )
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown (clients disconnected, as a restart for maintenance)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def log(self) -> str:
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
