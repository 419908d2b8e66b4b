"""Assignment: deterministic, sticky, the planned split, the same in every process; the
sample-ratio check passes on a fair split and flags a skewed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.runtime import run_sync
from apps.experiments import hooks
from apps.experiments.assignment import buckets, pick
from apps.experiments.hooks import experiment_request_hook, snapshot_clear
from apps.experiments.models import Assignment, Experiment
from apps.experiments.selectors import (
    experiment_stats,
    experiments_health,
)
from apps.experiments.services import (
    experiment_create,
    experiment_start,
    experiment_stop,
    experiment_variant_for_user,
)
from apps.providers.llm import Caller, LlmRequest

from .conftest import HELLO, assigner

USERS = [f"user-{n}" for n in range(10_000)]
THREE_WAY = [
    {"name": "control", "type": "control", "traffic_percentage": 20, "config": {}},
    {"name": "warm", "type": "treatment", "traffic_percentage": 30, "config": {"temperature": 1.2}},
    {"name": "cold", "type": "treatment", "traffic_percentage": 50, "config": {"temperature": 0.1}},
]


def started(name: str, variants: list, user_percentage: int = 100) -> Experiment:
    experiment = experiment_create(name=name, variants=variants, user_percentage=user_percentage)
    experiment_start(experiment=experiment)
    experiment.refresh_from_db()
    return experiment


def record(experiment: Experiment, assigned: dict[str, int]) -> None:
    Assignment.objects.bulk_create(
        Assignment(experiment=experiment, phase=experiment.phase, variant_id=variant, user_id=user)
        for user, variant in assigned.items()
    )


@pytest.mark.django_db
def test_ten_thousand_users_split_as_planned_and_the_srm_check_passes():
    experiment = started("split", THREE_WAY)
    running = assigner(experiment)
    assigned = {user: running.variant_for(user).id for user in USERS}
    counts = Counter(assigned.values())
    for variant in experiment.variants.all():
        share = float(variant.traffic_percentage) / 100
        expected, sigma = 10_000 * share, (10_000 * share * (1 - share)) ** 0.5
        assert abs(counts[variant.pk] - expected) < 4 * sigma, (variant.name, counts[variant.pk])
    record(experiment, assigned)

    stats = experiment_stats(experiment=experiment)

    assert stats["users"] == 10_000
    assert [v["users"] for v in stats["variants"]] == [
        counts[v.pk] for v in experiment.variants.order_by("position")
    ]
    assert stats["srm"]["mismatch"] is False and stats["srm"]["p_value"] > 0.001
    assert stats["healthy"] is True
    assert experiments_health()["status"] == "healthy"


@pytest.mark.django_db
def test_a_skewed_split_is_flagged_and_marks_the_experiment_unhealthy():
    experiment = started("skewed", THREE_WAY[:1] + [{**THREE_WAY[2], "traffic_percentage": 80}])
    control, treatment = experiment.variants.order_by("position")
    # Planned 20/80; recorded 2300/7700 (as a broken client that retries control users might).
    skewed = {f"u{n}": control.pk if n < 2300 else treatment.pk for n in range(10_000)}
    record(experiment, skewed)

    stats = experiment_stats(experiment=experiment)

    assert stats["srm"]["mismatch"] is True and stats["srm"]["p_value"] < 0.001
    assert stats["healthy"] is False
    assert "sample ratio mismatch" in stats["decision"]["message"]
    health = experiments_health()
    assert health["status"] == "unhealthy"
    assert [e["name"] for e in health["unhealthy_experiments"]] == ["skewed"]
    stopped = experiment_stop(experiment=experiment)
    assert stopped.winner is None and "skewed" in stopped.conclusion


def test_users_outside_the_user_percentage_get_no_variant():
    arms = [("a", 5000), ("b", 5000)]
    picked = [
        pick(experiment_id=1, seed="1", user=u, user_basis_points=2500, arms=arms) for u in USERS
    ]
    inside = [p for p in picked if p is not None]
    assert 2300 < len(inside) < 2700
    assert 1100 < inside.count("a") < 1400
    # Inclusion and variant come from independent parts of the hash.
    everyone = [
        pick(experiment_id=1, seed="1", user=u, user_basis_points=10_000, arms=arms) for u in USERS
    ]
    assert all(p == e for p, e in zip(picked, everyone, strict=True) if p is not None)


SCRIPT = """
import json, sys
from apps.experiments.assignment import buckets
users = json.loads(sys.stdin.read())
print(json.dumps([buckets(42, "3", user) for user in users]))
"""


def test_the_same_user_gets_the_same_buckets_in_another_process():
    users = USERS[:500] + ["42", "ü-ser", "key:7"]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another hash() than ours
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps(users),
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(settings.BASE_DIR),
        check=True,
        timeout=60,
    )
    theirs = [tuple(pair) for pair in json.loads(result.stdout)]
    assert theirs == [buckets(42, "3", user) for user in users]
    assert len(set(theirs)) > 450  # not all in one bucket


def hooked(experiment: str, user: str) -> LlmRequest:
    request = LlmRequest(
        messages=list(HELLO),
        model="chat",
        experiment=experiment,
        user=user,
        caller=Caller(user_id=1),
    )
    run_sync(experiment_request_hook(request))
    return request


@pytest.mark.django_db(transaction=True)
def test_the_lookup_and_the_request_hook_agree_across_restarts():
    experiment = started("sticky", THREE_WAY)
    users = [f"sticky-{n}" for n in range(60)]
    looked_up = {
        u: experiment_variant_for_user(experiment=experiment, user_id=u).variant.pk for u in users
    }
    first = {u: hooked("sticky", u).experiment_variant_id for u in users}
    snapshot_clear()  # as after a restart: nothing cached, nothing remembered
    again = {u: hooked(str(experiment.pk), u).experiment_variant_id for u in users}
    assert first == again == looked_up
    assert len(set(first.values())) == 3
    assert Assignment.objects.filter(experiment=experiment).count() == 60


@pytest.mark.django_db(transaction=True)
def test_the_hook_applies_the_variant_and_records_the_assignment_once(two_providers):
    experiment = started(
        "overrides",
        [
            {"name": "control", "type": "control", "traffic_percentage": 0, "config": {}},
            {
                "name": "all",
                "type": "treatment",
                "traffic_percentage": 100,
                "config": {
                    "model": "chat-b",
                    "provider": "b",
                    "temperature": 0.2,
                    "max_tokens": 64,
                    "system_prompt": "Be brief.",
                },
            },
        ],
    )
    request = hooked("overrides", "ann")
    assert (request.model, request.provider) == ("chat-b", "b")
    assert request.params == {"temperature": 0.2, "max_tokens": 64}
    assert request.messages == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert request.experiment_variant_id == experiment.variants.get(name="all").pk
    system = LlmRequest(
        messages=[{"role": "system", "content": "Be long."}, *HELLO],
        experiment="overrides",
        user="bob",
        params={"max_completion_tokens": 9},
    )
    run_sync(experiment_request_hook(system))
    assert system.messages[0] == {"role": "system", "content": "Be brief."}
    assert system.params == {"max_completion_tokens": 64, "temperature": 0.2}
    hooked("overrides", "ann")
    assert list(Assignment.objects.values_list("user_id", flat=True).order_by("user_id")) == [
        "ann",
        "bob",
    ]


@pytest.mark.django_db(transaction=True)
def test_requests_without_an_experiment_or_with_another_cost_nothing():
    started(
        "cheap",
        [
            {"name": "control", "type": "control", "traffic_percentage": 0, "config": {}},
            {
                "name": "all",
                "type": "treatment",
                "traffic_percentage": 100,
                "config": {"model": "chat-b"},
            },
        ],
    )
    plain = hooked("", "ann")
    assert plain.model == "chat" and plain.experiment_variant_id is None
    assert hooks._state.snapshot is None  # no snapshot loaded, no query made
    assert hooked("no such experiment", "ann").experiment_variant_id is None
    assert hooked("cheap", "ann").model == "chat-b"
    stopped = Experiment.objects.get(name="cheap")
    experiment_stop(experiment=stopped)
    time.sleep(hooks.CACHE_SECONDS + 0.1)  # then the version moved on: reloaded
    assert hooked("cheap", "ann").model == "chat"


@pytest.mark.django_db(transaction=True)
def test_the_users_identity_falls_back_to_the_caller():
    started(
        "callers",
        [
            {"name": "control", "type": "control", "traffic_percentage": 0, "config": {}},
            {"name": "all", "type": "treatment", "traffic_percentage": 100, "config": {}},
        ],
    )
    by_user = LlmRequest(messages=list(HELLO), experiment="callers", caller=Caller(user_id=42))
    by_key = LlmRequest(messages=list(HELLO), experiment="callers", caller=Caller(api_key_id=7))
    nobody = LlmRequest(messages=list(HELLO), experiment="callers")
    for request in (by_user, by_key, nobody):
        run_sync(experiment_request_hook(request))
    assert by_user.experiment_variant_id and by_key.experiment_variant_id
    assert nobody.experiment_variant_id is None
    assert sorted(Assignment.objects.values_list("user_id", flat=True)) == ["42", "key:7"]
