"""One set of rules for what callers send: ``/v1``, the query API, the SSE API and the WebSocket
accept exactly the same values for the same fields (one shared table of cases), and text that
cannot be encoded is the caller's mistake, never the provider's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
import websockets

from apps.core.runtime import run_sync
from apps.providers.llm import Caller, LlmRequest, ProviderError, complete
from apps.providers.selectors import circuit_breaker_list
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

BASE = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def with_content(content) -> dict:
    return {**BASE, "messages": [{"role": "user", "content": content}]}


REFUSED = {
    "content a number": with_content(5),
    "content parts not objects": with_content(["hi"]),
    "max_tokens a string": {**BASE, "max_tokens": "10"},
    "max_tokens too large": {**BASE, "max_tokens": 2**70},
    "max_tokens zero": {**BASE, "max_tokens": 0},
    "temperature out of range": {**BASE, "temperature": 3},
    "top_p a string": {**BASE, "top_p": "0.5"},
    "no messages": {**BASE, "messages": []},
    "unknown role": {**BASE, "messages": [{"role": "king", "content": "hi"}]},
    "five stop sequences": {**BASE, "stop": ["a", "b", "c", "d", "e"]},
    "model a number": {**BASE, "model": 5},
    "lone surrogate": with_content("broken \ud800 text"),
    "lone surrogate in stop": {**BASE, "stop": "\udfff"},
    "NUL in content": with_content("a\x00b"),
    "NUL in model": {**BASE, "model": "ch\x00at"},
    "NUL in user": {**BASE, "user": "\x00"},
}
ACCEPTED = {
    "content parts": with_content([{"type": "text", "text": "hi"}]),
    "max_tokens": {**BASE, "max_tokens": 10},
    "one stop string": {**BASE, "stop": "x"},
    "temperature zero": {**BASE, "temperature": 0},
    "null content": {**BASE, "messages": [{"role": "user", "content": None}]},
}


def raw(payload: dict) -> bytes:
    """JSON text as a client sends it; lone surrogates travel as ``\\ud800`` escapes."""
    return json.dumps(payload).encode()


def http(path: str) -> Callable[[AsgiServer, str, dict], bool]:
    def send(server: AsgiServer, key: str, payload: dict) -> bool:
        response = httpx.post(
            f"{server.url}{path}",
            content=raw(payload),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code in (200, 400), response.text
        assert response.headers["content-type"].startswith(("application/json", "text/event"))
        return response.status_code == 200

    return send


def websocket(server: AsgiServer, key: str, payload: dict) -> bool:
    async def ask() -> bool:
        headers = {"Authorization": f"Bearer {key}"}
        async with websockets.connect(server.ws_url, additional_headers=headers) as ws:
            message = {"type": "query", "id": "q", **payload}
            await ws.send(raw(message).decode())
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if reply["type"] in ("response", "error"):
                    break
            await ws.send(json.dumps({"type": "ping", "id": "p"}))  # the connection stays open
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"
        assert reply["type"] == "response" or reply["code"] == "invalid_request", reply
        return reply["type"] == "response"

    return asyncio.run(ask())


ENTRY_POINTS = {
    "v1": http("/v1/chat/completions"),
    "query": http("/api/v1/query"),
    "sse": http("/api/streaming/chat"),
    "websocket": websocket,
}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_entry_point_refuses_and_accepts_the_same_values(
    entry_point, two_providers, asgi_server, celery_worker, operator_key, upstream_a
):
    send = ENTRY_POINTS[entry_point]
    for case, payload in REFUSED.items():
        before = upstream_a.stats()["requests"]
        assert not send(asgi_server, operator_key, payload), f"{entry_point} accepted {case}"
        assert upstream_a.stats()["requests"] == before, f"{case} reached the provider"
    for case, payload in ACCEPTED.items():
        assert send(asgi_server, operator_key, payload), f"{entry_point} refused {case}"
    assert {view.provider: view.failures for view in circuit_breaker_list()}["a"] == 0


def test_a_nul_is_refused_on_v1_naming_where_it_is(two_providers, asgi_server, operator_key):
    response = httpx.post(
        f"{asgi_server.url}/v1/chat/completions",
        content=raw(with_content("a\x00b")),
        headers={"Authorization": f"Bearer {operator_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages.0.content"
    assert "NUL" in error["message"]


def test_text_the_core_cannot_encode_never_counts_against_a_provider(two_providers, upstream_a):
    """Past every entry point's check (a task building its own request, say), a lone surrogate
    is the caller's bad request: not retried, not failed over, no circuit failure."""
    request = LlmRequest(
        messages=[{"role": "user", "content": "\ud800"}], model="chat", caller=Caller()
    )
    for _ in range(3):
        with pytest.raises(ProviderError) as raised:
            run_sync(complete(request))
        assert raised.value.code == "bad_request" and raised.value.status_for_client == 400
    assert {view.provider: view.state for view in circuit_breaker_list()} == {
        "a": "closed",
        "b": "closed",
    }
    assert {view.provider: view.failures for view in circuit_breaker_list()}["a"] == 0
    assert upstream_a.stats()["requests"] == 0
