"""The earlier approvals service's API under /api/v1 (its examples work with the prefix
changed): asking with its payload, the pending list, deciding with ``{"approved",
"approver_id", "approval_notes"}``, the stats; and each request's history. Callers act as
themselves only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.selectors import approval_stats
from apps.approvals.services import (
    approval_decide,
    approval_policy_update,
    approvals_expire_overdue,
)
from tests.approvals.conftest import request_made
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db

SEED_REQUEST = {
    "orchestration_id": "orch_123",
    "approval_type": "financial",
    "proposed_action": "Process refund of $500",
    "risk_level": "high",
    "requester_id": 1,
    "context": {"state_summary": {"customer_id": 42, "order_id": 1001}, "risk_score": 0.75},
    "expires_in_seconds": 300,
}


def as_user(user) -> APIClient:
    return APIClient(headers=bearer(api_key_issue(user=user)))


def test_the_seed_walkthrough():
    asker, approver = user_create(role=Role.OPERATOR), user_create(role=Role.OPERATOR)
    mine, theirs = as_user(asker), as_user(approver)

    made = mine.post(
        "/api/v1/approvals/request", SEED_REQUEST | {"requester_id": asker.pk}, format="json"
    )

    assert made.status_code == 201, made.json()
    body = made.json()
    assert {
        k: body[k]
        for k in (
            "kind",
            "action",
            "reference",
            "risk_level",
            "status",
            "requested_by",
            "required_role",
        )
    } == {
        "kind": "financial",
        "action": "Process refund of $500",
        "reference": "orch_123",
        "risk_level": "high",
        "status": "pending",
        "requested_by": asker.pk,
        "required_role": "operator",
    }
    assert body["context"] == SEED_REQUEST["context"]
    approval = ApprovalRequest.objects.get(pk=body["id"])
    assert 299 < (approval.expires_at - approval.created_at).total_seconds() < 301
    assert [e["event"] for e in body["audit"]] == ["requested"]

    pending = theirs.get("/api/v1/approvals/pending").json()["results"]
    assert [p["id"] for p in pending] == [approval.pk]

    own = mine.post(
        f"/api/v1/approvals/pending/{approval.pk}/decide",
        {"approved": True, "approver_id": asker.pk},
        format="json",
    )
    assert own.status_code == 403
    assert own.json()["error"]["message"] == "Nobody may decide their own request."

    decided = theirs.post(
        f"/api/v1/approvals/pending/{approval.pk}/decide",
        {"approved": True, "approver_id": approver.pk, "approval_notes": "Verified with customer"},
        format="json",
    )
    assert decided.status_code == 200, decided.json()
    assert decided.json()["status"] == "approved"
    assert decided.json()["decision_notes"] == "Verified with customer"
    assert decided.json()["decided_by"] == approver.pk
    assert theirs.get("/api/v1/approvals/pending").json()["results"] == []

    stats = theirs.get("/api/v1/approvals/stats")
    assert stats.status_code == 200
    assert stats.json()["by_status"] == {"pending": 0, "approved": 1, "rejected": 0, "expired": 0}
    assert stats.json()["by_risk"]["high"] == 1 and stats.json()["decided_by_people"] == 1

    history = theirs.get(f"/api/v1/approvals/{approval.pk}/history").json()["results"]
    assert [(e["event"], e["actor"], e["notes"]) for e in history] == [
        ("requested", asker.pk, ""),
        ("approved", approver.pk, "Verified with customer"),
    ]


class TestAsking:
    def test_nobody_asks_as_someone_else(self):
        asker, other = user_create(role=Role.OPERATOR), user_create(role=Role.OPERATOR)
        response = as_user(asker).post(
            "/api/v1/approvals/request", SEED_REQUEST | {"requester_id": other.pk}, format="json"
        )
        assert response.status_code == 403
        assert response.json()["error"] == {
            "code": "permission_denied",
            "message": f"The requester is you, the caller (user {asker.pk}).",
            "details": {},
        }
        assert not ApprovalRequest.objects.exists()

    def test_without_requester_id_the_caller_asks_and_the_policy_sets_the_rest(self):
        approval_policy_update(default_expiry_seconds=120)
        asker = user_create(role=Role.OPERATOR)
        body = {
            "approval_type": "deploy",
            "proposed_action": "Deploy to production",
            "risk_level": "critical",
        }
        made = as_user(asker).post("/api/v1/approvals/request", body, format="json").json()
        assert made["requested_by"] == asker.pk and made["required_role"] == "admin"
        assert made["reference"] == "" and made["context"] == {}
        approval = ApprovalRequest.objects.get(pk=made["id"])
        assert 119 < (approval.expires_at - approval.created_at).total_seconds() < 121

    def test_an_auto_approved_request_says_so_at_once(self):
        approval_policy_update(auto_approve_enabled=True, auto_approve_max_risk="low")
        made = as_user(user_create(role=Role.OPERATOR)).post(
            "/api/v1/approvals/request",
            SEED_REQUEST | {"requester_id": None, "risk_level": "low", "context": {"cost": 0.2}},
            format="json",
        )
        assert made.status_code == 201
        assert made.json()["status"] == "approved"
        assert [e["event"] for e in made.json()["audit"]] == ["requested", "approved"]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"approval_type": None}, "approval_type"),
            ({"proposed_action": ""}, "proposed_action"),
            ({"risk_level": "extreme"}, "risk_level"),
            ({"expires_in_seconds": 0}, "expires_in_seconds"),
            ({"context": ["not", "an", "object"]}, "context"),
        ],
    )
    def test_bad_input_is_a_400(self, change, field):
        body = {k: v for k, v in (SEED_REQUEST | change).items() if v is not None}
        body.pop("requester_id")
        response = as_user(user_create(role=Role.OPERATOR)).post(
            "/api/v1/approvals/request", body, format="json"
        )
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]
        assert not ApprovalRequest.objects.exists()

    def test_viewers_do_not_ask(self):
        viewer = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
        assert (
            viewer.post("/api/v1/approvals/request", SEED_REQUEST, format="json").status_code == 403
        )
        assert (
            APIClient().post("/api/v1/approvals/request", SEED_REQUEST, format="json").status_code
            == 401
        )


class TestDeciding:
    @pytest.mark.parametrize(
        "path", ["/api/v1/approvals/{}/decide", "/api/v1/approvals/pending/{}/decide"]
    )
    @pytest.mark.parametrize(
        ("body", "status", "notes"),
        [
            ({"approved": False, "approval_notes": "no"}, "rejected", "no"),
            ({"approved": True}, "approved", ""),
            ({"decision": "rejected", "notes": " too much "}, "rejected", "too much"),
            ({"decision": "approved", "approved": True, "notes": "ok"}, "approved", "ok"),
        ],
    )
    def test_either_payload_on_either_path(self, path, body, status, notes):
        approval = request_made()
        response = as_user(user_create(role=Role.OPERATOR)).post(
            path.format(approval.pk), body, format="json"
        )
        assert response.status_code == 200, response.json()
        assert (response.json()["status"], response.json()["decision_notes"]) == (status, notes)

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"decision": "approved", "approved": False}, "decision"),
            ({"approval_notes": "hm"}, "decision"),
            ({"approved": "perhaps"}, "approved"),
            ({"approved": True, "notes": "a", "approval_notes": "b"}, "notes"),
        ],
    )
    def test_unclear_decisions_are_a_400(self, body, field):
        approval = request_made()
        response = as_user(user_create(role=Role.OPERATOR)).post(
            f"/api/v1/approvals/pending/{approval.pk}/decide", body, format="json"
        )
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING

    def test_nobody_decides_as_someone_else(self):
        approval = request_made()
        decider, other = user_create(role=Role.OPERATOR), user_create(role=Role.ADMIN)
        response = as_user(decider).post(
            f"/api/v1/approvals/pending/{approval.pk}/decide",
            {"approved": True, "approver_id": other.pk},
            format="json",
        )
        assert response.status_code == 403
        assert response.json()["error"]["message"] == (
            f"The approver is you, the caller (user {decider.pk})."
        )
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING and approval.audit.count() == 1

    def test_the_policy_applies_on_the_seed_path(self):
        approval = request_made(risk_level=RiskLevel.CRITICAL)
        refused = as_user(user_create(role=Role.OPERATOR)).post(
            f"/api/v1/approvals/pending/{approval.pk}/decide", {"approved": True}, format="json"
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Only an admin may decide a critical request."
        again = as_user(user_create(role=Role.ADMIN))
        assert (
            again.post(
                f"/api/v1/approvals/pending/{approval.pk}/decide",
                {"approved": False},
                format="json",
            ).status_code
            == 200
        )
        twice = again.post(
            f"/api/v1/approvals/pending/{approval.pk}/decide", {"approved": True}, format="json"
        )
        assert twice.status_code == 409


class TestStatsAndHistory:
    def test_counts_by_status_and_risk_and_the_median_time_to_a_persons_decision(self):
        admin = user_create(role=Role.ADMIN)
        now = timezone.now()
        for seconds, risk, decision in (
            (10, RiskLevel.LOW, "approved"),
            (20, RiskLevel.HIGH, "rejected"),
            (60, RiskLevel.HIGH, "approved"),
        ):
            approval = request_made(risk_level=risk)
            approval_decide(approval=approval, decision=decision, by=admin)
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                created_at=now - timedelta(seconds=seconds), decided_at=now
            )
        request_made(risk_level=RiskLevel.CRITICAL)  # pending
        late = request_made(risk_level=RiskLevel.MEDIUM, expires_in_seconds=1)
        ApprovalRequest.objects.filter(pk=late.pk).update(
            expires_at=now - timedelta(seconds=1), created_at=now - timedelta(hours=5)
        )
        assert approvals_expire_overdue() == 1  # expired: not a person's decision
        approval_policy_update(auto_approve_enabled=True, auto_approve_max_cost=None)
        request_made(risk_level=RiskLevel.LOW)  # approved at once: not a person's either

        response = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER))).get(
            "/api/v1/approvals/stats"
        )

        assert response.status_code == 200
        assert response.json() == {
            "total": 6,
            "by_status": {"pending": 1, "approved": 3, "rejected": 1, "expired": 1},
            "by_risk": {"low": 2, "medium": 1, "high": 2, "critical": 1},
            "decided_by_people": 3,
            "median_seconds_to_decision": 20.0,
        }

    def test_an_even_count_takes_the_middle_and_none_before_any(self):
        assert approval_stats()["median_seconds_to_decision"] is None
        assert approval_stats()["by_status"] == dict.fromkeys(ApprovalStatus.values, 0)
        admin, now = user_create(role=Role.ADMIN), timezone.now()
        for seconds in (10, 25):
            approval = request_made()
            approval_decide(approval=approval, decision="approved", by=admin)
            ApprovalRequest.objects.filter(pk=approval.pk).update(
                created_at=now - timedelta(seconds=seconds), decided_at=now
            )
        assert approval_stats()["median_seconds_to_decision"] == 17.5

    def test_history_is_the_trail_and_404_for_no_request(self):
        approval = request_made(requested_by=user_create(role=Role.OPERATOR))
        api = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
        assert [
            e["event"]
            for e in api.get(f"/api/v1/approvals/{approval.pk}/history").json()["results"]
        ] == ["requested"]
        assert api.get("/api/v1/approvals/999999/history").status_code == 404
        assert APIClient().get(f"/api/v1/approvals/{approval.pk}/history").status_code == 401
