"""A production-like, throw-away environment for benchmarks.

PostgreSQL (a fresh ``orchestra_bench`` database, or ``BENCH_DATABASE``) and Redis (database 14,
or ``BENCH_REDIS_DB``) when they answer on localhost, else SQLite and the embedded Redis;
production settings with DEBUG off; one operator with an API key, and one provider with model
``fake-model`` pointing at a fake upstream started here. Every process writes its metrics to a
``PROMETHEUS_MULTIPROC_DIR`` of the run's own, as in the production image, and samples its
event-loop lag every 20 ms (``EVENT_LOOP_LAG_SECONDS``). Every process started is stopped on
exit, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from prometheus_client import multiprocess

from tests.fake_upstream import FakeUpstream, free_port
from tests.support.processes import REPO_ROOT, ServerProcess, image_web_command, port_open

# Two benchmarks running at once on one machine need their own: BENCH_DATABASE, BENCH_REDIS_DB.
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "orchestra_bench")
BENCH_REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
LOOP_LAG = "ai_orchestra_event_loop_lag_seconds"
# The servers' event-loop lag is sampled this often (production: 0.25 s), so that a measurement
# of a few seconds holds a few hundred samples per process.
BENCH_LOOP_LAG_SECONDS = "0.02"
if not BENCH_DATABASE.replace("_", "").isalnum():
    raise SystemExit(f"BENCH_DATABASE: letters, digits and _ only, not {BENCH_DATABASE!r}")

SEED = """
from apps.accounts.models import Role
from apps.accounts.roles import roles_sync
from apps.accounts.services import api_key_create, user_set_role
from apps.providers.services import model_create, provider_create
from django.contrib.auth import get_user_model
roles_sync()
user = get_user_model().objects.create_user(username="bench")
user_set_role(user=user, role=Role.OPERATOR)
provider = provider_create(
    name="fake", kind="openai_compatible", base_url="{base_url}", max_retries=0, timeout_seconds=30
)
model_create(provider=provider, name="fake-model")
model_create(provider=provider, name="fake-embed", mode="embedding")
print(api_key_create(user=user, name="bench")[1])
"""


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@dataclass
class Environment:
    env: dict[str, str]
    upstream: FakeUpstream
    key: str
    database: str
    redis: str
    processes: list[ServerProcess] = field(default_factory=list)
    wrapper: str | None = None  # a module the servers and the worker run under (bench.hops)

    def server(self, kind: str, workers: int = 1, *, traced: bool = False) -> ServerProcess:
        """Start a server on a free port: ``daphne`` (``make run``'s), ``uvicorn`` or
        ``granian`` (the gateway), ``floor`` (``floor.py`` under uvicorn) or ``lean``
        (``lean.py``, its own server). ``traced``: under ``bench/traced_server.py``
        (tracemalloc on, snapshots on SIGUSR1); else under the environment's ``wrapper``."""
        port = free_port()
        app = "bench.floor:app" if kind == "floor" else "orchestra.asgi:application"
        upstream = f"http://127.0.0.1:{self.upstream.port}"
        env = {**self.env, "FLOOR_UPSTREAM": upstream}
        if kind == "daphne":
            command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
        elif kind == "lean":
            command = [
                sys.executable, "-m", "bench.lean", "--port", str(port), "--upstream", upstream,
                "--workers", str(workers),
            ]  # fmt: skip
        elif kind == "granian":
            command = [
                sys.executable, "-m", "granian", app, "--interface", "asgi", "--host",
                "127.0.0.1", "--port", str(port), "--workers", str(workers), *GRANIAN_OPTIONS,
            ]  # fmt: skip
        else:
            command = [
                sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--lifespan", "on", *image_websocket_options(),
            ]  # fmt: skip
        wrapper = "bench.traced_server" if traced else self.wrapper
        if wrapper:
            command[1:3] = ["-m", wrapper, command[2]]
        process = ServerProcess(f"bench-{kind}", command, env, port)
        process.start(port_open(port), timeout=120)  # a busy machine starts slowly
        time.sleep(1.0 + workers)  # every worker imported and listening
        self.processes.append(process)
        return process

    def call_records(self) -> int:
        """The call records stored so far (every LLM call the gateway made)."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite:///"):
            import sqlite3

            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
                return db.execute("SELECT count(*) FROM providers_llmcall").fetchone()[0]
        import psycopg

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as db:
            row = db.execute("SELECT count(*) FROM providers_llmcall").fetchone()
            return row[0] if row else 0

    def wait_for_records(self, expected: int, timeout: float = 30.0) -> int:
        """Wait until ``expected`` call records are stored (recorders ship every 0.25 s and
        the Celery worker stores them); returns how many are, once it stops growing."""
        deadline = time.monotonic() + timeout
        count, last_change = self.call_records(), time.monotonic()
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.call_records()
            if now != count:
                count, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > 10:
                break
        return count

    def celery_worker(self, concurrency: int = 16, nice: int = 0) -> ServerProcess:
        """A worker as production runs one: it stores call records and answers WebSockets;
        ``nice``: at that lower priority (``nice -n``)."""
        command = [
            sys.executable, "-m", "celery", "-A", "orchestra", "worker", "-P", "threads",
            "-c", str(concurrency), "-l", "warning", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        if self.wrapper:
            command[1:3] = ["-m", self.wrapper, command[2]]
        if nice:
            command = ["nice", "-n", str(nice), *command]
        process = ServerProcess("bench-celery", command, self.env)
        process.start(lambda: _worker_ready(self.env), timeout=60)
        self.processes.append(process)
        return process

    def worker_cpu_seconds(self) -> float:
        """CPU time the Celery worker has used so far (user and system)."""
        worker = next(p for p in self.processes if p.name == "bench-celery")
        assert worker.process is not None
        times = psutil.Process(worker.process.pid).cpu_times()
        return times.user + times.system

    def loop_lag(self) -> dict[int, dict[float, float]]:
        """Each web process's event-loop lag histogram so far, by pid: the cumulative count of
        each bucket by its bound (``inf`` the last). Read from the process's own file in the
        metrics directory, since ``/metrics`` sums the processes of a role."""
        lags: dict[int, dict[float, float]] = {}
        for path in Path(self.env["PROMETHEUS_MULTIPROC_DIR"]).glob("histogram_*.db"):
            pid = int(path.stem.removeprefix("histogram_"))
            for metric in multiprocess.MultiProcessCollector.merge([str(path)]):
                if metric.name != LOOP_LAG:
                    continue
                buckets = {
                    float(sample.labels["le"]): sample.value
                    for sample in metric.samples
                    if sample.name == f"{LOOP_LAG}_bucket" and sample.labels["role"] == "web"
                }
                if buckets:
                    lags[pid] = buckets
        return lags

    def stop(self, process: ServerProcess) -> None:
        process.stop()
        self.processes.remove(process)


# granian's fastest settings for this application: asyncio tasks on uvloop, one runtime thread
# per worker, HTTP/1 only (what a proxy in front speaks), no access log; as many requests at once
# per worker as uvicorn takes (its default backpressure is 1024 / workers).
GRANIAN_OPTIONS = [
    "--loop", "uvloop", "--runtime-mode", "st", "--http", "1", "--no-access-log",
    "--log-level", "warning", "--backpressure", "4096", "--backlog", "4096",
]  # fmt: skip


def image_websocket_options() -> list[str]:
    """The production image's ``--ws*`` options (its Dockerfile's command), so the benchmark
    measures WebSockets as production serves them."""
    words = image_web_command(0)
    options: list[str] = []
    for index, word in enumerate(words):
        if word.startswith("--ws"):
            options.append(word)
            value = words[index + 1] if index + 1 < len(words) else "--"
            if "=" not in word and not value.startswith("--"):
                options.append(value)
    return options


def save_report(name: str, report: dict) -> Path:
    """Keep a bench's figures as ``var/bench/<name>-<time>.json`` and say where."""
    out = REPO_ROOT / "var" / "bench" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nFigures saved to {out}")
    return out


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE (inherited by the servers and clients it starts) to
    ``wanted`` where allowed (the hard limit too, as root); returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, wanted)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _worker_ready(env: dict[str, str]) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "orchestra", "inspect", "ping", "-t", "1"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    return "pong" in result.stdout


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _fresh_postgres_database(name: str = BENCH_DATABASE, template: str | None = None) -> None:
    """``name`` made afresh: empty, or a copy of the database ``template`` (which nobody may be
    connected to meanwhile)."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))


def django_in_process(
    database: str, *, redis_db: int, fresh: bool = True, template: str | None = None
) -> None:
    """Django set up in this process, as benchmarks that call the project's code directly
    need it: production settings (DEBUG off, plain HTTP, the test client's host allowed) on
    ``database`` of the local PostgreSQL, made afresh first when ``fresh`` (a copy of
    ``template`` when given), then migrated; Redis database ``redis_db``."""
    if fresh:
        _fresh_postgres_database(database, template)
    os.environ |= {
        "DJANGO_SETTINGS_MODULE": "orchestra.settings.production",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "LOG_LEVEL": "WARNING",
    }
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


@contextlib.contextmanager
def environment(wrapper: str | None = None, worker_nice: int = 0) -> Iterator[Environment]:
    """``wrapper``: a module the servers and the Celery worker run under
    (``python -m <wrapper> uvicorn|celery ...``: ``bench.hops``); ``worker_nice``: the Celery
    worker runs at that lower priority (``nice -n``)."""
    var = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    metrics = var / "prometheus"
    metrics.mkdir()
    cleanups: list = []
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "CACHE_", "CELERY_", "CHANNEL_"))
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "orchestra.settings.production",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "API_KEY_CACHE_SECONDS": "60",
        "ORCHESTRA_VAR_DIR": str(var),
        "PYTHONUNBUFFERED": "1",
        # One benchmark client sends far more than a person would.
        "WEBSOCKET_MESSAGES_PER_SECOND": "100000",
        "WEBSOCKET_MESSAGE_BURST": "100000",
        # Every load generator calls from 127.0.0.1: the per-IP limit stays on (its cost is
        # measured) but never refuses.
        "RATE_LIMIT_MAX": "1000000000",
        # The idle-connection benchmark holds thousands on one key from one address.
        "WEBSOCKET_MAX_PER_KEY": "0",
        "WEBSOCKET_MAX_PER_ADDRESS": "0",
        # Every process writes its metrics there, as in the production image.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "EVENT_LOOP_LAG_SECONDS": os.environ.get("EVENT_LOOP_LAG_SECONDS", BENCH_LOOP_LAG_SECONDS),
    }
    if _answers(5432):
        _fresh_postgres_database(BENCH_DATABASE)  # as set now (bench.profile_gateway sets its own)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
        database = "PostgreSQL"
    else:
        env["DATABASE_URL"] = f"sqlite:///{var / 'bench.sqlite3'}"
        database = "SQLite"
    if _answers(6379):
        env["REDIS_URL"] = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        redis_kind = "Redis 127.0.0.1:6379"
    else:
        from apps.core import embedded_redis

        socket_path = embedded_redis.socket_path(var)
        cleanups.append(embedded_redis.start(socket_path).terminate)
        env["REDIS_URL"] = f"unix://{socket_path}"
        redis_kind = "embedded Redis"
    upstream = FakeUpstream(name="bench").start()
    cleanups.append(upstream.stop)
    bench = None
    try:
        _manage(env, "migrate", "--noinput", "-v", "0")
        key = _manage(env, "shell", "-c", SEED.format(base_url=upstream.base_url)).strip()
        bench = Environment(
            env, upstream, key.splitlines()[-1], database, redis_kind, wrapper=wrapper
        )
        bench.celery_worker(nice=worker_nice)
        yield bench
    finally:
        for process in bench.processes if bench else []:
            process.stop()
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        shutil.rmtree(var, ignore_errors=True)
