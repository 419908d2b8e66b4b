"""``GET /api/v1/connection-stats``: every process's connection pools (HTTP per
provider, the database, Redis), per process and summed, from real servers and a Celery worker
that publish their figures through Redis every ``PROCESS_STATS_SECONDS``."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from apps.accounts.models import Role
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer, CeleryWorker
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

HELLO: Any = [{"role": "user", "content": "x"}]
POOLS = {
    "PROCESS_STATS_SECONDS": "0.5",
    "HTTP_MAX_CONNECTIONS": "7",
    "HTTP_MAX_KEEPALIVE": "1",
    "REDIS_MAX_CONNECTIONS": "20",
}


def stats(server: AsgiServer, key: str) -> dict:
    answer = httpx.get(f"{server.url}/api/v1/connection-stats", headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_pid(document: dict) -> dict[int, dict]:
    return {process["pid"]: process for process in document["processes"]}


def ask(server: AsgiServer, key: str) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="chat", messages=HELLO)


@pytest.fixture(scope="module")
def servers(server_env):
    env = {**server_env, **POOLS}
    started = [AsgiServer(env, name=f"daphne-pools-{i}").start() for i in range(2)]
    yield started
    for server in started:
        server.stop()


def test_each_process_reports_its_pools_and_the_total_adds_them_up(
    two_providers, upstream_a, servers, operator_key
):
    viewer = api_key_issue(role=Role.VIEWER)
    # Other tests' servers may still hold idle connections to this (session-wide) upstream.
    others = upstream_a.stats()["open_connections"]
    upstream_a.configure(latency_ms=300)
    with ThreadPoolExecutor(5) as pool:  # five at once: five connections to provider a
        list(pool.map(lambda _: ask(servers[0], operator_key), range(5)))
    upstream_a.configure(latency_ms=0)
    ask(servers[1], operator_key)
    pids = [server.process.pid for server in servers]

    def both_report_provider_a() -> dict | None:
        document = stats(servers[1], viewer)
        processes = by_pid(document)
        ready = all("a" in processes.get(pid, {}).get("pools", {}).get("http", {}) for pid in pids)
        return document if ready else None

    document = eventually(both_report_provider_a)

    assert document["shared"] is True and document["interval_seconds"] == 0.5
    processes = by_pid(document)
    for pid in pids:
        process = processes[pid]
        assert process["role"] == "web" and process["age_seconds"] < 2
        http = process["pools"]["http"]["a"]
        assert http["pools"] >= 1 and http["size"] == 7 * http["pools"]  # HTTP_MAX_CONNECTIONS
        assert http["in_use"] == 0
        redis = process["pools"]["redis"]
        assert redis["shared"]["pools"] >= 1
        assert redis["shared"]["size"] == 20 * redis["shared"]["pools"]  # REDIS_MAX_CONNECTIONS
        assert redis["cache"]["size"] == 20 * redis["cache"]["pools"]
        assert set(process["pools"]["database"]["default"]) >= {"engine", "size", "in_use", "idle"}
    # Five connections were opened for the five requests at once; one stays open, idle.
    assert processes[pids[0]]["pools"]["http"]["a"]["idle"] == 1  # HTTP_MAX_KEEPALIVE
    # The upstream sees the other four closed a moment after our pool let them go.
    eventually(lambda: upstream_a.stats()["open_connections"] <= others + 2, 5, "four closed")

    total = document["total"]
    assert total["processes"] == len(document["processes"])
    for group, name in (("http", "a"), ("redis", "shared"), ("redis", "cache")):
        for figure in ("pools", "in_use", "idle", "size"):
            assert total["pools"][group][name][figure] == sum(
                process["pools"][group].get(name, {}).get(figure, 0)
                for process in document["processes"]
            ), (group, name, figure)


def test_a_viewer_may_read_it_an_anonymous_caller_may_not(servers):
    assert httpx.get(f"{servers[0].url}/api/v1/connection-stats").status_code == 401
    viewer = api_key_issue(role=Role.VIEWER)
    assert servers[0].process.pid in by_pid(stats(servers[0], viewer))


def test_a_killed_process_drops_out_within_three_periods(servers):
    viewer = api_key_issue(role=Role.VIEWER)
    killed = servers[1].process.pid
    httpx.get(f"{servers[1].url}/health")  # daphne starts its reporter on its first request
    eventually(lambda: killed in by_pid(stats(servers[0], viewer)))

    os.kill(killed, signal.SIGKILL)
    servers[1].process.wait()

    eventually(lambda: killed not in by_pid(stats(servers[0], viewer)), timeout=5)


def test_celery_workers_report_too(server_env, servers):
    worker = CeleryWorker({**server_env, **POOLS}, name="celery-pools", queues="pools-only")
    worker.start()
    try:
        viewer = api_key_issue(role=Role.VIEWER)

        def worker_reported() -> dict | None:
            return by_pid(stats(servers[0], viewer)).get(worker.process.pid)

        process = eventually(worker_reported)
        assert process["role"] == "worker"
        assert "redis" in process["pools"] and "database" in process["pools"]
    finally:
        worker.stop()
