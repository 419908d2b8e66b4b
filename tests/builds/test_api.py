"""The REST API of builds and build templates: start, read, follow, cancel, retry, run."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.builds.models import Build, BuildStatus, BuildTemplate, RunStatus
from apps.builds.services import build_create, build_template_create
from tests.support.factories import api_key_issue, bearer, user_create
from tests.support.waiting import eventually

PLAN = "## Plan\n1. Add a model."
CODE = "class Widget:\n    pass\n"

STEPS = [
    {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
    {"name": "implement", "model": "chat", "prompt": "Implement:\n{steps.plan}"},
]


def client(role: Role = Role.OPERATOR) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role)))


@pytest.fixture
def planner(two_providers) -> Agent:
    return Agent.objects.create(name="planner", role="planner", model="chat")


def finished(api: APIClient, pk: int, timeout: float = 30.0) -> dict:
    def done() -> dict | None:
        body = api.get(f"/api/v1/builds/{pk}").json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None

    return eventually(done, timeout, f"build {pk} finished")


@pytest.mark.django_db(transaction=True)
def test_a_build_started_through_the_api_runs_and_reads_back_in_full(
    planner, upstream_a, celery_worker
):
    upstream_a.enqueue({"content": PLAN}, {"content": CODE})
    api = client()

    created = api.post(
        "/api/v1/builds",
        {"title": "Widgets", "input": "a widget app", "steps": STEPS},
        format="json",
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["title"] == "Widgets" and body["input"] == "a widget app"
    assert [s["name"] for s in body["steps"]] == ["plan", "implement"]
    assert body["steps"][0]["agent"] == planner.pk and body["steps"][0]["agent_name"] == "planner"
    assert [s["position"] for s in body["steps"]] == [1, 2]
    assert body["steps"][0]["status"] != RunStatus.PENDING  # queued when the build was made
    done = finished(api, body["id"])
    assert done["status"] == BuildStatus.SUCCEEDED, done["error"]
    assert [s["output"] for s in done["steps"]] == [PLAN, CODE]
    build = Build.objects.get(pk=body["id"])
    for shown, step in zip(done["steps"], build.steps.order_by("position"), strict=True):
        assert shown["position"] == step.position and shown["attempts"] == 1
        assert shown["celery_task_id"] == step.celery_task_id != ""
        assert (shown["input_tokens"], shown["output_tokens"]) == (
            step.input_tokens,
            step.output_tokens,
        )
        assert Decimal(shown["cost"]) == step.cost
        assert shown["started_at"] and shown["finished_at"] and shown["duration_seconds"] >= 0
        assert shown["approval"] is None and shown["call_id"] == str(step.call_id)
    totals = done["totals"]
    assert totals["steps"] == totals["steps_succeeded"] == 2
    assert totals["input_tokens"] == build.input_tokens > 0
    assert totals["tokens"] == build.input_tokens + build.output_tokens
    assert Decimal(totals["cost"]) == build.cost > 0
    assert totals["duration_seconds"] >= 0

    events = api.get(f"/api/v1/builds/{build.pk}/events").json()
    assert events["count"] == build.events.count()
    lifecycle = [(e["step_name"], e["event"]) for e in events["results"]]
    assert lifecycle[:2] == [(None, "queued"), ("plan", "queued")]
    assert lifecycle[-1] == (None, "succeeded")
    page = api.get(f"/api/v1/builds/{build.pk}/events", {"limit": 2, "offset": 1}).json()
    assert [e["id"] for e in page["results"]] == [e["id"] for e in events["results"][1:3]]

    refused = api.post(f"/api/v1/builds/{build.pk}/retry")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"
    assert "failed or cancelled" in refused.json()["error"]["message"]


@pytest.mark.django_db(transaction=True)
def test_a_template_runs_as_a_build(planner, upstream_a, celery_worker):
    upstream_a.enqueue({"content": PLAN}, {"content": CODE})
    api = client()
    template = api.post(
        "/api/v1/build-templates",
        {"name": "feature", "description": "Plan then code.", "steps": STEPS},
        format="json",
    )
    assert template.status_code == 201, template.json()
    assert template.json()["steps"] == STEPS

    run = api.post(
        f"/api/v1/build-templates/{template.json()['id']}/run",
        {"input": "a widget app"},
        format="json",
    )

    assert run.status_code == 201, run.json()
    assert run.json()["title"] == "feature"
    assert run.json()["template"] == template.json()["id"]
    done = finished(api, run.json()["id"])
    assert done["status"] == BuildStatus.SUCCEEDED
    assert upstream_a.stats()["requests"] == 2
    first_prompt = upstream_a.stats()["last_request"]["body"]["messages"][-1]["content"]
    assert first_prompt == "Implement:\n" + PLAN


@pytest.mark.django_db
class TestBuildInput:
    @pytest.mark.parametrize(
        ("steps", "expected"),
        [
            (
                [STEPS[0], {"name": "implement", "model": "chat", "prompt": "{steps.nope}"}],
                "Step 2: prompt: {steps.nope} names no earlier step.",
            ),
            ([{"name": "plan", "agent": "nobody", "prompt": "x"}], "Step 1: agent: No agent"),
            ([STEPS[0], {"name": "plan", "prompt": "again"}], "Step 2: name: Step names are"),
            ([{"name": "plan", "prompt": "x", "colour": "red"}], "Step 1: colour: Unknown field."),
            ([], "A non-empty list of steps."),
            ("plan", "A non-empty list of steps."),
        ],
    )
    def test_bad_steps_are_a_400_that_names_the_step(self, planner, steps, expected):
        response = client().post("/api/v1/builds", {"title": "t", "steps": steps}, format="json")
        assert response.status_code == 400, response.json()
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert any(text.startswith(expected) for text in error["details"]["steps"]), error
        assert not Build.objects.exists()

    def test_steps_or_a_template_and_a_title_with_steps(self, planner):
        template = build_template_create(by=None, name="t", steps=STEPS)
        api = client()
        both = api.post(
            "/api/v1/builds",
            {"title": "t", "steps": STEPS, "template": template.pk},
            format="json",
        )
        neither = api.post("/api/v1/builds", {"title": "t"}, format="json")
        untitled = api.post("/api/v1/builds", {"title": "  ", "steps": STEPS}, format="json")
        unknown = api.post("/api/v1/builds", {"template": 999999}, format="json")
        for response in (both, neither, untitled, unknown):
            assert response.status_code == 400
        assert "title" in untitled.json()["error"]["details"]
        assert "template" in unknown.json()["error"]["details"]
        assert not Build.objects.exists()

    def test_a_build_from_a_template_takes_its_steps_and_name(self, planner):
        template = build_template_create(by=None, name="feature", steps=STEPS)
        response = client().post(
            "/api/v1/builds", {"template": template.pk, "title": " ", "input": "x"}, format="json"
        )
        assert response.status_code == 201
        build = Build.objects.get()
        assert (build.title, build.template, build.input) == ("feature", template, "x")
        assert list(build.steps.values_list("name", flat=True)) == ["plan", "implement"]


@pytest.mark.django_db
class TestBuildStates:
    def test_cancel_then_retry_and_the_states_that_refuse(self, planner):
        operator = user_create(role=Role.OPERATOR)
        build = build_create(title="t", steps=STEPS, by=operator)
        api = APIClient(headers=bearer(api_key_issue(user=operator)))

        early = api.post(f"/api/v1/builds/{build.pk}/retry")
        assert early.status_code == 409
        assert early.json()["error"] == {
            "code": "conflict",
            "message": "Only a failed or cancelled build can be retried.",
            "details": {},
        }

        cancelled = api.post(f"/api/v1/builds/{build.pk}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == BuildStatus.CANCELLED
        assert {s["status"] for s in cancelled.json()["steps"]} == {RunStatus.CANCELLED}

        again = api.post(f"/api/v1/builds/{build.pk}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["message"] == "The build already cancelled."

        retried = api.post(f"/api/v1/builds/{build.pk}/retry")
        assert retried.status_code == 200
        assert retried.json()["status"] == BuildStatus.QUEUED
        assert [s["status"] for s in retried.json()["steps"]] == [
            RunStatus.QUEUED,
            RunStatus.PENDING,
        ]
        events = api.get(f"/api/v1/builds/{build.pk}/events").json()["results"]
        assert [e["event"] for e in events if e["step"] is None] == [
            "queued",
            "cancelled",
            "retried",
        ]

    def test_unknown_builds_and_templates_are_404(self):
        api = client()
        for path in (
            "/api/v1/builds/999999",
            "/api/v1/builds/999999/events",
            "/api/v1/build-templates/999999",
        ):
            response = api.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert api.post("/api/v1/builds/999999/cancel").status_code == 404
        assert api.post("/api/v1/build-templates/999999/run").status_code == 404


@pytest.mark.django_db
class TestListing:
    def test_filters_by_status_creator_template_date_and_title(self, planner):
        alice, bob = user_create(role=Role.OPERATOR), user_create(role=Role.OPERATOR)
        template = build_template_create(by=None, name="feature", steps=STEPS)
        widgets = build_create(title="Widgets app", steps=STEPS, by=alice)
        gadgets = build_create(title="Gadgets", steps=STEPS, by=bob, template=template)
        Build.objects.filter(pk=gadgets.pk).update(status=BuildStatus.FAILED)
        api = client(Role.VIEWER)

        def ids(**params) -> list[int]:
            response = api.get("/api/v1/builds", params)
            assert response.status_code == 200, response.json()
            return [b["id"] for b in response.json()["results"]]

        assert ids() == [gadgets.pk, widgets.pk]
        assert ids(status="failed") == [gadgets.pk]
        assert ids(created_by=alice.pk) == [widgets.pk]
        assert ids(template=template.pk) == [gadgets.pk]
        assert ids(search="widget") == [widgets.pk]
        assert ids(created_at_after=widgets.created_at.isoformat()) == [gadgets.pk, widgets.pk]
        assert ids(created_at_before="2000-01-01T00:00:00Z") == []
        listed = api.get("/api/v1/builds").json()["results"][0]
        assert [s["name"] for s in listed["steps"]] == ["plan", "implement"]
        assert "output" not in listed["steps"][0]
        assert listed["totals"]["steps"] == 2 and listed["created_by_username"] == bob.username


@pytest.mark.django_db
class TestTemplates:
    def test_create_read_update_delete(self, planner):
        api = client()
        created = api.post(
            "/api/v1/build-templates", {"name": "feature", "steps": STEPS}, format="json"
        )
        assert created.status_code == 201
        pk = created.json()["id"]
        assert api.get("/api/v1/build-templates").json()["results"][0]["name"] == "feature"

        patched = api.patch(
            f"/api/v1/build-templates/{pk}", {"description": "Plan then code."}, format="json"
        )
        assert patched.status_code == 200
        assert patched.json()["description"] == "Plan then code."
        assert patched.json()["steps"] == STEPS

        bad = api.patch(
            f"/api/v1/build-templates/{pk}",
            {"steps": [{"name": "plan", "prompt": "{previous}"}]},
            format="json",
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["details"]["steps"] == [
            "Step 1: prompt: {previous} in the first step: there is no earlier step."
        ]
        assert BuildTemplate.objects.get().steps == STEPS

        duplicate = api.post(
            "/api/v1/build-templates", {"name": "feature", "steps": STEPS}, format="json"
        )
        assert duplicate.status_code == 400 and "name" in duplicate.json()["error"]["details"]

        build = build_create(title="t", steps=STEPS, by=None, template=BuildTemplate.objects.get())
        assert api.delete(f"/api/v1/build-templates/{pk}").status_code == 204
        assert not BuildTemplate.objects.exists()
        build.refresh_from_db()
        assert build.template is None

    def test_a_template_with_bad_steps_is_refused(self, planner):
        response = client().post(
            "/api/v1/build-templates",
            {"name": "broken", "steps": [STEPS[0], {"name": "x", "agent": 12345, "prompt": "y"}]},
            format="json",
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"]["steps"] == ["Step 2: agent: No agent 12345."]
        assert not BuildTemplate.objects.exists()


@pytest.mark.django_db
class TestRoles:
    def test_viewers_read_operators_write_strangers_are_refused(self, planner):
        template = build_template_create(by=None, name="feature", steps=STEPS)
        build = build_create(title="t", steps=STEPS, by=None)
        reads = [
            "/api/v1/builds", f"/api/v1/builds/{build.pk}", f"/api/v1/builds/{build.pk}/events",
            "/api/v1/build-templates", f"/api/v1/build-templates/{template.pk}",
        ]  # fmt: skip
        writes = [
            ("post", "/api/v1/builds", {"title": "t", "steps": STEPS}),
            ("post", f"/api/v1/builds/{build.pk}/cancel", None),
            ("post", f"/api/v1/builds/{build.pk}/retry", None),
            ("post", "/api/v1/build-templates", {"name": "other", "steps": STEPS}),
            ("patch", f"/api/v1/build-templates/{template.pk}", {"description": "x"}),
            ("delete", f"/api/v1/build-templates/{template.pk}", None),
            ("post", f"/api/v1/build-templates/{template.pk}/run", {}),
        ]
        viewer, anonymous = client(Role.VIEWER), APIClient()
        for path in reads:
            assert viewer.get(path).status_code == 200, path
            assert anonymous.get(path).status_code == 401, path
        for method, path, body in writes:
            denied = getattr(viewer, method)(path, body, format="json")
            assert denied.status_code == 403, path
            assert denied.json()["error"]["code"] == "permission_denied"
            assert getattr(anonymous, method)(path, body, format="json").status_code == 401
        assert Build.objects.count() == 1 and BuildTemplate.objects.get().description == ""
        build.refresh_from_db()
        assert build.status == BuildStatus.QUEUED

    def test_a_build_is_made_by_its_caller(self, planner):
        operator = user_create(role=Role.OPERATOR)
        api = APIClient(headers=bearer(api_key_issue(user=operator)))
        response = api.post("/api/v1/builds", {"title": "t", "steps": STEPS}, format="json")
        assert response.json()["created_by"] == operator.pk
        assert response.json()["created_by_username"] == operator.username
