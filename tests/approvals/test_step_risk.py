"""A build step declares the risk of its gate (``approval_risk``): the approval request is asked
at that level, so the policy's role for it decides, and with self-approval a lone admin passes
their own low-risk gate (a real Celery worker runs the build against the fake upstream) while a
medium one still waits for someone else."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import approval_decide, approval_policy_update
from apps.builds.models import Build, BuildTemplate
from apps.builds.selectors import build_step_specs
from apps.builds.services import build_create, build_step_run
from tests.support.factories import api_key_issue, bearer, user_create
from tests.support.waiting import eventually

LOW_GATE = {
    "name": "notes",
    "agent": "planner",
    "prompt": "Notes for {input}",
    "requires_approval": True,
    "approval_risk": "low",
}
MEDIUM_GATE = {
    "name": "release",
    "agent": "planner",
    "prompt": "Release {previous}",
    "requires_approval": True,
}


def client(user) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(user=user)))


def pending(api: APIClient, step_name: str) -> dict:
    """The build step's approval request, once the worker has asked it."""

    def asked() -> dict | None:
        waiting = api.get("/api/v1/approvals/pending").json()["results"]
        return next((a for a in waiting if a["context"]["step_name"] == step_name), None)

    return eventually(asked, 30, f"the approval request of step {step_name}")


def build_shown(api: APIClient, pk: int, *statuses: str) -> dict:
    def reached() -> dict | None:
        shown = api.get(f"/api/v1/builds/{pk}").json()
        return shown if shown["status"] in statuses else None

    return eventually(reached, 30, f"build {pk} {' or '.join(statuses)}")


def asked_gate(steps: list[dict], by) -> ApprovalRequest:
    """Run the first step as the worker does, up to the approval request it asks."""
    build = build_create(title="gated", input="it", steps=steps, by=by)
    step = build.steps.get(position=1)
    build_step_run(step_id=step.pk, celery_task_id=step.celery_task_id)
    step.refresh_from_db()
    assert step.approval is not None
    return step.approval


