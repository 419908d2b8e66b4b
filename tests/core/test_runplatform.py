"""``manage.py runplatform`` supervises its children: a crashed one is restarted, one that keeps
crashing stops the platform; the embedded Redis keeps its data across a crash.

The real-process tests start the platform as ``make run`` does (nothing configured, a temporary
var dir), find the children's pids in ``var/runplatform.json`` and SIGKILL them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from celery.utils.nodenames import default_nodename

from apps.core import embedded_redis
from apps.core.management.commands import runplatform
from tests.support.processes import READY, REPO_ROOT, ServerProcess, free_port, fresh_checkout_env
from tests.support.waiting import eventually


class Platform:
    """``manage.py runplatform`` on a free port and its own var dir, ready once it says so."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = fresh_checkout_env(var_dir, ORCHESTRA_ADMIN_PASSWORD="pw-runplatform-9")
        command = [sys.executable, "manage.py", "runplatform", "--port", str(self.port)]
        self.server = ServerProcess("runplatform", command, env)
        self.socket = embedded_redis.socket_path(var_dir)
        self.celery = Celery(
            "runplatform-test", broker=f"redis+socket://{self.socket}", set_as_current=False
        )

    def start(self) -> Platform:
        self.server.start(lambda: READY in self.output(), timeout=120)
        return self

    def stop(self) -> None:
        self.server.stop(timeout=30)
        self.celery.close()

    def output(self) -> str:
        return self.server.output()

    def pids(self) -> dict[str, int | None]:
        return json.loads((self.var_dir / "runplatform.json").read_text())["children"]

    def worker_answers(self) -> bool:
        # A connection of its own each time: a pooled one would fail once after a restart.
        with self.celery.connection_for_write() as connection:
            replies = self.celery.control.ping(
                destination=[default_nodename(None)], timeout=1, connection=connection
            )
        return bool(replies)

    def task_runs(self) -> bool:
        """A task sent now is received and run by a worker (not only its control channel)."""
        with self.celery.connection_for_write() as connection:
            task_id = self.celery.send_task(
                "providers.store_call_records", connection=connection
            ).id
        return bool(
            eventually(
                lambda: f"store_call_records[{task_id}] succeeded" in self.output(),
                30,
                f"task {task_id} to run",
            )
        )

    def redis(self) -> redis.Redis:
        """A new client: one connected before a restart of the server would fail once."""
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/health", timeout=5)


def restarted(platform: Platform, name: str, old_pid: int) -> int:
    """Wait until ``name`` runs again under a new pid; that pid."""

    def new_pid() -> int:
        pid = platform.pids()[name]
        return pid if pid is not None and pid != old_pid else 0

    return eventually(new_pid, 30, f"{name} to be restarted")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- The restart policy -------------------------------------------------------------------------


def test_backoff_doubles_from_half_a_second_then_gives_up_after_five_crashes_a_minute():
    crashes = runplatform.CrashHistory()
    delays = [crashes.record(100.0 + i) for i in range(5)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert crashes.record(106.0) is None


def test_crashes_older_than_a_minute_are_forgotten():
    crashes = runplatform.CrashHistory()
    for i in range(5):
        crashes.record(100.0 + i)
    assert crashes.record(200.0) == 0.5


def test_backoff_is_capped_at_ten_seconds(monkeypatch):
    monkeypatch.setattr(runplatform, "MAX_CRASHES_IN_WINDOW", 10)
    crashes = runplatform.CrashHistory()
    assert [crashes.record(float(i)) for i in range(7)][-2:] == [10.0, 10.0]


# --- Where it listens ---------------------------------------------------------------------------


def run_options(*args: str) -> dict:
    parser = runplatform.Command().create_parser("manage.py", "runplatform")
    return vars(parser.parse_args(list(args)))


def test_host_and_port_come_from_orchestra_host_and_port(monkeypatch):
    monkeypatch.setenv("ORCHESTRA_HOST", "0.0.0.0")
    monkeypatch.setenv("ORCHESTRA_PORT", "9100")
    assert run_options()["host"] == "0.0.0.0" and run_options()["port"] == 9100
    assert run_options("--port", "9200")["port"] == 9200


@pytest.mark.parametrize(
    ("make_args", "expected"),
    [
        (["PORT=9000"], "manage.py runplatform --port 9000"),
        (["PORT=9000", "HOST=0.0.0.0"], "manage.py runplatform --host 0.0.0.0 --port 9000"),
        ([], "manage.py runplatform"),
    ],
)
def test_make_run_passes_port_and_host(make_args, expected):
    env = {key: value for key, value in os.environ.items() if key not in ("HOST", "PORT")}
    try:
        command = ["make", "-n", "run", *make_args]
        dry_run = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("make is not installed")
    line = next(line for line in dry_run.stdout.splitlines() if "runplatform" in line)
    assert " ".join(line.split()).endswith(expected)


# --- The embedded Redis keeps what it acknowledged ----------------------------------------------


def test_embedded_redis_keeps_acknowledged_writes_across_a_crash(tmp_path):
    path = tmp_path / "redis.sock"
    process = embedded_redis.start(path, data_dir=tmp_path)
    try:
        client = redis.Redis(unix_socket_path=str(path))
        for i in range(200):  # one call record at a time, each acknowledged
            client.rpush("orchestra:call-records", f"record-{i}")
        process.kill()
        process.wait()
        assert not embedded_redis.answers(path)

        process = embedded_redis.start(path, data_dir=tmp_path)
        client = redis.Redis(unix_socket_path=str(path))
        assert client.lrange("orchestra:call-records", 0, -1) == [
            f"record-{i}".encode() for i in range(200)
        ]
        assert (tmp_path / "redis.aof").exists()
        # everysec would pass here on a quiet disk but lose writes under load (seen in
        # test_a_killed_embedded_redis_is_restarted_with_its_data): it holds a write back, yet
        # replies, while a background fsync is slow.
        assert client.config_get("appendfsync") == {"appendfsync": "no"}
    finally:
        process.kill()
        process.wait()


def test_embedded_redis_without_a_data_dir_keeps_nothing(tmp_path):
    path = tmp_path / "redis.sock"
    process = embedded_redis.start(path)
    try:
        redis.Redis(unix_socket_path=str(path)).rpush("list", "item")
        process.kill()
        process.wait()
        process = embedded_redis.start(path)
        assert redis.Redis(unix_socket_path=str(path)).llen("list") == 0
        assert not list(tmp_path.glob("*.aof"))
    finally:
        process.kill()
        process.wait()


# --- The supervisor, against real processes ------------------------------------------------------


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("runplatform") / "var").start()
    yield platform
    platform.stop()


