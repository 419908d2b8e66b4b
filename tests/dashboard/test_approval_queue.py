"""The Approval queue page: server side (what each role sees and may do, the policy's refusals
as messages, the live part the page fetches) and in Chromium against a real daphne and Celery
worker: a request raised by a build appears in a second operator's queue without a reload,
with its context and a ticking countdown, and approving it there resumes the build; requests
made, decided and escalated elsewhere change the open queue in place."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.approvals.models import ApprovalRequest, ApprovalStatus, RiskLevel
from apps.approvals.services import (
    approval_decide,
    approval_policy_update,
    approval_request_create,
    approvals_escalate_overdue,
)
from apps.builds.models import BuildStatus
from tests.dashboard.build_data import CODE, PLAN, two_agents
from tests.dashboard.conftest import member
from tests.dashboard.test_build_pages import STREAMING, card, compose, open_build_page, start
from tests.support.browser import screenshot

QUEUE = "/admin/approval-queue/"


def asked(**fields) -> ApprovalRequest:
    return approval_request_create(
        **{
            "kind": "refund",
            "action": "Refund order 1001",
            "risk_level": RiskLevel.HIGH,
            "context": {"order_id": 1001, "cost": 500, "customer": {"id": 42}},
            **fields,
        }
    )


def logged_in(role: Role) -> tuple[Client, object]:
    user = member(role)
    client = Client()
    client.force_login(user)
    return client, user


@pytest.mark.django_db
class TestThePage:
    def test_cards_show_risk_context_requester_countdown_and_who_decides(self):
        asker = member(Role.OPERATOR, username="ann")
        high = asked(requested_by=asker, expires_in_seconds=600, reference="order:1001")
        critical = asked(risk_level=RiskLevel.CRITICAL, action="Delete the archive")
        operator, _ = logged_in(Role.OPERATOR)

        page = operator.get(QUEUE).content.decode()

        card_html = page[
            page.index(f'id="approval-{high.pk}"') : page.index(f'id="approval-{critical.pk}"')
        ]
        assert "risk high" in card_html and "asked by ann" in card_html
        assert "data-countdown datetime=" in card_html and "expires in 9" in card_html
        assert "<dt>order_id</dt><dd>1001</dd>" in card_html
        assert "<dt>customer</dt><dd>{&quot;id&quot;: 42}</dd>" in card_html
        assert "reference <code>order:1001</code>" in card_html
        assert "Decided by an operator or an admin" in card_html
        assert f'value="{high.pk}"' in card_html and 'value="approved"' in card_html
        rest = page[page.index(f'id="approval-{critical.pk}"') :]
        assert "Decided by an admin" in rest
        assert "Only an admin may decide a critical request." in rest.split("</li>")[0]
        assert f'name="approval" value="{critical.pk}"' not in page
        assert (
            "Who decides: low risk operators, medium operators, high operators, critical "
            "admins." in page
        )
        assert '<dd data-figure="pending">2</dd>' in page

    def test_a_viewer_reads_an_asker_waits_and_the_server_refuses_what_the_policy_does(self):
        asker, ann = logged_in(Role.OPERATOR)
        mine = asked(requested_by=ann)
        critical = asked(risk_level=RiskLevel.CRITICAL)
        viewer, _ = logged_in(Role.VIEWER)

        assert "Operators and admins decide these." in viewer.get(QUEUE).content.decode()
        assert viewer.post(QUEUE, {"approval": mine.pk, "decision": "approved"}).status_code == 403
        own_page = asker.get(QUEUE).content.decode()
        assert "You asked for it: someone else must decide." in own_page
        refused = asker.post(QUEUE, {"approval": mine.pk, "decision": "approved"}, follow=True)
        assert "Not decided: Nobody may decide their own request." in refused.content.decode()
        refused = asker.post(QUEUE, {"approval": critical.pk, "decision": "rejected"}, follow=True)
        assert "Not decided: Only an admin may decide a critical request." in (
            refused.content.decode()
        )
        for approval in (mine, critical):
            approval.refresh_from_db()
            assert approval.status == ApprovalStatus.PENDING

        admin, boss = logged_in(Role.ADMIN)
        done = admin.post(
            QUEUE,
            {"approval": critical.pk, "decision": "rejected", "notes": "  not now  "},
            follow=True,
        )
        assert "Rejected: Refund order 1001" in done.content.decode()
        critical.refresh_from_db()
        assert (critical.status, critical.decided_by, critical.decision_notes) == (
            ApprovalStatus.REJECTED,
            boss,
            "not now",
        )

    def test_the_live_part_history_figures_and_badge(self):
        admin, boss = logged_in(Role.ADMIN)
        waiting = asked()
        decided = asked(risk_level=RiskLevel.LOW, action="Resend the invoice")
        approval_decide(approval=decided, decision="approved", by=boss, notes="fine")
        ApprovalRequest.objects.filter(pk=decided.pk).update(
            created_at=timezone.now() - timedelta(seconds=95)
        )

        part = admin.get(QUEUE, {"part": "live"})
        html = part.content.decode()
        assert part.status_code == 200 and "<html" not in html and "sidebar" not in html
        assert f'id="approval-{waiting.pk}"' in html and f'id="approval-{decided.pk}"' not in html
        history = html[html.index('id="approval-history"') :]
        assert "Resend the invoice" in history and boss.username in history and "fine" in history
        assert '<dd data-figure="median">1 min 35 s</dd>' in html
        assert "By risk: low 1 · medium 0 · high 1 · critical 0." in html
        items = {
            i["title"]: i
            for g in admin.get("/admin/").context["sidebar_navigation"]
            for i in g["items"]
        }
        assert items["Approval queue"]["badge"] == "1"

    def test_the_policy_in_words(self):
        approval_policy_update(
            high_role="admin",
            auto_approve_enabled=True,
            escalation_seconds=1800,
            default_expiry_seconds=7200,
            expiry_outcome="approve",
        )
        admin, _ = logged_in(Role.ADMIN)
        page = admin.get(QUEUE).content.decode()
        assert (
            "high admins" in page
            and "Approved automatically: risk up to low and a cost up to 1." in page
        )
        assert "A request waits 2 h by default, then is approved." in page
        assert "Still waiting after 30 min, it goes to the admins." in page
        assert "Change the policy" in page
        viewer, _ = logged_in(Role.VIEWER)
        assert "Change the policy" not in viewer.get(QUEUE).content.decode()
        approval_policy_update(enabled=False)
        assert "Human-in-the-loop is switched off" in admin.get(QUEUE).content.decode()


# --- in the browser ----------------------------------------------------------------------------


def sidebar_entry(page: Page):
    return page.locator('#nav-sidebar-apps a[href="/admin/approval-queue/"]')


def open_queue(page: Page) -> None:
    page.goto(QUEUE)
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("window.stayed = true")


@pytest.mark.django_db(transaction=True)
def test_a_build_asks_and_another_operators_queue_shows_it_live_and_approving_resumes_it(
    logged_in_page, two_providers, upstream_a, celery_worker, browser_errors
):
    two_agents(two_providers)
    approval_policy_update(default_expiry_seconds=300)
    upstream_a.enqueue(*({"content": text, **STREAMING} for text in (PLAN, CODE)))
    queue: Page = logged_in_page(user=member(Role.OPERATOR, username="bob"))
    open_queue(queue)
    expect(queue.locator("#nothing-pending")).to_be_visible()
    expect(sidebar_entry(queue)).to_have_text(re.compile(r"Approval queue\s*$"))

    page: Page = logged_in_page(user=member(Role.OPERATOR, username="ann"))
    open_build_page(page)
    compose(
        page,
        "Gated",
        [
            {"name": "plan", "agent": "planner", "prompt": "Plan this: {input}"},
            {
                "name": "implement",
                "agent": "planner",
                "prompt": "Implement:\n{previous}",
                "requires_approval": True,
            },
        ],
    )
    build = start(page)
    implement = card(page, build, "implement")
    expect(implement.locator(".build-step-status")).to_have_text(
        "awaiting approval", timeout=30_000
    )
    page.evaluate("window.stayed = true")
    approval = build.steps.get(name="implement").approval
    assert approval is not None

    item = queue.locator(f"#approval-{approval.pk}")
    expect(item).to_be_visible(timeout=10_000)
    assert queue.evaluate("window.stayed") is True, "the queue was not reloaded"
    expect(queue.locator("#nothing-pending")).to_be_hidden()
    expect(item.locator(".build-card-title")).to_have_text(
        f"Run step 2 (implement) of build #{build.pk}: Gated"
    )
    expect(item).to_contain_text("risk medium")
    expect(item).to_contain_text("asked by ann")
    expect(item.locator(".approval-context")).to_contain_text("step_name")
    countdown = item.locator("time[data-countdown]")
    expect(countdown).to_have_text(re.compile(r"^expires in [34] min( \d+ s)?$"))
    before = countdown.text_content()
    expect(countdown).not_to_have_text(before or "", timeout=3_000)  # it ticks
    expect(queue.locator("#pending-count")).to_have_text("1")
    expect(sidebar_entry(queue)).to_have_text(re.compile(r"Approval queue\s*1\s*$"))
    screenshot(queue, "approval-queue-live")

    item.get_by_label("Notes").fill("Ship it.")
    item.get_by_role("button", name=f"Approve request #{approval.pk}").click()
    done = f"Approved: Run step 2 (implement) of build #{build.pk}"
    expect(queue.get_by_text(done)).to_be_visible()
    expect(queue.locator(f"#approval-{approval.pk}")).to_have_count(0)
    row = queue.locator(f'#approval-history tr[data-approval="{approval.pk}"]')
    expect(row).to_contain_text("bob")
    expect(row).to_contain_text("Ship it.")

    expect(implement.locator(".build-step-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("#build-status")).to_have_text("succeeded")
    assert page.evaluate("window.stayed") is True, "the build's page was not reloaded"
    build.refresh_from_db()
    assert build.status == BuildStatus.SUCCEEDED
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by.username, approval.decision_notes) == (
        ApprovalStatus.APPROVED,
        "bob",
        "Ship it.",
    )
    assert browser_errors.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_the_open_queue_follows_requests_made_decided_and_escalated_elsewhere(
    logged_in_page, browser_errors
):
    asker, admin = member(Role.OPERATOR, username="dave"), member(Role.ADMIN, username="eve")
    first = asked(requested_by=asker, action="Refund order 1001", expires_in_seconds=3600)
    queue: Page = logged_in_page(user=member(Role.OPERATOR, username="carl"))
    open_queue(queue)
    notes = queue.locator(f"#notes-{first.pk}")
    notes.fill("half-written")

    second = asked(
        requested_by=asker,
        action="Wipe the staging database",
        risk_level=RiskLevel.CRITICAL,
        context={"cost": 12.5, "env": "staging"},
        expires_in_seconds=60,
    )
    added = queue.locator(f"#approval-{second.pk}")
    expect(added).to_be_visible()
    expect(queue.locator("#pending-list > li")).to_have_count(2)
    expect(queue.locator("#pending-list > li").first).to_have_id(f"approval-{second.pk}")
    expect(added).to_contain_text("Only an admin may decide a critical request.")
    expect(added.locator("form")).to_have_count(0)
    expect(added.locator(".approval-context")).to_contain_text("staging")
    expect(queue.locator("#queue-announce")).to_have_text("New request: Wipe the staging database.")
    expect(sidebar_entry(queue)).to_have_text(re.compile(r"Approval queue\s*2\s*$"))
    expect(notes).to_have_value("half-written")
    screenshot(queue, "approval-queue-pending")

    approval_decide(approval=second, decision="rejected", by=admin, notes="Not today.")
    expect(added).to_have_count(0)
    row = queue.locator(f'#approval-history tr[data-approval="{second.pk}"]')
    expect(row).to_contain_text("eve")
    expect(row).to_contain_text("Not today.")
    expect(queue.locator('[data-figure="rejected"]')).to_have_text("1")
    expect(queue.locator("#pending-count")).to_have_text("1")
    expect(sidebar_entry(queue)).to_have_text(re.compile(r"Approval queue\s*1\s*$"))
    expect(notes).to_have_value("half-written")

    approval_policy_update(escalation_seconds=60)
    ApprovalRequest.objects.filter(pk=first.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    assert approvals_escalate_overdue() == 1
    escalated = queue.locator(f"#approval-{first.pk}")
    expect(escalated).to_contain_text("Only an admin may decide this request: it was escalated.")
    expect(escalated.locator(".pill", has_text="escalated")).to_be_visible()
    expect(queue.locator("#queue-announce")).to_contain_text("was escalated")
    assert queue.evaluate("window.stayed") is True, "the queue was not reloaded"
    screenshot(queue, "approval-queue-escalated")
    assert browser_errors.console_errors == []
