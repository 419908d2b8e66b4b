"""The REST API of approval requests: the queue, a request with its audit trail, decisions and
the policy that applies to them, and a build step that waits for one."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.agents.models import Agent
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import approval_decide, approval_request_create
from tests.support.factories import api_key_issue, bearer, user_create
from tests.support.waiting import eventually


def client(role: Role = Role.OPERATOR, user=None) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(role=role, user=user)))


def request_made(**fields) -> ApprovalRequest:
    return approval_request_create(
        **{"kind": "refund", "action": "Refund $500", "risk_level": RiskLevel.HIGH, **fields}
    )


@pytest.mark.django_db(transaction=True)
def test_a_gated_build_step_goes_on_once_approved_through_the_api(
    upstream_a, two_providers, celery_worker
):
    Agent.objects.create(name="planner", role="planner", model="chat")
    upstream_a.enqueue({"content": "the plan"}, {"content": "the code"})
    requester, approver = user_create(role=Role.OPERATOR), user_create(role=Role.OPERATOR)
    mine, theirs = client(user=requester), client(user=approver)
    steps = [
        {"name": "plan", "agent": "planner", "prompt": "Plan {input}"},
        {
            "name": "code",
            "agent": "planner",
            "prompt": "Code {previous}",
            "requires_approval": True,
        },
    ]
    build = mine.post(
        "/api/v1/builds", {"title": "gated", "input": "x", "steps": steps}, format="json"
    ).json()

    def queued() -> list[dict]:
        return mine.get("/api/v1/approvals/pending").json()["results"]

    (pending,) = eventually(queued, 30, "the step's approval request")
    assert pending["kind"] == "build_step" and pending["status"] == ApprovalStatus.PENDING
    assert pending["requested_by"] == requester.pk
    assert pending["context"]["build"] == build["id"]
    waiting = mine.get(f"/api/v1/builds/{build['id']}").json()
    assert waiting["status"] == "awaiting_approval"
    assert waiting["steps"][1]["approval"] == pending["id"]

    own = mine.post(
        f"/api/v1/approvals/{pending['id']}/decide", {"decision": "approved"}, format="json"
    )
    assert own.status_code == 403
    assert own.json()["error"] == {
        "code": "permission_denied",
        "message": "Nobody may decide their own request.",
        "details": {},
    }

    decided = theirs.post(
        f"/api/v1/approvals/{pending['id']}/decide",
        {"decision": "approved", "notes": "go"},
        format="json",
    )
    assert decided.status_code == 200, decided.json()
    body = decided.json()
    assert body["status"] == ApprovalStatus.APPROVED and body["decision_notes"] == "go"
    assert body["decided_by"] == approver.pk and body["decided_by_username"] == approver.username
    assert [(e["event"], e["actor"]) for e in body["audit"]] == [
        ("requested", requester.pk),
        ("approved", approver.pk),
    ]

    twice = theirs.post(
        f"/api/v1/approvals/{pending['id']}/decide", {"decision": "rejected"}, format="json"
    )
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "conflict"
    assert twice.json()["error"]["message"] == "This request was already approved."

    def finished() -> dict | None:
        shown = mine.get(f"/api/v1/builds/{build['id']}").json()
        return shown if shown["status"] in ("succeeded", "failed") else None

    assert eventually(finished, 30, "the build finished")["status"] == "succeeded"
    assert mine.get("/api/v1/approvals/pending").json()["results"] == []


@pytest.mark.django_db
class TestDecisions:
    def test_rejecting_keeps_the_notes_in_the_trail(self):
        approval = request_made(requested_by=user_create(role=Role.OPERATOR))
        response = client().post(
            f"/api/v1/approvals/{approval.pk}/decide",
            {"decision": "rejected", "notes": "too much"},
            format="json",
        )
        assert response.status_code == 200
        assert response.json()["audit"][-1]["event"] == "rejected"
        assert response.json()["audit"][-1]["notes"] == "too much"
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.REJECTED

    def test_a_critical_request_only_an_admin_decides(self):
        approval = request_made(risk_level=RiskLevel.CRITICAL)
        refused = client().post(
            f"/api/v1/approvals/{approval.pk}/decide", {"decision": "approved"}, format="json"
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Only an admin may decide a critical request."
        admin = user_create(role=Role.ADMIN)  # the admin role, not a superuser
        assert not admin.is_superuser
        accepted = client(user=admin).post(
            f"/api/v1/approvals/{approval.pk}/decide", {"decision": "approved"}, format="json"
        )
        assert accepted.status_code == 200

    def test_an_expired_request_is_a_conflict(self):
        approval = request_made()
        ApprovalRequest.objects.filter(pk=approval.pk).update(status=ApprovalStatus.EXPIRED)
        response = client().post(
            f"/api/v1/approvals/{approval.pk}/decide", {"decision": "approved"}, format="json"
        )
        assert response.status_code == 409

    @pytest.mark.parametrize("body", [{}, {"decision": "maybe"}, {"decision": "expired"}])
    def test_a_decision_is_approved_or_rejected(self, body):
        approval = request_made()
        response = client().post(f"/api/v1/approvals/{approval.pk}/decide", body, format="json")
        assert response.status_code == 400
        assert "decision" in response.json()["error"]["details"]
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING

    def test_viewers_read_but_do_not_decide(self):
        approval = request_made()
        viewer, anonymous = client(Role.VIEWER), APIClient()
        for path in (
            "/api/v1/approvals",
            "/api/v1/approvals/pending",
            f"/api/v1/approvals/{approval.pk}",
        ):
            assert viewer.get(path).status_code == 200
            assert anonymous.get(path).status_code == 401
        path = f"/api/v1/approvals/{approval.pk}/decide"
        assert viewer.post(path, {"decision": "approved"}, format="json").status_code == 403
        assert anonymous.post(path, {"decision": "approved"}, format="json").status_code == 401
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING

    def test_an_unknown_request_is_a_404(self):
        api = client()
        assert api.get("/api/v1/approvals/999999").status_code == 404
        response = api.post(
            "/api/v1/approvals/999999/decide", {"decision": "approved"}, format="json"
        )
        assert response.status_code == 404


@pytest.mark.django_db
class TestListing:
    def test_filters_and_the_pending_queue(self):
        decider = user_create(role=Role.OPERATOR)
        low = request_made(kind="deploy", risk_level=RiskLevel.LOW, expires_in_seconds=600)
        high = request_made(kind="refund", risk_level=RiskLevel.HIGH, expires_in_seconds=60)
        open_ended = request_made(kind="refund", risk_level=RiskLevel.MEDIUM)
        done = request_made(kind="refund", risk_level=RiskLevel.HIGH)
        approval_decide(approval=done, decision="approved", by=decider)
        api = client(Role.VIEWER)

        def ids(path: str = "/api/v1/approvals", **params) -> list[int]:
            response = api.get(path, params)
            assert response.status_code == 200, response.json()
            return [a["id"] for a in response.json()["results"]]

        assert ids() == [done.pk, open_ended.pk, high.pk, low.pk]
        assert ids(status="approved") == [done.pk]
        assert ids(kind="deploy") == [low.pk]
        assert ids(risk_level="high") == [done.pk, high.pk]
        assert ids(risk_level=["high", "low"]) == [done.pk, high.pk, low.pk]
        assert ids("/api/v1/approvals/pending") == [high.pk, low.pk, open_ended.pk]
        assert ids("/api/v1/approvals/pending", kind="refund") == [high.pk, open_ended.pk]

        detail = api.get(f"/api/v1/approvals/{done.pk}").json()
        assert detail["action"] == "Refund $500" and detail["decided_by"] == decider.pk
        assert [e["event"] for e in detail["audit"]] == ["requested", "approved"]
        assert detail["audit"][1]["actor_username"] == decider.username
