"""A build started and followed over ``/ws/`` (real daphne, worker, Redis, fake upstream), and a
build whose worker is killed mid-step (a real SIGKILL)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from apps.artifacts.models import Artifact
from apps.builds.models import Build, BuildStatus, RunStatus
from apps.builds.services import build_create, build_retry, builds_sweep
from tests.builds.test_build_run import CODE, PLAN, REVIEW, finished, step_status, three_steps
from tests.support.factories import api_key_issue
from tests.support.processes import CeleryWorker
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)


async def receive(ws, timeout: float = 20) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_a_build_message_starts_a_build_and_streams_it(
    agents, upstream_a, asgi_server, celery_worker
):
    upstream_a.configure(chunk_delay_ms=5)
    upstream_a.enqueue({"content": PLAN}, {"content": CODE}, {"content": REVIEW})
    key = await database_sync_to_async(api_key_issue)(role=Role.OPERATOR)
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(asgi_server.ws_url, additional_headers=headers) as ws:
        await ws.send(
            json.dumps(
                {
                    "type": "build",
                    "id": "b1",
                    "title": "Widgets",
                    "input": "a widget app",
                    "steps": three_steps(),
                }
            )
        )
        messages = []
        while True:
            message = await receive(ws)
            messages.append(message)
            if message.get("event") == "build.status" and message["data"]["status"] in (
                "succeeded",
                "failed",
                "cancelled",
            ):
                break
    subscribed, started = messages[0], messages[1]
    build_id = started["build"]
    assert subscribed == {"type": "subscribed", "channel": f"build:{build_id}"}
    assert started == {
        "type": "build_started",
        "id": "b1",
        "build": build_id,
        "status": "queued",
        "steps": 3,
    }
    assert messages[-1]["data"]["status"] == "succeeded"
    build = await database_sync_to_async(Build.objects.get)(pk=build_id)
    steps = await database_sync_to_async(lambda: {s.pk: s for s in build.steps.all()})()
    tokens: dict[int, str] = {}
    for message in messages:
        if message.get("event") == "build.token":
            tokens[message["data"]["step"]] = (
                tokens.get(message["data"]["step"], "") + (message["data"]["content"])
            )
    assert {steps[pk].name: text for pk, text in tokens.items()} == {
        "plan": PLAN,
        "implement": CODE,
        "review": REVIEW,
    }
    step_events = [
        (m["data"]["name"], m["data"]["status"]) for m in messages if m.get("event") == "build.step"
    ]
    assert step_events.index(("plan", "succeeded")) < step_events.index(("implement", "running"))


async def test_a_viewer_may_not_start_a_build_and_bad_steps_are_named(
    agents, asgi_server, celery_worker
):
    viewer = await database_sync_to_async(api_key_issue)(role=Role.VIEWER)
    operator = await database_sync_to_async(api_key_issue)(role=Role.OPERATOR)
    bad = [{"name": "plan", "prompt": "{steps.nothing}"}]
    for key, steps, code in (
        (viewer, three_steps(), "forbidden"),
        (operator, bad, "invalid_request"),
    ):
        headers = {"Authorization": f"Bearer {key}"}
        async with websockets.connect(asgi_server.ws_url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "build", "id": 7, "title": "t", "steps": steps}))
            reply = await receive(ws)
        assert reply["type"] == "error" and reply["code"] == code and reply["id"] == 7
    assert "Step 1" in reply["message"] and "nothing" in reply["message"]
    assert not await database_sync_to_async(Build.objects.exists)()


def test_a_killed_worker_leaves_no_build_running(agents, upstream_a, server_env, settings):
    """SIGKILL the worker in the middle of a step: the sweep fails the build (the message waits
    unacknowledged in the broker), a retry on a new worker completes it, and the step's
    artifacts are written once."""
    settings.BUILD_TASK_QUEUE = "builds-kill-test"
    env = {**server_env, "BUILD_TASK_QUEUE": "builds-kill-test"}
    upstream_a.configure(chunk_delay_ms=300, tokens=100)
    worker = CeleryWorker(env, name="doomed", queues="builds-kill-test").start()
    try:
        build = build_create(title="doomed", steps=three_steps()[:2], by=None)
        step_status(build, "plan", RunStatus.RUNNING)
        eventually(lambda: upstream_a.stats()["streams_started"] >= 1, what="the stream started")
        worker.kill()
    finally:
        worker.stop()
    build.refresh_from_db()
    assert build.status == BuildStatus.RUNNING  # nobody said otherwise yet

    settings.BUILD_STEP_STALE_SECONDS = 1
    eventually(lambda: builds_sweep() == 1, 10, "the sweep failed the step")
    build.refresh_from_db()
    assert build.status == BuildStatus.FAILED and "worker" in build.error

    upstream_a.reset()
    upstream_a.enqueue({"content": PLAN}, {"content": CODE})
    settings.BUILD_STEP_STALE_SECONDS = 120
    rescuer = CeleryWorker(env, name="rescuer", queues="builds-kill-test").start()
    try:
        build_retry(build=build)
        build = finished(build)
    finally:
        rescuer.stop()
    assert build.status == BuildStatus.SUCCEEDED
    plan = build.steps.get(name="plan")
    assert plan.attempts == 2 and plan.output == PLAN
    names = list(Artifact.objects.filter(step__build=build).values_list("name", flat=True))
    assert len(names) == len(set(names))
