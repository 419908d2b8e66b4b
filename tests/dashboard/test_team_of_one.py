"""A lone admin's first day, in a real browser: they add a second person with a role through
the user form (one field, no groups picker), that person logs in and decides the admin's
request; or, with the policy's self-approval option, the admin decides their own low-risk
request (recorded as self-approved) and still not a riskier one, and composes a build whose
gated step they mark low risk, approve in the queue and see finish (a real Celery worker runs
it against the fake upstream)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.accounts.services import user_role
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import approval_policy_update, approval_request_create
from apps.builds.models import BuildStatus
from tests.dashboard.build_data import two_agents
from tests.dashboard.conftest import member
from tests.dashboard.test_admin_login import log_in
from tests.dashboard.test_build_pages import card, compose, open_build_page, start
from tests.support.browser import PASSWORD, screenshot

QUEUE = "/admin/approval-queue/"


def asked(by: User, risk: str, action: str) -> ApprovalRequest:
    return approval_request_create(
        kind="deploy", action=action, risk_level=risk, requested_by=by, expires_in_seconds=3600
    )


@pytest.mark.django_db(transaction=True)
def test_a_lone_admin_adds_a_second_person_who_logs_in_and_decides(
    logged_in_page, new_context, browser_errors
):
    solo = member(Role.ADMIN, username="solo")
    gate = asked(solo, RiskLevel.MEDIUM, "Deploy the release")
    page: Page = logged_in_page(user=solo)

    page.goto("/admin/auth/user/add/")
    expect(page.locator("#id_groups")).to_have_count(0)
    expect(page.locator("#id_user_permissions")).to_have_count(0)
    expect(page.locator("#id_is_superuser")).to_have_count(0)
    page.get_by_label("Username").fill("pat")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_label("Role").select_option("operator")
    screenshot(page, "user-add-with-role")
    page.locator("button[name='_save'], input[name='_save']").first.click()
    expect(page).to_have_url(re.compile(r"/admin/auth/user/(\d+/change/)?$"))
    pat = User.objects.get(username="pat")
    assert user_role(user=pat) == Role.OPERATOR and pat.is_staff
    page.goto(f"/admin/auth/user/{pat.pk}/change/")
    expect(page.get_by_label("Role")).to_have_value("operator")
    screenshot(page, "user-change-with-role")

    second = new_context().new_page()
    second.goto("/admin/")  # /admin/login/ itself lands elsewhere: issue 18's item 12, not ours
    log_in(second, "pat", PASSWORD)
    expect(second).to_have_url(re.compile(r"/admin/$"))
    second.goto(QUEUE)
    card = second.locator(f"#approval-{gate.pk}")
    card.get_by_label("Notes").fill("Checked with solo")
    card.get_by_role("button", name=re.compile("^Approve")).click()
    expect(second.locator("#approval-history")).to_contain_text("Deploy the release")
    screenshot(second, "approval-decided-by-second-person")

    gate.refresh_from_db()
    assert gate.status == ApprovalStatus.APPROVED and gate.decided_by == pat
    assert not gate.self_decided
    assert browser_errors.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_self_approval_lets_the_requester_decide_low_risk_only(logged_in_page, browser_errors):
    approval_policy_update(self_approve_low_risk=True)
    solo = member(Role.ADMIN, username="solo")
    low = asked(solo, RiskLevel.LOW, "Rotate the log files")
    medium = asked(solo, RiskLevel.MEDIUM, "Deploy the release")
    page: Page = logged_in_page(user=solo)

    page.goto(QUEUE)
    expect(page.locator(f"#approval-{medium.pk}")).to_contain_text(
        "You asked for it: someone else must decide."
    )
    expect(page.locator(f"#approval-{medium.pk} form")).to_have_count(0)
    own = page.locator(f"#approval-{low.pk}")
    expect(own).to_contain_text("the policy lets you decide it")
    screenshot(page, "approval-queue-self-approval")
    own.get_by_role("button", name=re.compile("^Approve")).click()

    history = page.locator("#approval-history")
    expect(history.locator(f"tr[data-approval='{low.pk}']")).to_contain_text("self-approved")
    screenshot(page, "approval-queue-self-approved")
    low.refresh_from_db()
    medium.refresh_from_db()
    assert low.status == ApprovalStatus.APPROVED and low.self_decided and low.decided_by == solo
    assert medium.status == ApprovalStatus.PENDING
    # A forged POST for the medium one is refused by the same policy.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        QUEUE,
        form={
            "csrfmiddlewaretoken": token,
            "approval": str(medium.pk),
            "decision": "approved",
        },
        headers={"Referer": page.url},
    )
    assert response.ok
    medium.refresh_from_db()
    assert medium.status == ApprovalStatus.PENDING and medium.decided_by is None
    assert browser_errors.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_a_lone_admin_passes_their_own_low_risk_build_gate_and_sees_the_build_finish(
    logged_in_page, two_providers, upstream_a, celery_worker, browser_errors
):
    approval_policy_update(self_approve_low_risk=True)
    two_agents(two_providers)
    upstream_a.enqueue({"content": "Release notes for v2"})
    solo = member(Role.ADMIN, username="solo")
    page: Page = logged_in_page(user=solo)

    open_build_page(page)
    risk = page.locator("[data-step-form]").first.get_by_label("Approval risk")
    expect(risk).to_be_disabled()  # it counts only with "Requires approval"
    step = {"name": "notes", "agent": "planner", "prompt": "Notes for {input}"}
    compose(page, "Ship v2", [{**step, "requires_approval": True}])
    expect(risk).to_be_enabled()
    expect(risk).to_have_value(RiskLevel.MEDIUM)
    risk.select_option(label="Low")
    screenshot(page, "build-form-low-risk-gate")
    build = start(page)
    notes = card(page, build, "notes")
    expect(notes.locator(".build-step-status")).to_have_text("awaiting approval", timeout=30_000)
    expect(notes).to_contain_text("risk low")
    expect(notes).to_contain_text("the policy lets you approve it yourself")
    screenshot(page, "build-own-low-risk-gate")
    gate = build.steps.get().approval
    assert gate is not None and gate.risk_level == RiskLevel.LOW and gate.requested_by == solo

    page.goto(QUEUE)
    own = page.locator(f"#approval-{gate.pk}")
    expect(own).to_contain_text("the policy lets you decide it")
    own.get_by_label("Notes").fill("My own release notes")
    own.get_by_role("button", name=re.compile("^Approve")).click()
    decided = page.locator("#approval-history").locator(f"tr[data-approval='{gate.pk}']")
    expect(decided).to_contain_text("self-approved")
    screenshot(page, "approval-queue-own-build-gate")

    page.goto(f"/admin/build/{build.pk}/")
    expect(page.locator("#build-status")).to_have_text("succeeded", timeout=30_000)
    expect(card(page, build, "notes").locator(".rendered-output")).to_contain_text(
        "Release notes for v2"
    )
    screenshot(page, "build-own-low-risk-gate-finished")
    build.refresh_from_db()
    gate.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED, build.error
    assert gate.status == ApprovalStatus.APPROVED and gate.self_decided and gate.decided_by == solo
    assert browser_errors.console_errors == []