@pytest.mark.django_db(transaction=True)
def test_a_lone_admin_passes_their_own_low_risk_gate_not_a_medium_one(
    planner, upstream_a, celery_worker
):
    approval_policy_update(self_approve_low_risk=True)
    upstream_a.enqueue({"content": "the notes"}, {"content": "released"})
    solo = user_create(role=Role.ADMIN)
    api = client(solo)

    body = {"title": "Ship it", "input": "v2", "steps": [LOW_GATE, MEDIUM_GATE]}

    created = api.post("/api/v1/builds", body, format="json")

    assert created.status_code == 201, created.json()
    steps = created.json()["steps"]
    assert [(s["requires_approval"], s["approval_risk"]) for s in steps] == [
        (True, RiskLevel.LOW),
        (True, RiskLevel.MEDIUM),
    ]
    low = pending(api, "notes")
    assert low["risk_level"] == RiskLevel.LOW and low["requested_by"] == solo.pk
    decision = {"decision": "approved", "notes": "mine to pass"}
    decided = api.post(f"/api/v1/approvals/{low['id']}/decide", decision, format="json")
    assert decided.status_code == 200, decided.json()
    assert decided.json()["self_decided"] is True and decided.json()["decided_by"] == solo.pk

    medium = pending(api, "release")
    assert medium["risk_level"] == RiskLevel.MEDIUM
    waiting = build_shown(api, created.json()["id"], "awaiting_approval")
    assert [s["status"] for s in waiting["steps"]] == ["succeeded", "awaiting_approval"]
    assert waiting["steps"][0]["output"] == "the notes"
    refused = api.post(
        f"/api/v1/approvals/{medium['id']}/decide", {"decision": "approved"}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "permission_denied",
        "message": "Nobody may decide their own request above low risk.",
        "details": {},
    }
    assert upstream_a.stats()["queued"] == 1  # the medium-gated step's answer is still unused

    second = client(user_create(role=Role.OPERATOR))
    assert (
        second.post(
            f"/api/v1/approvals/{medium['id']}/decide", {"decision": "approved"}, format="json"
        ).status_code
        == 200
    )
    done = build_shown(api, created.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["steps"][1]["output"] == "released"
    assert done["started_at"] is not None, "a build whose first step waited still started"
    assert done["totals"]["duration_seconds"] > 0


@pytest.mark.django_db
class TestTheGatesRisk:
    def test_the_request_is_asked_at_the_steps_risk(self, planner):
        for risk in RiskLevel.values:
            approval = asked_gate([{**LOW_GATE, "approval_risk": risk}], by=None)
            assert approval.risk_level == risk
        unsaid = {key: value for key, value in LOW_GATE.items() if key != "approval_risk"}
        assert asked_gate([unsaid], by=None).risk_level == RiskLevel.MEDIUM

    def test_self_approval_is_off_by_default_even_at_low_risk(self, planner):
        solo = user_create(role=Role.ADMIN)
        approval = asked_gate([LOW_GATE], by=solo)
        with pytest.raises(PermissionDenied, match="Nobody may decide their own request."):
            approval_decide(approval=approval, decision="approved", by=solo)
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING

    def test_a_low_gate_still_needs_the_role_the_policy_gives_low_risk(self, planner):
        approval_policy_update(
            self_approve_low_risk=True, low_role="admin", medium_role="admin", high_role="admin"
        )
        operator = user_create(role=Role.OPERATOR)
        approval = asked_gate([LOW_GATE], by=operator)
        with pytest.raises(PermissionDenied, match="Only an admin may decide a low-risk request"):
            approval_decide(approval=approval, decision="approved", by=operator)
        with pytest.raises(PermissionDenied, match="needs the operator role"):
            approval_decide(
                approval=approval, decision="approved", by=user_create(role=Role.VIEWER)
            )
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING

    def test_templates_and_reruns_keep_it(self, planner):
        api = client(user_create(role=Role.OPERATOR))
        made = api.post(
            "/api/v1/build-templates", {"name": "ship", "steps": [LOW_GATE]}, format="json"
        )
        assert made.status_code == 201, made.json()
        assert made.json()["steps"][0]["approval_risk"] == "low"
        run = api.post(f"/api/v1/build-templates/{made.json()['id']}/run", {}, format="json")
        assert run.status_code == 201, run.json()
        assert run.json()["steps"][0]["approval_risk"] == RiskLevel.LOW
        build = Build.objects.get(pk=run.json()["id"])
        assert build_step_specs(build=build)[0]["approval_risk"] == RiskLevel.LOW


@pytest.mark.django_db
class TestBadRisk:
    @pytest.mark.parametrize(
        "step, expected",
        [
            (
                {**LOW_GATE, "approval_risk": "none"},
                "Step 1: approval_risk: One of low, medium, high, critical.",
            ),
            (
                {**LOW_GATE, "approval_risk": ["low"]},
                "Step 1: approval_risk: One of low, medium, high, critical.",
            ),
            (
                {**LOW_GATE, "approval_risk": "LOW"},
                "Step 1: approval_risk: One of low, medium, high, critical.",
            ),
            (
                {**LOW_GATE, "requires_approval": False},
                "Step 1: approval_risk: Only with requires_approval.",
            ),
            (
                {key: value for key, value in LOW_GATE.items() if key != "requires_approval"},
                "Step 1: approval_risk: Only with requires_approval.",
            ),
            ({**LOW_GATE, "self_decided": True}, "Step 1: self_decided: Unknown field."),
        ],
    )
    def test_is_a_400_naming_the_field_and_nothing_is_made(self, planner, step, expected):
        api = client(user_create(role=Role.OPERATOR))
        for path, body in (
            ("/api/v1/builds", {"title": "t", "steps": [step]}),
            ("/api/v1/build-templates", {"name": "t", "steps": [step]}),
        ):
            response = api.post(path, body, format="json")
            assert response.status_code == 400, response.json()
            error = response.json()["error"]
            assert error["code"] == "validation_error"
            assert error["details"]["steps"] == [expected]
        assert not Build.objects.exists() and not BuildTemplate.objects.exists()
        assert not ApprovalRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_build_message_takes_the_same_spec(planner, asgi_server, celery_worker):
    key = await database_sync_to_async(api_key_issue)(role=Role.OPERATOR)
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(asgi_server.ws_url, additional_headers=headers) as ws:
        bad = {**LOW_GATE, "approval_risk": "extreme"}
        await ws.send(json.dumps({"type": "build", "id": 1, "title": "t", "steps": [bad]}))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 20))
        await ws.send(json.dumps({"type": "build", "id": 2, "title": "t", "steps": [LOW_GATE]}))
        replies = [json.loads(await asyncio.wait_for(ws.recv(), 20)) for _ in range(2)]

    assert refused["type"] == "error" and refused["id"] == 1
    assert refused["code"] == "invalid_request" and "approval_risk" in refused["message"]
    (started,) = [reply for reply in replies if reply["type"] == "build_started"]
    step = await database_sync_to_async(
        lambda: Build.objects.get(pk=started["build"]).steps.get()
    )()
    assert step.requires_approval and step.approval_risk == RiskLevel.LOW
    # The worker asks for the approval at that level; waiting for it also leaves no worker
    # writing while the test's tables are emptied.
    asked = await database_sync_to_async(eventually)(
        lambda: ApprovalRequest.objects.filter(reference=f"build_step:{step.pk}").first(),
        what="the gate's approval request",
    )
    assert asked.risk_level == RiskLevel.LOW
