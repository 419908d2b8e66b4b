"""The event bus: published from web processes and Celery workers, received by subscribers."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.core.events import EventError, publish, validate_event
from apps.providers.models import Provider
from apps.providers.tasks import probe_providers
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import AsgiServer
from tests.support.providers import routing

issue_key = database_sync_to_async(api_key_issue)


async def subscribed(server: AsgiServer, key: str, *channels: str):
    ws = await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    )
    for channel in channels:
        await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        assert json.loads(await ws.recv()) == {"type": "subscribed", "channel": channel}
    return ws


async def next_event(ws, timeout: float = 10) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "event":
            return message


@pytest.mark.django_db(transaction=True)
async def test_event_published_by_a_celery_task_reaches_a_subscriber(
    two_providers, ws_server, celery_worker
):
    ws = await subscribed(ws_server, await issue_key(role=Role.VIEWER), "metrics")
    async with ws:
        await asyncio.to_thread(probe_providers.delay)
        received = {}
        while len(received) < 2:
            event = await next_event(ws)
            received[event["data"]["provider"]] = event
    assert received["a"]["channel"] == "metrics" and received["a"]["event"] == "provider.health"
    assert received["a"]["data"]["status"] == "ok" and received["a"]["data"]["latency_ms"] > 0


@pytest.mark.django_db(transaction=True)
async def test_event_published_by_another_web_process_reaches_a_subscriber(asgi_server, server_env):
    other = await asyncio.to_thread(AsgiServer(server_env, name="daphne-publisher").start)
    try:
        ws = await subscribed(asgi_server, await issue_key(role=Role.VIEWER), "alerts", "widget:42")
        async with ws:
            admin_key = await issue_key(role=Role.ADMIN)
            for payload in (
                {
                    "channel": "alerts",
                    "event": "alert.raised",
                    "data": {"title": "disk almost full", "severity": "warning"},
                },
                {
                    "channel": "widget:42",
                    "event": "widget.updated",
                    "data": {"id": 42, "status": "running"},
                },
            ):
                response = await asyncio.to_thread(
                    httpx.post,
                    f"{other.url}/api/v1/events",
                    json=payload,
                    headers={"Authorization": f"Bearer {admin_key}"},
                )
                assert response.status_code == 202
                event = await next_event(ws)
                assert {k: event[k] for k in ("channel", "event", "data")} == payload
    finally:
        await asyncio.to_thread(other.stop)


@pytest.mark.django_db(transaction=True)
async def test_gateway_publishes_an_alert_when_a_circuit_opens(
    two_providers, asgi_server, operator_key, upstream_a
):
    await database_sync_to_async(routing)(breaker_failure_threshold=1)
    await database_sync_to_async(Provider.objects.filter(name="a").update)(max_retries=0)
    upstream_a.configure(status=500)
    ws = await subscribed(asgi_server, await issue_key(role=Role.VIEWER), "alerts")
    async with ws:
        await asyncio.to_thread(
            httpx.post,
            f"{asgi_server.url}/v1/chat/completions",
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {operator_key}"},
        )
        event = await next_event(ws)
    assert event["event"] == "circuit.opened" and event["data"]["provider"] == "a"


@pytest.mark.django_db(transaction=True)
async def test_only_operators_may_subscribe_to_the_logs(asgi_server):
    ws = await subscribed(asgi_server, await issue_key(role=Role.VIEWER), "alerts")
    async with ws:
        await ws.send(json.dumps({"type": "subscribe", "channel": "logs"}))
        answer = json.loads(await ws.recv())
        assert answer["type"] == "error" and answer["code"] == "forbidden"
        await ws.send(json.dumps({"type": "ping", "id": "p"}))  # the connection stays open
        assert json.loads(await ws.recv()) == {"type": "pong", "id": "p"}


@pytest.mark.django_db(transaction=True)
async def test_unsubscribed_channels_are_not_delivered(ws_server):
    key = await issue_key(role=Role.OPERATOR)
    ws = await subscribed(ws_server, key, "logs")
    async with ws:
        await ws.send(json.dumps({"type": "unsubscribe", "channel": "logs"}))
        assert json.loads(await ws.recv()) == {"type": "unsubscribed", "channel": "logs"}
        await asyncio.to_thread(
            publish,
            "logs",
            "log.record",
            {
                "at": "2025-01-01T00:00:00+00:00",
                "level": "WARNING",
                "logger": "x",
                "message": "m",
                "request_id": "-",
            },
        )
        await ws.send(json.dumps({"type": "ping", "id": "p"}))
        assert json.loads(await ws.recv()) == {"type": "pong", "id": "p"}


@pytest.mark.parametrize(
    ("channel", "event", "data"),
    [
        ("alerts", "no.such.event", {}),
        ("nowhere", "alert.raised", {"title": "t", "severity": "s"}),
        ("metrics", "alert.raised", {"title": "t", "severity": "s"}),
        ("alerts", "alert.raised", {"title": "t"}),
        ("alerts", "alert.raised", {"title": 5, "severity": "s"}),
        ("alerts", "alert.raised", ["not", "a", "dict"]),
        ("widget:abc", "widget.updated", {"id": 1, "status": "x"}),
        ("widget", "widget.updated", {"id": 1, "status": "x"}),
    ],
)
def test_events_of_an_unregistered_shape_are_refused(channel, event, data):
    with pytest.raises(EventError):
        validate_event(channel, event, data)


@pytest.mark.django_db
def test_publishing_through_the_api_needs_an_admin_and_a_valid_event():
    payload = {"channel": "alerts", "event": "alert.raised", "data": {"title": "x"}}
    operator = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    assert operator.post("/api/v1/events", payload, format="json").status_code == 403
    admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = admin.post("/api/v1/events", payload, format="json")
    assert response.status_code == 400 and "data" in response.json()["error"]["details"]
    assert {t["event"] for t in admin.get("/api/v1/events").json()} >= {"alert.raised"}
