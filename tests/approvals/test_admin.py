"""The approvals queue in the admin: read-only requests with their audit trail, and Approve /
Reject through ``approval_decide``, whose refusals show as messages."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.approvals.models import (
    ApprovalPolicy,
    ApprovalPolicyChange,
    ApprovalRequest,
    ApprovalStatus,
    RiskLevel,
)
from apps.approvals.services import approval_decide, approval_request_create
from tests.support.factories import user_create

pytestmark = pytest.mark.django_db

APPROVALS = "/admin/approvals/approvalrequest/"


def request_made(**fields) -> ApprovalRequest:
    return approval_request_create(
        **{"kind": "refund", "action": "Refund $500", "risk_level": RiskLevel.HIGH, **fields}
    )


def logged_in(role: Role):
    user = user_create(role=role)
    client = Client()
    client.force_login(user)
    return client, user


def act(client: Client, action: str, *approvals: ApprovalRequest):
    selected = [approval.pk for approval in approvals]
    return client.post(APPROVALS, {"action": action, "_selected_action": selected}, follow=True)


def texts(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_the_list_filters_and_the_page_shows_the_audit_trail(admin_client):
    refund = request_made(reference="order:1001", context={"order_id": 1001})
    deploy = request_made(
        kind="deploy", action="Deploy to production", risk_level=RiskLevel.CRITICAL
    )
    approval_decide(
        approval=deploy,
        decision="rejected",
        by=user_create(role=Role.ADMIN),
        notes="not on a Friday",
    )

    listing = admin_client.get(APPROVALS).content.decode()
    assert "Refund $500" in listing and "Deploy to production" in listing
    assert "Critical" in listing and "Rejected" in listing
    pending = admin_client.get(APPROVALS, {"status": "pending"}).content.decode()
    assert "Refund $500" in pending and "Deploy to production" not in pending
    critical = admin_client.get(APPROVALS, {"risk_level": "critical"}).content.decode()
    assert "Deploy to production" in critical and "Refund $500" not in critical
    found = admin_client.get(APPROVALS, {"q": "order:1001"}).content.decode()
    assert "Refund $500" in found and "Deploy to production" not in found

    page = admin_client.get(f"{APPROVALS}{deploy.pk}/change/").content.decode()
    assert "not on a Friday" in page and "requested" in page and "rejected" in page
    assert 'name="action"' not in page, "a request is not edited"
    assert admin_client.get(f"{APPROVALS}add/").status_code == 403
    assert "1001" in admin_client.get(f"{APPROVALS}{refund.pk}/change/").content.decode()


def test_approve_goes_through_the_policy_and_says_what_it_refused(admin_client, admin_user):
    theirs = request_made(requested_by=user_create(role=Role.OPERATOR))
    own = request_made(requested_by=admin_user)
    decided = request_made()
    approval_decide(approval=decided, decision="rejected", by=user_create(role=Role.OPERATOR))

    response = act(admin_client, "approve_selected", theirs, own, decided)

    messages = texts(response)
    assert f"#{theirs.pk} approved." in messages
    assert f"#{own.pk}: Nobody may decide their own request." in messages
    assert f"#{decided.pk}: This request was already rejected." in messages
    statuses = dict(ApprovalRequest.objects.values_list("pk", "status"))
    assert statuses == {
        theirs.pk: ApprovalStatus.APPROVED,
        own.pk: ApprovalStatus.PENDING,
        decided.pk: ApprovalStatus.REJECTED,
    }
    theirs.refresh_from_db()
    assert theirs.decided_by == admin_user
    assert list(theirs.audit.values_list("event", flat=True)) == ["requested", "approved"]


def test_operators_decide_but_not_critical_requests_viewers_do_not_decide():
    operator, _ = logged_in(Role.OPERATOR)
    high, critical = request_made(), request_made(risk_level=RiskLevel.CRITICAL)

    response = act(operator, "reject_selected", high, critical)

    assert f"#{critical.pk}: Only an admin may decide a critical request." in texts(response)
    high.refresh_from_db()
    critical.refresh_from_db()
    assert (high.status, critical.status) == (ApprovalStatus.REJECTED, ApprovalStatus.PENDING)

    viewer, _ = logged_in(Role.VIEWER)
    assert viewer.get(APPROVALS).status_code == 200
    assert viewer.get(f"{APPROVALS}{critical.pk}/change/").status_code == 200
    act(viewer, "approve_selected", critical)
    denied = viewer.post(f"{APPROVALS}{critical.pk}/approve/", {"_form_submitted": "True"})
    assert denied.status_code == 403
    critical.refresh_from_db()
    assert critical.status == ApprovalStatus.PENDING


def test_the_page_decides_one_request_with_notes(admin_client, admin_user):
    approval = request_made(requested_by=user_create(role=Role.OPERATOR))
    url = f"{APPROVALS}{approval.pk}/reject/"

    dialog = admin_client.get(url)
    assert dialog.status_code == 200 and "Reject this request?" in dialog.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING

    response = admin_client.post(
        url,
        {"_form_submitted": "True", "notes": "Customer withdrew."},
        headers={"HX-Request": "true"},
    )

    assert response.headers["HX-Redirect"] == f"{APPROVALS}{approval.pk}/change/"
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REJECTED
    assert approval.decision_notes == "Customer withdrew." and approval.decided_by == admin_user
    again = admin_client.post(
        f"{APPROVALS}{approval.pk}/approve/", {"_form_submitted": "True"}, follow=True
    )
    assert f"#{approval.pk}: This request was already rejected." in texts(again)


POLICY = "/admin/approvals/approvalpolicy/"


def policy_form(**fields) -> dict:
    return {
        "enabled": "on",
        "low_role": "operator",
        "medium_role": "operator",
        "high_role": "operator",
        "auto_approve_max_risk": "low",
        "auto_approve_max_cost": "1",
        "expiry_outcome": "reject",
        "escalation_seconds": "3600",
        "default_expiry_seconds": "",
        **fields,
    }


def test_only_admins_change_the_policy_in_the_admin_and_each_change_is_kept():
    operator, _ = logged_in(Role.OPERATOR)
    assert operator.get(POLICY).status_code == 200, "operators still read it"
    assert operator.get(f"{POLICY}add/").status_code == 403
    assert operator.post(f"{POLICY}add/", policy_form(enabled="")).status_code == 403
    assert not ApprovalPolicy.objects.exists()

    admin, boss = logged_in(Role.ADMIN)
    added = admin.post(f"{POLICY}add/", policy_form(high_role="admin", escalation_seconds="60"))
    assert added.status_code == 302, added.context["adminform"].form.errors
    policy = ApprovalPolicy.objects.get()
    assert (policy.pk, policy.high_role, policy.escalation_seconds) == (1, "admin", 60)
    assert admin.get(f"{POLICY}add/").status_code == 403, "one row"

    for who in (operator, logged_in(Role.VIEWER)[0]):
        assert who.get(f"{POLICY}1/change/").status_code == 200
        assert who.post(f"{POLICY}1/change/", policy_form(enabled="")).status_code == 403
    assert ApprovalPolicy.objects.get().enabled

    refused = admin.post(
        f"{POLICY}1/change/", policy_form(high_role="operator", medium_role="admin")
    )
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors == {
        "high_role": ["A riskier level may not need a weaker role than a safer one."]
    }
    form = policy_form(expiry_outcome="approve", escalation_seconds="60")
    changed = admin.post(f"{POLICY}1/change/", form)
    assert changed.status_code == 302
    policy.refresh_from_db()
    assert (policy.high_role, policy.expiry_outcome) == ("operator", "approve")
    assert admin.post(f"{POLICY}1/delete/", {"post": "yes"}).status_code == 403

    kept = list(ApprovalPolicyChange.objects.order_by("id").values_list("actor", "changes"))
    assert kept == [
        (boss.pk, {"high_role": ["operator", "admin"], "escalation_seconds": [3600, 60]}),
        (boss.pk, {"high_role": ["admin", "operator"], "expiry_outcome": ["reject", "approve"]}),
    ]
    page = admin.get(f"{POLICY}1/change/").content.decode()
    assert (
        f"{boss.username} · high_role: admin → operator; expiry_outcome: reject → approve" in page
    )
    trail_page = operator.get("/admin/approvals/approvalpolicychange/")
    assert trail_page.status_code == 200 and "escalation_seconds: 3600 → 60" in (
        trail_page.content.decode()
    )
    change = ApprovalPolicyChange.objects.first()
    assert (
        admin.post(
            f"/admin/approvals/approvalpolicychange/{change.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert ApprovalPolicyChange.objects.count() == 2


def test_requests_and_their_trail_are_never_deleted(admin_client):
    approval = request_made()
    response = admin_client.post(f"{APPROVALS}{approval.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert ApprovalRequest.objects.filter(pk=approval.pk).exists()
    entry = approval.audit.get()
    with pytest.raises(ValueError, match="never changed"):
        entry.notes = "rewritten"
        entry.save()
    with pytest.raises(ValueError, match="never deleted"):
        entry.delete()
