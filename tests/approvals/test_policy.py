"""The policy, role by role and risk level by risk level: who may decide (every refusal leaves
the request pending with nothing recorded), the policy's own checks, auto-approval, the
human-in-the-loop switch and the feature status that reports it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.approvals.models import ApprovalPolicy, ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.selectors import approval_policy
from apps.approvals.services import (
    HITL_OFF_NOTE,
    SELF_DECIDED_NOTE,
    approval_decide,
    approval_policy_update,
    approval_refusal,
    approvals_escalate_overdue,
)
from tests.approvals.conftest import ROLES, request_made, trail
from tests.support.factories import api_key_issue, bearer, user_create

pytestmark = pytest.mark.django_db

ALLOWED = {  # the default policy: who may decide each risk level (other than their own request)
    None: set(),
    Role.VIEWER: set(),
    Role.OPERATOR: {RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH},
    Role.ADMIN: set(RiskLevel),
}
REFUSALS = {
    None: "Deciding an approval needs the operator role.",
    Role.VIEWER: "Deciding an approval needs the operator role.",
    Role.OPERATOR: "Only an admin may decide a critical request.",
}


def assert_untouched(approval: ApprovalRequest) -> None:
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert approval.decided_by is None and approval.decided_at is None
    assert trail(approval) == ["requested"]


@pytest.mark.parametrize("risk", list(RiskLevel))
@pytest.mark.parametrize("role", ROLES)
def test_who_may_decide_each_risk_level(role, risk):
    approval = request_made(risk_level=risk, requested_by=user_create(role=Role.OPERATOR))
    decider = user_create(role=role)

    if risk in ALLOWED[role]:
        assert approval_refusal(approval=approval, user=decider) is None
        decided = approval_decide(approval=approval, decision="rejected", by=decider)
        assert decided.status == ApprovalStatus.REJECTED and decided.decided_by == decider
        assert trail(approval) == ["requested", "rejected"]
        return
    assert approval_refusal(approval=approval, user=decider) == REFUSALS[role]
    with pytest.raises(PermissionDenied, match=REFUSALS[role]):
        approval_decide(approval=approval, decision="approved", by=decider)
    assert_untouched(approval)


@pytest.mark.parametrize("risk", list(RiskLevel))
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN, "superuser"])
def test_nobody_decides_their_own_request(role, risk):
    asker = user_create(role=None if role == "superuser" else role)
    if role == "superuser":
        asker.is_superuser = True
        asker.save(update_fields=["is_superuser"])
    approval = request_made(risk_level=risk, requested_by=asker)

    for decision in ("approved", "rejected"):
        with pytest.raises(PermissionDenied, match="Nobody may decide their own request."):
            approval_decide(approval=approval, decision=decision, by=asker)
    assert_untouched(approval)


def test_a_superuser_decides_as_an_admin_and_an_inactive_admin_not_at_all():
    superuser = user_create(role=None)
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    approval = request_made(risk_level=RiskLevel.CRITICAL)
    assert approval_decide(approval=approval, decision="approved", by=superuser).status == (
        ApprovalStatus.APPROVED
    )
    gone = user_create(role=Role.ADMIN)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    other = request_made(risk_level=RiskLevel.LOW)
    with pytest.raises(PermissionDenied, match="needs the operator role"):
        approval_decide(approval=other, decision="approved", by=gone)
    assert_untouched(other)


@pytest.mark.parametrize(
    ("fields", "operator_refused"),
    [
        ({"high_role": "admin"}, {RiskLevel.HIGH, RiskLevel.CRITICAL}),
        (
            {"medium_role": "admin", "high_role": "admin"},
            {RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL},
        ),
        ({"low_role": "admin", "medium_role": "admin", "high_role": "admin"}, set(RiskLevel)),
    ],
)
def test_a_stricter_policy_leaves_more_to_admins(fields, operator_refused):
    approval_policy_update(**fields)
    operator, admin = user_create(role=Role.OPERATOR), user_create(role=Role.ADMIN)
    for risk in RiskLevel:
        approval = request_made(risk_level=risk)
        if risk in operator_refused:
            word = "critical request" if risk == RiskLevel.CRITICAL else f"{risk}-risk request"
            with pytest.raises(PermissionDenied, match=f"Only an admin may decide a {word}."):
                approval_decide(approval=approval, decision="approved", by=operator)
            assert_untouched(approval)
            assert approval.required_role == "admin"
            approval_decide(approval=approval, decision="approved", by=admin)
        else:
            approval_decide(approval=approval, decision="approved", by=operator)
        approval.refresh_from_db()
        assert approval.status == ApprovalStatus.APPROVED


def test_the_role_a_request_needs_is_fixed_when_it_is_asked():
    asked_before = request_made(risk_level=RiskLevel.HIGH)
    approval_policy_update(high_role="admin")
    operator = user_create(role=Role.OPERATOR)
    assert approval_decide(approval=asked_before, decision="approved", by=operator).status == (
        ApprovalStatus.APPROVED
    )
    asked_after = request_made(risk_level=RiskLevel.HIGH)
    with pytest.raises(PermissionDenied):
        approval_decide(approval=asked_after, decision="approved", by=operator)


def test_an_escalated_request_is_an_admins_alone():
    approval_policy_update(escalation_seconds=60)
    approval = request_made(risk_level=RiskLevel.LOW)
    ApprovalRequest.objects.filter(pk=approval.pk).update(
        created_at=approval.created_at.replace(year=approval.created_at.year - 1)
    )
    assert approvals_escalate_overdue() == 1
    operator, admin = user_create(role=Role.OPERATOR), user_create(role=Role.ADMIN)
    with pytest.raises(
        PermissionDenied, match="Only an admin may decide this request: it was escalated."
    ):
        approval_decide(approval=approval, decision="approved", by=operator)
    assert approval_decide(approval=approval, decision="approved", by=admin).status == (
        ApprovalStatus.APPROVED
    )


class TestThePolicyItself:
    def test_defaults_before_anyone_sets_it(self, settings):
        assert not ApprovalPolicy.objects.exists()
        policy = approval_policy()
        assert not ApprovalPolicy.objects.exists(), "reading the policy writes nothing"
        assert policy.enabled and not policy.auto_approve_enabled
        assert [policy.role_for(level) for level in RiskLevel] == [
            "operator",
            "operator",
            "operator",
            "admin",
        ]
        assert policy.expiry_outcome == "reject" and policy.escalation_seconds == 3600
        assert policy.expiry_seconds == settings.APPROVAL_TIMEOUT_SECONDS
        approval = request_made()
        expected = settings.APPROVAL_TIMEOUT_SECONDS
        waits = (approval.expires_at - approval.created_at).total_seconds()
        assert expected - 1 < waits < expected + 1

    def test_a_riskier_level_never_needs_a_weaker_role(self):
        with pytest.raises(ValidationError) as refused:
            approval_policy_update(low_role="admin")
        assert refused.value.message_dict == {
            "medium_role": ["A riskier level may not need a weaker role than a safer one."]
        }
        with pytest.raises(ValidationError) as refused:
            approval_policy_update(medium_role="admin", high_role="operator")
        assert "high_role" in refused.value.message_dict
        with pytest.raises(ValidationError):
            approval_policy_update(high_role="viewer")
        assert approval_policy().high_role == "operator"

    @pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR])
    def test_the_service_refuses_anyone_below_admin(self, role):
        with pytest.raises(PermissionDenied, match="needs the admin role"):
            approval_policy_update(by=user_create(role=role), enabled=False)
        assert not ApprovalPolicy.objects.exists()
        assert (
            approval_policy_update(by=user_create(role=Role.ADMIN), enabled=False).enabled is False
        )

    def test_one_row(self):
        approval_policy_update(escalation_seconds=10)
        approval_policy_update(expiry_outcome="approve")
        assert list(ApprovalPolicy.objects.values_list("pk", "escalation_seconds")) == [(1, 10)]
        assert approval_policy().expiry_outcome == "approve"


class TestAutoApproval:
    def test_low_risk_under_the_cost_threshold_approves_itself(self):
        approval_policy_update(
            auto_approve_enabled=True,
            auto_approve_max_risk="low",
            auto_approve_max_cost=Decimal("5"),
        )
        asker = user_create(role=Role.OPERATOR)

        cheap = request_made(risk_level=RiskLevel.LOW, context={"cost": 4.5}, requested_by=asker)

        assert cheap.status == ApprovalStatus.APPROVED and cheap.decided_by is None
        assert cheap.decision_notes == (
            "Auto-approved by rule: risk low is at most low and cost 4.5 is at most 5."
        )
        assert trail(cheap) == ["requested", "approved"]
        left = [
            request_made(risk_level=RiskLevel.LOW, context={"cost": "5.01"}),
            request_made(risk_level=RiskLevel.LOW, context={}),
            request_made(risk_level=RiskLevel.LOW, context={"cost": "lots"}),
            request_made(risk_level=RiskLevel.LOW, context={"cost": True}),
            request_made(risk_level=RiskLevel.LOW, context={"cost": -1}),
            request_made(risk_level=RiskLevel.MEDIUM, context={"cost": 1}),
            request_made(risk_level=RiskLevel.CRITICAL, context={"cost": 0}),
        ]
        assert [a.status for a in left] == [ApprovalStatus.PENDING] * len(left)
        assert all(trail(a) == ["requested"] for a in left)

    def test_without_a_cost_threshold_the_risk_alone_decides(self):
        approval_policy_update(
            auto_approve_enabled=True, auto_approve_max_risk="medium", auto_approve_max_cost=None
        )
        medium = request_made(risk_level=RiskLevel.MEDIUM)
        high = request_made(risk_level=RiskLevel.HIGH, context={"cost": 0})
        assert medium.status == ApprovalStatus.APPROVED
        assert medium.decision_notes == "Auto-approved by rule: risk medium is at most medium."
        assert high.status == ApprovalStatus.PENDING

    def test_never_when_switched_off_and_never_critical(self):
        approval_policy_update(auto_approve_enabled=False, auto_approve_max_cost=None)
        assert request_made(risk_level=RiskLevel.LOW).status == ApprovalStatus.PENDING
        with pytest.raises(ValidationError):
            approval_policy_update(auto_approve_enabled=True, auto_approve_max_risk="critical")


class TestHitlSwitch:
    def test_off_every_request_but_a_critical_one_is_approved_at_once_and_says_why(self):
        approval_policy_update(enabled=False)
        asker = user_create(role=Role.OPERATOR)
        for risk in (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH):
            approval = request_made(risk_level=risk, requested_by=asker)
            assert approval.status == ApprovalStatus.APPROVED and approval.decided_by is None
            assert approval.decision_notes == HITL_OFF_NOTE
            assert trail(approval) == ["requested", "approved"]

        critical = request_made(risk_level=RiskLevel.CRITICAL, requested_by=asker)

        assert_untouched(critical)
        assert critical.required_role == "admin"
        with pytest.raises(PermissionDenied, match="Only an admin may decide a critical"):
            approval_decide(
                approval=critical, decision="approved", by=user_create(role=Role.OPERATOR)
            )
        assert (
            approval_decide(
                approval=critical, decision="approved", by=user_create(role=Role.ADMIN)
            ).status
            == ApprovalStatus.APPROVED
        )

    def test_the_feature_status_reports_it_and_the_policy_api_switches_it(self):
        admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
        viewer = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))

        def hitl() -> bool:
            response = viewer.get("/api/v1/feature-status")
            assert response.status_code == 200
            return response.json()["available"]["hitl"]

        assert hitl() is True
        assert (
            viewer.patch("/api/v1/approvals/policy", {"enabled": False}, format="json").status_code
            == 403
        )
        assert hitl() is True
        switched = admin.patch("/api/v1/approvals/policy", {"enabled": False}, format="json")
        assert switched.status_code == 200 and switched.json()["enabled"] is False
        assert hitl() is False
        assert request_made().status == ApprovalStatus.APPROVED
        admin.patch("/api/v1/approvals/policy", {"enabled": True}, format="json")
        assert hitl() is True
        assert request_made().status == ApprovalStatus.PENDING


class TestPolicyApi:
    def test_read_and_change(self):
        viewer = APIClient(headers=bearer(api_key_issue(role=Role.VIEWER)))
        shown = viewer.get("/api/v1/approvals/policy")
        assert shown.status_code == 200
        assert shown.json() | {"updated_at": None} == {
            "enabled": True,
            "low_role": "operator",
            "medium_role": "operator",
            "high_role": "operator",
            "auto_approve_enabled": False,
            "auto_approve_max_risk": "low",
            "auto_approve_max_cost": "1.0000",
            "self_approve_low_risk": False,
            "expiry_outcome": "reject",
            "escalation_seconds": 3600,
            "default_expiry_seconds": None,
            "updated_at": None,
        }
        assert APIClient().get("/api/v1/approvals/policy").status_code == 401

        admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
        changed = admin.patch(
            "/api/v1/approvals/policy",
            {
                "high_role": "admin",
                "auto_approve_enabled": True,
                "auto_approve_max_cost": None,
                "expiry_outcome": "approve",
                "escalation_seconds": 0,
                "default_expiry_seconds": 600,
            },
            format="json",
        )
        assert changed.status_code == 200, changed.json()
        body = changed.json()
        assert (body["high_role"], body["auto_approve_max_cost"], body["expiry_outcome"]) == (
            "admin",
            None,
            "approve",
        )
        assert approval_policy().default_expiry_seconds == 600

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"low_role": "admin"}, "medium_role"),
            ({"high_role": "viewer"}, "high_role"),
            ({"auto_approve_max_risk": "critical"}, "auto_approve_max_risk"),
            ({"auto_approve_max_cost": -1}, "auto_approve_max_cost"),
            ({"expiry_outcome": "maybe"}, "expiry_outcome"),
            ({"escalation_seconds": -5}, "escalation_seconds"),
            ({"default_expiry_seconds": 0}, "default_expiry_seconds"),
        ],
    )
    def test_refuses_what_does_not_hold(self, body, field):
        admin = APIClient(headers=bearer(api_key_issue(role=Role.ADMIN)))
        response = admin.patch("/api/v1/approvals/policy", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["error"]["details"]
        assert approval_policy().low_role == "operator"


class TestSelfApproval:
    def test_off_by_default_and_on_for_low_risk_only_recorded_as_such(self):
        solo = user_create(role=Role.ADMIN)
        low = request_made(risk_level=RiskLevel.LOW, requested_by=solo)
        with pytest.raises(PermissionDenied, match="Nobody may decide their own request."):
            approval_decide(approval=low, decision="approved", by=solo)
        assert_untouched(low)

        approval_policy_update(self_approve_low_risk=True)
        for risk in (RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL):
            risky = request_made(risk_level=risk, requested_by=solo)
            with pytest.raises(PermissionDenied, match="their own request above low risk"):
                approval_decide(approval=risky, decision="approved", by=solo)
            assert_untouched(risky)

        decided = approval_decide(approval=low, decision="approved", by=solo, notes="ok")
        assert decided.status == ApprovalStatus.APPROVED and decided.self_decided
        assert low.audit.last().notes == f"{SELF_DECIDED_NOTE} ok"
        other = request_made(risk_level=RiskLevel.LOW, requested_by=solo)
        by_another = approval_decide(
            approval=other, decision="approved", by=user_create(role=Role.OPERATOR)
        )
        assert not by_another.self_decided

    def test_the_api_shows_it_and_a_client_cannot_claim_it(self):
        approval_policy_update(self_approve_low_risk=True)
        solo = user_create(role=Role.OPERATOR)
        client = APIClient(headers=bearer(api_key_issue(user=solo)))
        medium = request_made(risk_level=RiskLevel.MEDIUM, requested_by=solo)
        refused = client.post(
            f"/api/v1/approvals/{medium.pk}/decide",
            {
                "decision": "approved",
                "self_decided": True,
                "risk_level": "low",
                "requested_by": None,
            },
            format="json",
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == (
            "Nobody may decide their own request above low risk."
        )
        assert_untouched(medium)
        low = request_made(risk_level=RiskLevel.LOW, requested_by=solo)
        decided = client.post(
            f"/api/v1/approvals/{low.pk}/decide", {"decision": "approved"}, format="json"
        )
        assert decided.status_code == 200 and decided.json()["self_decided"] is True
        listed = client.get("/api/v1/approvals?status=approved").json()["results"]
        assert [(a["id"], a["self_decided"]) for a in listed] == [(low.pk, True)]
