"""Two agents on the fake upstreams' providers, for the builds' tests."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent


@pytest.fixture
def agents(two_providers) -> dict[str, Agent]:
    return {
        "planner": Agent.objects.create(
            name="planner", role="planner", model="chat", system_prompt="You plan."
        ),
        "reviewer": Agent.objects.create(
            name="reviewer", role="reviewer", model="chat", provider=two_providers["a"]
        ),
    }
