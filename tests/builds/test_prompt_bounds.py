"""Prompts are bounded (``PROMPT_MAX_BYTES``): a step prompt whose rendering with the given input
is too large, or a template with an absurd number of placeholders, is refused when the build or
template is created; one that only earlier outputs make too large fails its step on a real
worker, with nothing sent upstream; rendering never builds the oversized string."""

from __future__ import annotations

import tracemalloc

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.builds import prompts
from apps.builds.models import Build, BuildStatus, BuildTemplate, RunStatus
from apps.builds.services import build_create
from tests.builds.test_build_run import finished
from tests.support.factories import api_key_issue, bearer
from tests.support.processes import CeleryWorker

MB = 1024 * 1024


@pytest.fixture
def operator() -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))


def assert_refused(response, field: str, words: str) -> None:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert words in str(error["details"][field]), error


@pytest.mark.django_db
def test_the_issues_build_is_refused_at_creation(operator, agents):
    steps = [{"name": "a", "agent": "planner", "prompt": "{input}" * 400}]
    body = {"title": "big", "input": "x" * MB, "steps": steps}
    response = operator.post("/api/v1/builds", body, format="json")
    assert_refused(response, "steps", "Step 1: prompt: At most 100 placeholders (400 given)")
    steps = [{"name": "a", "agent": "planner", "prompt": "{input}" * 50}]
    response = operator.post("/api/v1/builds", {**body, "steps": steps}, format="json")
    assert_refused(response, "steps", "Step 1: prompt: The prompt would be 52,428,800 bytes")
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_a_template_with_an_absurd_number_of_placeholders_is_refused(operator, agents):
    steps = [{"name": "a", "agent": "planner", "prompt": "{input}" * 100_000}]
    response = operator.post("/api/v1/build-templates", {"name": "t", "steps": steps}, "json")
    assert_refused(response, "steps", "At most 100 placeholders (100,000 given)")
    assert not BuildTemplate.objects.exists()


@pytest.mark.django_db
def test_a_template_run_with_an_input_too_large_for_it_is_refused(operator, agents, settings):
    settings.PROMPT_MAX_BYTES = 1000
    template = BuildTemplate.objects.create(
        name="t", steps=[{"name": "a", "agent": "planner", "prompt": "{input} {input}"}]
    )
    response = operator.post(f"/api/v1/build-templates/{template.pk}/run", {"input": "y" * 600})
    assert_refused(response, "steps", "over the limit of 1,000 (PROMPT_MAX_BYTES)")
    assert not Build.objects.exists()


@pytest.mark.django_db
def test_a_build_input_over_the_limit_is_refused(operator, agents, settings):
    settings.PROMPT_MAX_BYTES = 1000
    steps = [{"name": "a", "agent": "planner", "prompt": "no placeholder"}]
    body = {"title": "t", "input": "é" * 501, "steps": steps}  # 1,002 bytes, 501 characters
    response = operator.post("/api/v1/builds", body, format="json")
    assert_refused(response, "input", "At most 1,000 bytes")


def test_rendering_refuses_before_building_the_string(settings):
    settings.PROMPT_MAX_BYTES = 4 * MB
    build_input = "x" * MB
    tracemalloc.start()
    try:
        with pytest.raises(prompts.PromptTooLargeError):
            prompts.render("{input}" * 100, build_input=build_input, outputs={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB  # the rendering would be 100 MB
    assert prompts.render("{input}!{x}", build_input="hé", outputs={}) == "hé!{x}"
    assert prompts.rendered_size("{input}!{x}", build_input="hé", outputs={}) == 7


@pytest.mark.django_db(transaction=True)
def test_a_prompt_too_large_from_earlier_outputs_fails_its_step_and_sends_nothing(
    agents, upstream_a, server_env, settings
):
    settings.BUILD_TASK_QUEUE = "builds-prompt-test"
    env = {**server_env, "BUILD_TASK_QUEUE": "builds-prompt-test", "PROMPT_MAX_BYTES": "2000"}
    upstream_a.configure(tokens=100)  # about 600 bytes of output
    steps = [
        {"name": "plan", "agent": "reviewer", "prompt": "Plan"},
        {"name": "repeat", "agent": "reviewer", "prompt": "{previous}" * 10},
    ]
    worker = CeleryWorker(env, name="prompts", queues="builds-prompt-test").start()
    try:
        build = finished(build_create(title="grows", steps=steps, by=None))
        assert worker.process.poll() is None, "the worker died"
    finally:
        worker.stop()
    assert build.status == BuildStatus.FAILED
    step = build.steps.get(name="repeat")
    assert step.status == RunStatus.FAILED
    assert "once rendered, over the limit of 2,000 (PROMPT_MAX_BYTES)" in step.error
    assert build.error == f"Step repeat: {step.error}"
    assert upstream_a.stats()["requests"] == 1  # the first step's only
