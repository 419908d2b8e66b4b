"""Canary rollouts end to end: requests through the real daphne and the fake upstreams, the
canary judged as the beat task does (directly, and once through the real Celery worker); a
failing treatment is rolled back, a healthy one reaches 100%; the steps reach WebSocket
subscribers."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest
import websockets
from channels.db import database_sync_to_async

from apps.accounts.models import Role
from apps.experiments.hooks import CACHE_SECONDS
from apps.experiments.models import (
    CanaryRollout,
    CanaryStatus,
    Experiment,
    ExperimentPhase,
    Variant,
)
from apps.experiments.services import (
    canary_advance,
    canary_create,
    canary_rollback,
    experiment_create,
    experiment_stop,
)
from apps.experiments.tasks import advance_canaries
from apps.providers.models import LlmModel
from tests.support.factories import api_key_issue
from tests.support.providers import deploy
from tests.support.waiting import eventually

from .conftest import HELLO, planned, variants

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def treatment_model(two_providers) -> LlmModel:
    return deploy(two_providers["b"], name="fake-model-2", aliases=["chat-b"])


def send(gateway: openai.OpenAI, experiment: str, users: list[str]) -> dict[str, bool]:
    """Each user's request naming the experiment: whether it succeeded."""
    succeeded = {}
    for user in users:
        try:
            gateway.chat.completions.create(
                model="chat", messages=HELLO, user=user, extra_body={"experiment": experiment}
            )
        except openai.APIStatusError:
            succeeded[user] = False
        else:
            succeeded[user] = True
    return succeeded


# Which users a step's share takes depends on the experiment's id, which the tests run before
# decide: 60 users leave the treatment fewer than its minimum of requests about once in 10,000
# runs (30 did in about one run in 25).
USERS = 60


def shares(experiment: Experiment) -> list[float]:
    return [float(v.traffic_percentage) for v in experiment.variants.order_by("position")]


def test_a_canary_whose_treatment_fails_is_rolled_back(
    treatment_model, gateway, upstream_a, upstream_b, recorded_calls
):
    upstream_b.configure(status=500)
    experiment = experiment_create(name="canary bad", variants=variants({"model": "chat-b"}, 0))
    rollout = canary_create(
        experiment=experiment,
        treatment="treatment",
        steps=[30, 100],
        min_requests=4,
        step_interval_seconds=1,
    )
    users = [f"bad-{n}" for n in range(USERS)]
    plan = planned(experiment, users)
    treated = [u for u in users if plan[u] == "treatment"]
    assert len(treated) >= 4

    outcomes = send(gateway, "canary bad", users)

    assert [u for u, ok in outcomes.items() if not ok] == treated
    recorded_calls(len(users))
    assert canary_advance(rollout=rollout) == CanaryStatus.ROLLED_BACK
    rollout.refresh_from_db()
    assert rollout.status == CanaryStatus.ROLLED_BACK and rollout.percentage == 0
    assert rollout.reason.startswith("error rate 100.0% against the control's 0.0%")
    log = list(rollout.log.all())
    assert [(e.kind, e.percentage) for e in log] == [("started", 30), ("rolled_back", 0)]
    figures = log[-1].figures
    assert figures["treatment"]["requests"] == len(treated) == figures["treatment"]["errors"]
    assert figures["control"]["requests"] == len(users) - len(treated)
    assert shares(experiment) == [100.0, 0.0]
    assert ExperimentPhase.objects.get(experiment=experiment, number=2).reason.startswith(
        f"Canary #{rollout.pk} rolled back: error rate"
    )
    assert canary_advance(rollout=rollout) is None  # nothing more to do

    # The treatment's users are back on the control's config once the processes reload.
    upstream_b.reset()
    time.sleep(CACHE_SECONDS + 0.1)
    assert all(send(gateway, "canary bad", treated).values())
    assert upstream_b.stats()["requests"] == 0


