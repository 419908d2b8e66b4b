"""Experiments on the fake upstreams' providers: the README's example and a model test."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.experiments.assignment import RunningExperiment
from apps.experiments.hooks import snapshot_clear
from apps.experiments.models import Experiment
from apps.experiments.selectors import experiment_phase, running_experiment_of
from tests.support.factories import api_key_issue, bearer

# The earlier experiments service's documented example, as it posts it.
SEED_EXPERIMENT: dict[str, Any] = {
    "name": "LLM Temperature Test",
    "description": "Testing different temperature values",
    "hypothesis": "Lower temperature improves accuracy",
    "metric": "accuracy",
    "user_percentage": 100,
    "variants": [
        {
            "name": "control",
            "type": "control",
            "traffic_percentage": 50,
            "config": {"temperature": 0.7},
        },
        {
            "name": "low_temp",
            "type": "treatment",
            "traffic_percentage": 50,
            "config": {"temperature": 0.3},
        },
    ],
}

HELLO: list[Any] = [{"role": "user", "content": "say hello please"}]


def variants(treatment: dict[str, Any] | None = None, split: int = 50) -> list[dict[str, Any]]:
    """A control with the default config and a treatment with ``treatment``'s overrides."""
    return [
        {"name": "control", "type": "control", "traffic_percentage": 100 - split, "config": {}},
        {
            "name": "treatment",
            "type": "treatment",
            "traffic_percentage": split,
            "config": treatment or {},
        },
    ]


def assigner(experiment: Experiment) -> RunningExperiment:
    """The experiment's current phase as the request hook assigns by it (fresh from the DB)."""
    experiment.refresh_from_db()
    phase = experiment_phase(experiment=experiment)
    assert phase is not None, "not started"
    return running_experiment_of(experiment, phase, list(experiment.variants.all()))


def planned(experiment: Experiment, users: list[str]) -> dict[str, str]:
    """The variant each user gets now (all users inside the user percentage)."""
    running = assigner(experiment)
    names = {user: running.variant_for(user) for user in users}
    return {user: variant.name for user, variant in names.items() if variant is not None}


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


@pytest.fixture(autouse=True)
def fresh_hook_cache():
    """This process's request hook forgets what an earlier test left in its snapshot."""
    snapshot_clear()
    yield
    snapshot_clear()
