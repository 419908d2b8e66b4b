"""The HTTP metric names earlier versions exported, for every entry point, and each process's
memory and CPU, summed over two real servers sharing ``PROMETHEUS_MULTIPROC_DIR`` (as
``make run`` and the production image run them)."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
import websockets.sync.client

from apps.gateway.asgi import route_of
from tests.providers.test_metrics import sample
from tests.support.factories import bearer
from tests.support.processes import AsgiServer

HELLO = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/completions/", "/v1/chat/completions"),
        ("/v1/models", "/v1/models"),
        ("/v1/models/gpt-4o-mini", "/v1/models/{model}"),
        ("/v1/responses/resp_123", "/v1/responses/{response_id}"),
        ("/v1/anything/else", "/v1/{unknown}"),
        ("/health", "/health"),
        ("/api/v1/providers/42/sync-models", "/api/v1/providers/<int:pk>/sync-models"),
        ("/api/streaming/chat", "/api/streaming/chat"),
        ("/static/admin/css/base.css", "/static/"),
        ("/no/such/page", "{unmatched}"),
        ("/v1", "{unmatched}"),
    ],
)
def test_routes_are_patterns_or_fixed_names_never_raw_paths(path, route):
    assert route_of(path) == route


def pids_of(text: str, name: str) -> set[int]:
    return {int(pid) for pid in re.findall(rf'^{name}{{pid="(\d+)"}} \S+$', text, re.MULTILINE)}


@pytest.mark.django_db(transaction=True)
def test_every_entry_point_is_counted_by_route_and_summed_over_processes(
    two_providers, server_env, operator_key, tmp_path
):
    env = {**server_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    servers = [AsgiServer(env, name=f"daphne-http-metrics-{i}").start() for i in range(2)]
    try:
        for server, requests in zip(servers, (3, 2), strict=True):
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=operator_key, max_retries=0)
            for _ in range(requests):
                client.chat.completions.create(model="chat", messages=HELLO)
            assert httpx.get(f"{server.url}/health").status_code == 200
            listed = httpx.get(f"{server.url}/api/v1/providers", headers=bearer(operator_key))
            assert listed.status_code == 200
            missing = httpx.get(f"{server.url}/api/v1/providers/999", headers=bearer(operator_key))
            assert missing.status_code == 404
        with httpx.stream(
            "POST",
            f"{servers[1].url}/api/streaming/chat",
            headers=bearer(operator_key),
            json={"messages": HELLO, "model": "chat"},
        ) as stream:
            assert stream.status_code == 200
            stream.read()
        assert httpx.post(f"{servers[0].url}/v1/chat/completions").status_code == 401
        assert httpx.get(f"{servers[0].url}/no/such/page").status_code == 404
        with websockets.sync.client.connect(
            servers[0].ws_url, additional_headers=bearer(operator_key)
        ) as socket:
            socket.send('{"type": "ping", "id": 1}')
            socket.recv()
        text = httpx.get(f"{servers[0].url}/metrics").text

        def requests(method: str, route: str, status: int) -> float:
            labels = {"method": method, "route": route, "status": str(status)}
            return sample(text, "ai_orchestra_http_requests_total", **labels)

        assert requests("POST", "/v1/chat/completions", 200) == 5
        assert requests("POST", "/v1/chat/completions", 401) == 1
        assert requests("GET", "/health", 200) == 2
        assert requests("GET", "/api/v1/providers", 200) == 2
        assert requests("GET", "/api/v1/providers/<int:pk>", 404) == 2
        assert requests("POST", "/api/streaming/chat", 200) == 1
        assert requests("GET", "{unmatched}", 404) == 1
        assert requests("GET", "/ws/", 101) == 1
        assert "/api/v1/providers/999" not in text
        duration = "ai_orchestra_http_request_duration_seconds_count"
        assert sample(text, duration, method="POST", route="/v1/chat/completions") == 6
        assert sample(text, duration, method="GET", route="/health") == 2
        # Memory and CPU of each process, labelled with its pid (for per-process memory panels).
        pids = {server.process.pid for server in servers}
        for name in (
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_virtual_memory_bytes",
            "process_open_fds",
        ):
            assert pids_of(text, name) == pids, name
        memory = re.findall(r'^process_resident_memory_bytes{pid="\d+"} (\S+)$', text, re.M)
        assert all(float(value) > 10_000_000 for value in memory)

        # A process that exits takes its gauges along; the counts it made stay in the sums.
        servers[1].stop()
        text = httpx.get(f"{servers[0].url}/metrics").text
        assert pids_of(text, "process_resident_memory_bytes") == {servers[0].process.pid}
        assert requests("POST", "/v1/chat/completions", 200) == 5
    finally:
        for server in servers:
            server.stop()
