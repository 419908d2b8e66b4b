"""Every free text field of the REST API is bounded (``apps/core/limits.py``): one character past
the bound is a 400 that names the field, and nothing is stored."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.approvals.models import ApprovalRequest
from apps.builds.models import BuildTemplate
from apps.core.limits import JSON_MAX_BYTES, PROMPT_MAX_CHARS, TEXT_MAX_CHARS
from apps.experiments.models import Experiment
from tests.support.factories import api_key_issue, bearer

TEXT = "t" * (TEXT_MAX_CHARS + 1)
PROMPT = "p" * (PROMPT_MAX_CHARS + 1)
VARIANTS = [
    {"name": "control", "type": "control", "traffic_percentage": 50, "config": {}},
    {
        "name": "b",
        "type": "treatment",
        "traffic_percentage": 50,
        "config": {"system_prompt": PROMPT},
    },
]

CASES = [
    ("/api/v1/agents", {"name": "a", "role": "r", "description": TEXT}, ["description"]),
    ("/api/v1/agents", {"name": "a", "role": "r", "system_prompt": PROMPT}, ["system_prompt"]),
    (
        "/api/v1/approvals/request",
        {"approval_type": "t", "proposed_action": TEXT},
        ["proposed_action"],
    ),
    (
        "/api/v1/approvals/request",
        {"approval_type": "t", "proposed_action": "a", "context": {"blob": "c" * JSON_MAX_BYTES}},
        ["context"],
    ),
    (
        "/api/v1/build-templates",
        {"name": "t", "description": TEXT, "steps": [{"name": "a", "prompt": "x", "model": "m"}]},
        ["description"],
    ),
    (
        "/api/v1/build-templates",
        {"name": "t", "steps": [{"name": "a", "prompt": PROMPT}]},
        ["steps"],
    ),
    (
        "/api/v1/experiments",
        {"name": "e", "description": TEXT, "variants": VARIANTS[:1]},
        ["description"],
    ),
    ("/api/v1/experiments", {"name": "e", "hypothesis": TEXT}, ["hypothesis"]),
    ("/api/v1/experiments", {"name": "e", "variants": VARIANTS}, ["variants", "system_prompt"]),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "body", "named"), CASES)
def test_a_field_past_its_bound_is_a_400_naming_it(path, body, named):
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = client.post(path, body, format="json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    details = error["details"]
    assert named[0] in details, details
    assert all(name in str(details) for name in named)
    assert "at most" in str(details).lower() or "no more than" in str(details).lower()
    assert not Agent.objects.exists() and not ApprovalRequest.objects.exists()
    assert not BuildTemplate.objects.exists() and not Experiment.objects.exists()


@pytest.mark.django_db
def test_an_agent_task_prompt_past_its_bound_is_a_400():
    client = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    agent = Agent.objects.create(name="a", role="r", model="chat")
    response = client.post(f"/api/v1/agents/{agent.pk}/tasks", {"prompt": PROMPT}, format="json")
    assert response.status_code == 400 and "prompt" in response.json()["error"]["details"]
    assert not agent.tasks.exists()


@pytest.mark.django_db
def test_a_rest_body_past_the_upload_limit_is_a_400_in_the_error_shape(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
    response = client.post(
        "/api/v1/agents", {"name": "a", "role": "r", "description": "d" * 1000}, "json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert not Agent.objects.exists()
