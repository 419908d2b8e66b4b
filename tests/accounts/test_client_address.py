"""Who the client is, in the production image: its own web command (read from the Dockerfile)
under a per-IP limit of 20. Only ``TRUSTED_PROXIES`` decides what ``X-Forwarded-For`` is
believed; the server believes none of it itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.factories import bearer
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 20
SYNCED = 1.3  # every process has read the shared counts (limits.REFRESH_INTERVAL, plus margin)
# Limits hold across processes "to within about a second": a worker that has not counted this
# window yet admits a few before its first read of the shared count (0.1 s).
SLACK = 5
# Windows of their own (ms), apart from every other request of this run from 127.0.0.1.
DIRECT_WINDOW_MS, PROXIED_WINDOW_MS = 3_600_011, 3_600_012


def image_server(server_env: dict[str, str], window_ms: int, **env: str) -> AsgiServer:
    settings = {"RATE_LIMIT_MAX": str(LIMIT), "RATE_LIMIT_WINDOW_MS": str(window_ms), **env}
    return AsgiServer({**server_env, **settings}, name="image-web", server="image").start()


def clear_of_window_end(window_ms: int, margin: float = 15) -> None:
    left = window_ms / 1000 - time.time() % (window_ms / 1000)
    if left < margin:
        time.sleep(left + 0.1)


def statuses(server: AsgiServer, key: str, forwarded: list[str]) -> list[int]:
    """One request per header value, each on a new connection (so both workers answer)."""
    return [
        httpx.get(
            f"{server.url}/v1/models", headers={"X-Forwarded-For": f, **bearer(key)}, timeout=10
        ).status_code
        for f in forwarded
    ]


def assert_refused_past_the_limit(answers: list[int]) -> None:
    assert answers.count(200) <= SLACK, answers
    assert answers[-10:] == [429] * 10, answers


@pytest.fixture(scope="module")
def direct_server(server_env) -> Iterator[AsgiServer]:
    server = image_server(server_env, DIRECT_WINDOW_MS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(server_env) -> Iterator[AsgiServer]:
    server = image_server(server_env, PROXIED_WINDOW_MS, TRUSTED_PROXIES="127.0.0.1,::1")
    yield server
    server.stop()


def test_the_image_runs_its_own_command_with_no_proxy_header_rewriting(direct_server):
    assert "--no-proxy-headers" in direct_server.command
    assert not any(word.startswith("--forwarded-allow-ips") for word in direct_server.command)
    assert direct_server.command[direct_server.command.index("--workers") + 1] == "2"


def test_a_client_writing_x_forwarded_for_cannot_dodge_the_ip_limit(direct_server, operator_key):
    clear_of_window_end(DIRECT_WINDOW_MS)
    rotating = [f"203.0.113.{n}" for n in range(LIMIT)]
    assert statuses(direct_server, operator_key, rotating) == [200] * LIMIT
    time.sleep(SYNCED)
    # A new address each time, or shaped as nginx forwards what a client wrote.
    assert_refused_past_the_limit(
        statuses(direct_server, operator_key, [f"198.51.100.{n}" for n in range(20)])
    )
    nginx_shaped = [f"10.1.0.{n}, 127.0.0.1" for n in range(20)]
    assert statuses(direct_server, operator_key, nginx_shaped) == [429] * len(nginx_shaped)


def test_behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client(
    proxied_server, operator_key
):
    clear_of_window_end(PROXIED_WINDOW_MS)
    # What the client wrote (left) changes every time; what the proxy added (right) does not.
    spoofed = [f"10.2.0.{n}, 192.0.2.7" for n in range(LIMIT)]
    assert statuses(proxied_server, operator_key, spoofed) == [200] * LIMIT
    time.sleep(SYNCED)
    more = [f"10.3.0.{n}, 192.0.2.7" for n in range(15)] + ["192.0.2.7"] * 5
    assert_refused_past_the_limit(statuses(proxied_server, operator_key, more))
    # Trusted hops right of the client are skipped; another client behind the proxy is served.
    assert statuses(proxied_server, operator_key, ["192.0.2.7, 127.0.0.1"]) == [429]
    assert statuses(proxied_server, operator_key, ["192.0.2.8"]) == [200]