@pytest.mark.slow
def test_a_killed_worker_is_restarted_while_the_web_keeps_answering(platform):
    before = platform.pids()
    os.kill(before["worker"], signal.SIGKILL)

    for _ in range(10):  # meanwhile
        assert platform.health().status_code == 200
        time.sleep(0.1)
    new_pid = restarted(platform, "worker", before["worker"])
    eventually(platform.worker_answers, 60, "the new worker to answer a ping")
    assert platform.task_runs()

    output = platform.output()
    assert f"worker (pid {before['worker']}) was killed by SIGKILL; restarting it in" in output
    assert f"Restarted worker (pid {new_pid})." in output
    after = platform.pids()
    assert {name: after[name] for name in ("redis", "web", "beat")} == {
        name: before[name] for name in ("redis", "web", "beat")
    }
    assert platform.server.process.poll() is None


@pytest.mark.slow
def test_a_killed_embedded_redis_is_restarted_with_its_data(platform):
    platform.redis().rpush("test:kept", *range(200))
    before = platform.pids()
    os.kill(before["redis"], signal.SIGKILL)

    new_pid = restarted(platform, "redis", before["redis"])
    assert platform.redis().llen("test:kept") == 200
    assert f"redis (pid {before['redis']}) was killed by SIGKILL; restarting it in" in (
        platform.output()
    )
    assert f"Restarted redis (pid {new_pid})." in platform.output()
    eventually(lambda: platform.health().json()["services"]["cache"] == "ok", 30, "the web's cache")
    eventually(platform.worker_answers, 60, "the worker to answer a ping again")
    assert platform.task_runs()
    after = platform.pids()
    assert {name: after[name] for name in ("web", "worker", "beat")} == {
        name: before[name] for name in ("web", "worker", "beat")
    }


@pytest.mark.slow
def test_a_child_that_keeps_crashing_stops_the_platform(tmp_path):
    platform = Platform(tmp_path / "var").start()
    try:
        first = platform.pids()
        killed: set[int] = set()

        def kill_beat_again() -> bool:
            try:
                pid = platform.pids()["beat"]
            except FileNotFoundError:  # removed by the platform as it stops
                pid = None
            if platform.server.process.poll() is not None:
                return True
            if pid and pid not in killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
            return False

        eventually(kill_beat_again, 60, "the platform to give up")
        assert platform.server.process.wait(30) == 1
        assert len(killed) == 6
        output = platform.output()
        assert "beat kept crashing (more than 5 times within 60 s)" in output
        for name in ("web", "worker", "beat", "redis"):
            assert f"Stopped {name}." in output
        assert not any(alive(pid) for pid in (first["web"], first["worker"], first["redis"]))
        assert not (tmp_path / "var" / "runplatform.json").exists()
    finally:
        platform.stop()
