"""The policy is an admin's: every write path refuses anyone else, each change is kept with who
made it, and auto-approval never goes past the policy's own rules. The issue's two attack
sequences run against a real daphne with httpx, as a hostile operator would run them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.approvals.models import ApprovalPolicy, ApprovalPolicyChange, ApprovalStatus
from apps.approvals.selectors import approval_policy
from apps.approvals.services import approval_policy_update
from tests.support.factories import api_key_issue, bearer, user_create
from tests.support.processes import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

POLICY = "/api/v1/approvals/policy"
WHOLE_POLICY = {
    "enabled": True, "low_role": "operator", "medium_role": "operator", "high_role": "operator",
    "auto_approve_enabled": False, "auto_approve_max_risk": "low", "auto_approve_max_cost": "1",
    "self_approve_low_risk": False, "expiry_outcome": "reject", "escalation_seconds": 3600,
    "default_expiry_seconds": None,
}  # fmt: skip
# What a client may add hoping to be taken for someone else or to skip a rule.
FORGED_FIELDS = {
    "by": 1,
    "actor": 1,
    "role": "admin",
    "requested_by": None,
    "decided_by": 1,
    "is_superuser": True,
}
FORGED_HEADERS = {"X-Orchestra-Role": "admin", "X-Forwarded-User": "admin", "X-User-Id": "1"}


def api(server: AsgiServer, role: Role | None) -> httpx.Client:
    headers = bearer(api_key_issue(role=role)) if role else {}
    return httpx.Client(base_url=server.url, headers={**headers, **FORGED_HEADERS}, timeout=15)


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["message"]


def ask(client: httpx.Client, risk: str, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/approvals/request",
        json={
            "approval_type": "deploy",
            "proposed_action": f"Ship it ({risk})",
            "risk_level": risk,
            **fields,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("role", [None, Role.VIEWER, Role.OPERATOR])
def test_below_admin_no_api_write_changes_the_policy(asgi_server, role):
    client = api(asgi_server, role)
    status = 401 if role is None else 403
    writes = [
        client.patch(POLICY, json={"enabled": False}),
        client.patch(POLICY, json={"enabled": False, **FORGED_FIELDS}),
        client.patch(
            POLICY,
            json={
                "auto_approve_enabled": True,
                "auto_approve_max_risk": "high",
                "auto_approve_max_cost": None,
            },
        ),
        client.put(POLICY, json={**WHOLE_POLICY, "enabled": False}),
    ]
    for response in writes:
        assert_refused(response, status)
    assert not ApprovalPolicy.objects.exists() and not ApprovalPolicyChange.objects.exists()
    if role is not None:
        assert client.get(POLICY).json()["enabled"] is True, "everyone with a role reads it"


def test_an_admin_changes_it_through_patch_and_put_and_each_change_is_kept(asgi_server):
    boss = user_create(role=Role.ADMIN)
    admin = httpx.Client(base_url=asgi_server.url, headers=bearer(api_key_issue(user=boss)))

    patched = admin.patch(POLICY, json={"self_approve_low_risk": True, "escalation_seconds": 60})
    assert patched.status_code == 200, patched.text
    assert patched.json()["self_approve_low_risk"] is True
    assert_refused(admin.put(POLICY, json={"enabled": False}), 400)  # PUT needs every field
    put = admin.put(POLICY, json={**WHOLE_POLICY, "auto_approve_max_cost": None})
    assert put.status_code == 200, put.text
    assert admin.patch(POLICY, json={"escalation_seconds": 3600}).status_code == 200  # same

    history = api(asgi_server, Role.VIEWER).get(f"{POLICY}/history")
    assert history.status_code == 200
    assert [(c["actor"], c["actor_username"], c["changes"]) for c in history.json()["results"]] == [
        (
            boss.pk,
            boss.username,
            {
                "auto_approve_max_cost": ["1", None],
                "self_approve_low_risk": [True, False],
                "escalation_seconds": [60, 3600],
            },
        ),
        (
            boss.pk,
            boss.username,
            {"self_approve_low_risk": [False, True], "escalation_seconds": [3600, 60]},
        ),
    ]
    assert approval_policy().auto_approve_max_cost is None


def test_attack_one_an_operator_cannot_switch_approvals_off(asgi_server):
    """Issue 18: ``PATCH {"enabled": false}`` by an operator, then a critical request was
    approved without a person."""
    operator = api(asgi_server, Role.OPERATOR)

    assert_refused(operator.patch(POLICY, json={"enabled": False}), 403)
    critical = ask(operator, "critical")

    assert critical["status"] == ApprovalStatus.PENDING and critical["required_role"] == "admin"
    # Even with human-in-the-loop switched off by an admin, a critical request waits for one.
    approval_policy_update(by=user_create(role=Role.ADMIN), enabled=False)
    again = ask(operator, "critical")
    assert again["status"] == ApprovalStatus.PENDING and again["decided_by"] is None
    assert ask(operator, "high")["status"] == ApprovalStatus.APPROVED


def test_attack_two_an_operators_own_risky_request_never_approves_itself(asgi_server):
    """Issue 18: the operator set auto-approval up to high with no cost limit, then their own
    high-risk request approved itself."""
    operator = api(asgi_server, Role.OPERATOR)
    attack = {
        "auto_approve_enabled": True,
        "auto_approve_max_risk": "high",
        "auto_approve_max_cost": None,
    }

    assert_refused(operator.patch(POLICY, json=attack), 403)
    assert ask(operator, "high")["status"] == ApprovalStatus.PENDING

    # The same rule set by an admin: a person's own request approves itself at low risk only,
    # whatever the request says of its requester.
    approval_policy_update(by=user_create(role=Role.ADMIN), **attack)
    own = user_create(role=Role.OPERATOR).pk
    for risk in ("medium", "high", "critical"):
        asked = ask(
            operator,
            risk,
            requested_by=None,
            requester_id=None,
            decided_by=own,
            status="approved",
            self_decided=True,
        )
        assert asked["status"] == ApprovalStatus.PENDING, risk
        assert asked["requested_by"] is not None and asked["decided_by"] is None
    low = ask(operator, "low")
    assert low["status"] == ApprovalStatus.APPROVED
    assert low["decision_notes"] == "Auto-approved by rule: risk low is at most high."
    assert_refused(
        operator.post(
            "/api/v1/approvals/request",
            json={
                "approval_type": "deploy",
                "proposed_action": "x",
                "risk_level": "high",
                "requester_id": own,
            },
        ),
        403,
    )


def test_a_rule_never_reaches_a_level_only_admins_decide(asgi_server):
    admin = api(asgi_server, Role.ADMIN)
    refused = admin.patch(
        POLICY,
        json={"high_role": "admin", "auto_approve_enabled": True, "auto_approve_max_risk": "high"},
    )
    assert_refused(refused, 400)
    assert "auto_approve_max_risk" in refused.json()["error"]["details"]
    assert_refused(admin.patch(POLICY, json={"auto_approve_max_risk": "critical"}), 400)
    assert not ApprovalPolicy.objects.exists()


def test_below_admin_the_dashboard_pages_change_nothing(asgi_server):
    """The admin's policy form (add, change) and the approval queue page, which only decides:
    a POST naming policy fields there changes nothing."""
    form = {
        k: ("on" if v is True else "" if v in (False, None) else v) for k, v in WHOLE_POLICY.items()
    }
    for role in (Role.VIEWER, Role.OPERATOR):
        client = Client()
        client.force_login(user_create(role=role))
        assert client.post("/admin/approvals/approvalpolicy/add/", form).status_code == 403
        queue = client.post("/admin/approval-queue/", {**form, "enabled": ""})
        assert queue.status_code in (302, 403, 404)
    assert not ApprovalPolicy.objects.exists()
    approval_policy_update(escalation_seconds=60)
    for role in (Role.VIEWER, Role.OPERATOR):
        client = Client()
        client.force_login(user_create(role=role))
        changed = client.post("/admin/approvals/approvalpolicy/1/change/", {**form, "enabled": ""})
        assert changed.status_code == 403
    assert approval_policy().enabled
    assert ApprovalPolicyChange.objects.get().actor is None, "the platform's own change"
