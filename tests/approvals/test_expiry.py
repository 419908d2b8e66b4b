"""Expiry and escalation, by the functions Celery beat runs: a request expires when its time is
up and not before, by the policy's outcome (rejected by default, approved if configured), a
decision that comes too late is refused; a request still pending after the escalation time is
escalated once, to admins, and announced on ``approvals``."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import (
    EXPIRED_APPROVED_NOTE,
    EXPIRED_NOTE,
    approval_decide,
    approval_policy_update,
    approvals_escalate_overdue,
    approvals_expire_overdue,
)
from apps.approvals.tasks import escalate_overdue, expire_overdue
from tests.approvals.conftest import request_made, trail
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db


def until(moment) -> None:
    """Sleep until ``moment`` (an aware datetime) has passed."""
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()) + 0.05)


def test_a_request_expires_on_time_and_only_once():
    approval = request_made(expires_in_seconds=1)
    waiting = request_made(expires_in_seconds=600)
    assert 0.9 < (approval.expires_at - approval.created_at).total_seconds() < 1.1

    assert approvals_expire_overdue() == 0, "not before its time"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING

    until(approval.expires_at)
    assert expire_overdue() == 1  # the beat task

    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert approval.decided_by is None and approval.decision_notes == EXPIRED_NOTE
    assert approval.decided_at >= approval.expires_at
    assert approval.decided_at - approval.expires_at < timedelta(seconds=2)
    assert trail(approval) == ["requested", "expired"]
    assert approvals_expire_overdue() == 0
    assert trail(approval) == ["requested", "expired"]
    waiting.refresh_from_db()
    assert waiting.status == ApprovalStatus.PENDING


def test_the_policy_may_approve_on_expiry():
    approval_policy_update(expiry_outcome="approve")
    approval = request_made(expires_in_seconds=1)
    until(approval.expires_at)
    assert approvals_expire_overdue() == 1
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.decided_by is None
    assert approval.decision_notes == EXPIRED_APPROVED_NOTE
    assert trail(approval) == ["requested", "approved"]


def test_the_policy_default_expiry_applies_to_requests_that_say_nothing():
    approval_policy_update(default_expiry_seconds=90)
    approval = request_made()
    assert 89 < (approval.expires_at - approval.created_at).total_seconds() < 91
    with pytest.raises(ValidationError):
        request_made(expires_in_seconds=0)


@pytest.mark.parametrize("outcome", ["reject", "approve"])
def test_a_decision_after_the_deadline_is_refused_and_the_request_expires(outcome):
    approval_policy_update(expiry_outcome=outcome)
    approval = request_made(expires_in_seconds=1)
    until(approval.expires_at)

    with pytest.raises(ValidationError, match="expired at .* before the decision came"):
        approval_decide(approval=approval, decision="rejected", by=user_create(role=Role.OPERATOR))

    approval.refresh_from_db()
    assert approval.decided_by is None
    assert approval.status == (
        ApprovalStatus.APPROVED if outcome == "approve" else ApprovalStatus.EXPIRED
    )
    assert trail(approval)[-1] == approval.status
    assert approvals_expire_overdue() == 0


def test_a_late_decision_over_the_api_is_a_conflict():
    approval = request_made(expires_in_seconds=1)
    until(approval.expires_at)
    operator = APIClient(headers=bearer(api_key_issue(role=Role.OPERATOR)))
    response = operator.post(
        f"/api/v1/approvals/{approval.pk}/decide", {"decision": "approved"}, format="json"
    )
    assert response.status_code == 409
    assert "it is expired now" in response.json()["error"]["message"]


class TestEscalation:
    def test_a_request_pending_too_long_goes_to_the_admins_once(
        self, listener, django_capture_on_commit_callbacks
    ):
        approval_policy_update(escalation_seconds=1)
        approval = request_made(risk_level=RiskLevel.LOW)
        decided = request_made(risk_level=RiskLevel.LOW)
        approval_decide(approval=decided, decision="approved", by=user_create(role=Role.ADMIN))
        assert approvals_escalate_overdue() == 0, "not before its time"

        until(approval.created_at + timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert escalate_overdue() == 1  # the beat task

        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.PENDING
        assert approval.required_role == "admin" and approval.escalated_at is not None
        assert trail(approval) == ["requested", "escalated"]
        entry = approval.audit.get(event="escalated")
        assert entry.actor is None
        assert entry.notes.startswith("Escalated to admin: pending for 1 s")
        message = listener.next()
        assert message["event"] == "approval.escalated"
        assert message["data"] == {
            "id": approval.pk,
            "kind": "refund",
            "status": "pending",
            "risk_level": "low",
            "reference": "",
            "required_role": "admin",
            "waited_seconds": 1,
        }

        assert approvals_escalate_overdue() == 0, "escalated once"
        assert trail(approval) == ["requested", "escalated"]
        decided.refresh_from_db()
        assert decided.escalated_at is None

    def test_never_when_the_policy_says_zero(self):
        approval_policy_update(escalation_seconds=0)
        approval = request_made()
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            created_at=timezone.now() - timedelta(days=30)
        )
        assert approvals_escalate_overdue() == 0
        approval.refresh_from_db()
        assert approval.escalated_at is None and approval.required_role == "operator"