def test_a_healthy_canary_reaches_full_traffic(
    treatment_model, gateway, upstream_a, upstream_b, recorded_calls, celery_worker
):
    for fake in (upstream_a, upstream_b):
        fake.configure(latency_ms=5)
    experiment = experiment_create(name="canary good", variants=variants({"model": "chat-b"}, 0))
    rollout = canary_create(
        experiment=experiment,
        treatment="treatment",
        steps=[20, 60, 100],
        min_requests=3,
        step_interval_seconds=1,
        latency_margin=5.0,
    )
    users = [f"good-{n}" for n in range(USERS)]
    sent = 0

    first = planned(experiment, users)
    assert all(send(gateway, "canary good", users).values())
    sent += len(users)
    recorded_calls(sent)
    time.sleep(1.0)  # the step's interval
    assert canary_advance(rollout=rollout) == "advanced"
    rollout.refresh_from_db()
    assert (rollout.percentage, rollout.status) == (60, CanaryStatus.RUNNING)
    second = planned(experiment, users)
    # The seed is kept: users on the treatment at 20% stay on it at 60%.
    assert all(second[u] == "treatment" for u in users if first[u] == "treatment")
    assert sum(v == "treatment" for v in second.values()) > sum(
        v == "treatment" for v in first.values()
    )

    time.sleep(CACHE_SECONDS + 0.1)
    assert all(send(gateway, "canary good", users).values())
    sent += len(users)
    recorded_calls(sent)
    advance_canaries.delay()  # the beat task, run by the real worker
    eventually(
        lambda: CanaryRollout.objects.get(pk=rollout.pk).status == CanaryStatus.COMPLETED,
        30,
        "the canary completed",
    )

    rollout.refresh_from_db()
    assert rollout.percentage == 100 and rollout.reason == "treatment reached 100% healthy."
    assert [(e.kind, e.percentage) for e in rollout.log.all()] == [
        ("started", 20),
        ("advanced", 60),
        ("completed", 100),
    ]
    assert shares(experiment) == [0.0, 100.0]
    assert list(
        ExperimentPhase.objects.filter(experiment=experiment).values_list("number", "seed")
    ) == [(1, "1"), (2, "1"), (3, "1")]
    upstream_b.reset()
    time.sleep(CACHE_SECONDS + 0.1)
    assert all(send(gateway, "canary good", users[:10]).values())
    assert upstream_b.stats()["requests"] == 10


def test_a_canary_waits_for_its_interval_and_its_minimum_of_requests(treatment_model):
    experiment = experiment_create(name="canary patient", variants=variants({}, 0))
    rollout = canary_create(
        experiment=experiment,
        treatment="treatment",
        steps=[5, 100],
        min_requests=1,
        step_interval_seconds=3600,
    )
    assert canary_advance(rollout=rollout) is None  # no calls
    experiment_stop(experiment=experiment)
    rollout.refresh_from_db()
    assert rollout.status == CanaryStatus.ROLLED_BACK
    assert rollout.reason == "The experiment stopped."


async def subscribed(server, key: str, channel: str):
    ws = await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {key}"}
    )
    await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
    while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "subscribed":
        pass
    return ws


async def next_event(ws) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if message["type"] == "event":
            return message


async def test_lifecycle_and_canary_events_reach_a_subscriber(asgi_server):
    key = await database_sync_to_async(api_key_issue)(role=Role.VIEWER)
    ws = await subscribed(asgi_server, key, "experiments")
    async with ws:
        experiment = await database_sync_to_async(experiment_create)(
            name="canary events", variants=variants({}, 0)
        )
        rollout = await database_sync_to_async(canary_create)(
            experiment=experiment, treatment="treatment", steps=[10, 100]
        )
        await database_sync_to_async(canary_rollback)(rollout=rollout, reason="Testing.")
        await database_sync_to_async(experiment_stop)(experiment=experiment)
        events = [await next_event(ws) for _ in range(5)]
    assert [(e["event"], e["channel"]) for e in events] == [
        ("experiment.started", "experiments"),
        ("canary.step", "experiments"),
        ("experiment.phase", "experiments"),
        ("canary.rolled_back", "experiments"),
        ("experiment.stopped", "experiments"),
    ]
    assert events[1]["data"] == {
        "canary": rollout.pk,
        "experiment": experiment.pk,
        "kind": "started",
        "percentage": 10,
        "phase": 1,
        "message": "treatment starts at 10% of the traffic.",
    }
    assert events[3]["data"]["message"] == "Testing." and events[3]["data"]["percentage"] == 0
    assert events[4]["data"]["winner"] == ""
    treatment = await database_sync_to_async(Variant.objects.get)(pk=rollout.treatment_id)
    assert treatment.traffic_percentage == 0
