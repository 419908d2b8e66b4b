"""A task's changes and tokens reach WebSocket subscribers (real daphne, worker and Redis)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from apps.agents.models import AgentTask
from apps.agents.services import agent_task_cancel, agent_task_create
from tests.support.factories import api_key_issue

pytestmark = pytest.mark.django_db(transaction=True)

issue_key = database_sync_to_async(api_key_issue)


async def subscribed(server, key: str, *channels: str):
    ws = await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    )
    for channel in channels:
        await subscribe(ws, channel)
    return ws


async def subscribe(ws, channel: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
    while True:  # events of channels subscribed before may come first
        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if message["type"] == "subscribed":
            assert message["channel"] == channel
            return


async def next_event(ws, timeout: float = 20) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if message["type"] == "event":
            return message


async def test_a_tasks_changes_and_the_agents_status_reach_a_subscriber(
    agent, asgi_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=50, tokens=10)
    ws = await subscribed(asgi_server, await issue_key(role=Role.VIEWER), "agents")
    async with ws:
        task = await database_sync_to_async(agent_task_create)(agent=agent, prompt="Plan")
        task_events, statuses = [], []
        while not task_events or task_events[-1]["status"] not in ("succeeded", "failed"):
            event = await next_event(ws)
            assert event["channel"] == "agents"
            if event["event"] == "agent.task":
                task_events.append(event["data"])
            else:
                assert event["event"] == "agent.status"
                statuses.append(event["data"])
        final_status = await next_event(ws)  # the status follows its task's change
    assert [e["status"] for e in task_events] == ["queued", "running", "succeeded"]
    assert all(e == {**e, "agent": agent.pk, "task": task.pk, "error": ""} for e in task_events)
    statuses.append(final_status["data"])
    assert [s["status"] for s in statuses] == ["idle", "busy", "idle"]
    assert all(s["agent"] == agent.pk and s["name"] == "planner" for s in statuses)


async def test_a_running_tasks_tokens_reach_its_subscribers(
    agent, asgi_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=100, tokens=600)  # long enough to subscribe midway
    key = await issue_key(role=Role.VIEWER)
    task = await database_sync_to_async(agent_task_create)(agent=agent, prompt="Plan")
    ws = await subscribed(asgi_server, key, f"agent_task:{task.pk}")
    async with ws:
        tokens = [await next_event(ws) for _ in range(3)]
        await database_sync_to_async(agent_task_cancel)(task=task, by=None)
    assert {t["event"] for t in tokens} == {"agent_task.token"}
    assert {t["channel"] for t in tokens} == {f"agent_task:{task.pk}"}
    assert all(t["data"]["task"] == task.pk and t["data"]["content"] for t in tokens)
    await asyncio.to_thread(upstream_a.wait_for, lambda s: s["client_disconnects"] == 1, 10)
    status = await database_sync_to_async(lambda: AgentTask.objects.get(pk=task.pk).status)()
    assert status == "cancelled"


async def test_an_agent_message_runs_a_task_and_streams_it(
    agent, asgi_server, celery_worker, upstream_a
):
    upstream_a.configure(chunk_delay_ms=20, tokens=12)
    key = await issue_key(role=Role.OPERATOR)
    ws = await subscribed(asgi_server, key)
    async with ws:
        await ws.send(
            json.dumps({"type": "agent", "id": "a1", "agent": "planner", "prompt": "Plan it"})
        )
        subscribed_to = json.loads(await asyncio.wait_for(ws.recv(), 10))
        started = json.loads(await asyncio.wait_for(ws.recv(), 10))
        text = ""
        while len(text.split()) < 12:
            event = await next_event(ws)
            text += event["data"]["content"]
        await ws.send(json.dumps({"type": "agent", "id": "a2", "agent": "nobody", "prompt": "x"}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
    task_id = started["task"]
    assert subscribed_to == {"type": "subscribed", "channel": f"agent_task:{task_id}"}
    assert started == {
        "type": "agent_task_started",
        "id": "a1",
        "task": task_id,
        "agent": agent.pk,
        "status": "queued",
    }
    assert text.startswith("Hello from a")
    assert refused["type"] == "error" and refused["code"] == "invalid_request"
    task = await database_sync_to_async(AgentTask.objects.get)(pk=task_id)
    assert task.prompt == "Plan it" and task.created_by_id is not None
