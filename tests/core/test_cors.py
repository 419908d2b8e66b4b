"""CORS for browser clients of ``/v1`` and the SSE API (django-cors-headers' settings, applied
to ``/v1`` beside Django too), off by default; against real servers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.factories import bearer
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example.net"
PATHS = ("/v1/chat/completions", "/api/streaming/chat")


def preflight(server: AsgiServer, path: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{server.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-stainless-os",
        },
    )


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.fixture(scope="module")
def cors_server(server_env) -> Iterator[AsgiServer]:
    env = {**server_env, "CORS_ALLOWED_ORIGINS": f"{ALLOWED},http://localhost:5173"}
    server = AsgiServer(env, name="daphne-cors").start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", PATHS)
def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers(cors_server, path):
    answer = preflight(cors_server, path, ALLOWED)

    assert answer.status_code == 200
    headers = cors_headers(answer)
    assert headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in headers["access-control-allow-methods"]
    allowed = {name.strip() for name in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "x-stainless-os"} <= allowed
    assert headers["access-control-max-age"] == "86400"
    assert "access-control-allow-credentials" not in headers
    assert "origin" in answer.headers["vary"].lower()


@pytest.mark.parametrize("path", PATHS)
def test_a_preflight_from_another_origin_gets_no_cors_headers(cors_server, path):
    answer = preflight(cors_server, path, OTHER)
    assert cors_headers(answer) == {}


def test_answers_and_errors_carry_the_headers_for_an_allowed_origin(cors_server, operator_key):
    error = httpx.post(f"{cors_server.url}/v1/chat/completions", headers={"Origin": ALLOWED})
    assert error.status_code == 401
    assert error.headers["access-control-allow-origin"] == ALLOWED
    exposed = error.headers["access-control-expose-headers"]
    assert "x-request-id" in exposed and "retry-after" in exposed
    assert error.json()["error"]["code"] == "missing_api_key"  # the answer itself unchanged

    models = httpx.get(
        f"{cors_server.url}/v1/models", headers={"Origin": ALLOWED, **bearer(operator_key)}
    )
    assert models.status_code == 200 and models.headers["access-control-allow-origin"] == ALLOWED

    sse = httpx.post(f"{cors_server.url}/api/streaming/chat", headers={"Origin": ALLOWED})
    assert sse.status_code == 401 and sse.headers["access-control-allow-origin"] == ALLOWED

    other = httpx.post(f"{cors_server.url}/v1/chat/completions", headers={"Origin": OTHER})
    assert other.status_code == 401 and cors_headers(other) == {}


def test_pages_outside_the_apis_get_no_cors_headers(cors_server):
    for path in ("/admin/login/", "/health"):
        answer = httpx.get(f"{cors_server.url}{path}", headers={"Origin": ALLOWED})
        assert cors_headers(answer) == {}, path


@pytest.mark.parametrize("path", PATHS)
def test_cors_is_off_by_default(asgi_server, path):
    answer = preflight(asgi_server, path, ALLOWED)
    assert cors_headers(answer) == {}
    assert answer.status_code == 405  # as without CORS: neither path answers OPTIONS
