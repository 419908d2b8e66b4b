"""The Experiments page in Chromium, against a real daphne and the fake upstreams: an
experiment with two variants, one on each provider, is created and started from its page, its
request counts move without a reload as requests name it through /v1, and it is stopped from
the page."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Role
from apps.experiments.hooks import snapshot_clear
from apps.experiments.models import (
    Assignment,
    CanaryStatus,
    Experiment,
    ExperimentStatus,
    TrackedEvent,
    TrackedEventKind,
    VariantKind,
)
from apps.experiments.services import canary_advance, canary_create, experiment_create
from apps.providers.models import CallStatus, LlmCall
from tests.dashboard.conftest import call_record, member
from tests.support.browser import screenshot
from tests.support.providers import deploy

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "cheaper model"
HELLO = [{"role": "user", "content": "say hello please"}]


@pytest.fixture(autouse=True)
def fresh_hook_cache():
    snapshot_clear()
    yield
    snapshot_clear()


@pytest.fixture
def treatment_model(two_providers):
    """Public model 'chat-b': fake-model-2, on provider b only."""
    return deploy(two_providers["b"], name="fake-model-2", aliases=["chat-b"])


def canary_experiment() -> Experiment:
    """An experiment whose canary took a step and was rolled back, with call records on both
    variants (the pages' screenshots and accessibility checks show it)."""
    experiment = experiment_create(
        name="canary of chat-b",
        metric="accuracy",
        hypothesis="chat-b answers as well.",
        variants=[
            {"name": "control", "type": "control", "traffic_percentage": 100, "config": {}},
            {
                "name": "chat-b",
                "type": "treatment",
                "traffic_percentage": 0,
                "config": {"model": "chat-b", "temperature": 0.3},
            },
        ],
    )
    rollout = canary_create(experiment=experiment, treatment="chat-b", min_requests=1)
    experiment.refresh_from_db()
    calls = []
    for variant in experiment.variants.all():
        failing = variant.name == "chat-b"
        for number in range(6):
            call = call_record(
                at=timezone.now(),
                latency_ms=200 + number * 10,
                status=CallStatus.ERROR if failing and number < 3 else CallStatus.SUCCESS,
            )
            call.experiment_variant_id = variant.pk
            calls.append(call)
    LlmCall.objects.bulk_create(calls)
    assert canary_advance(rollout=rollout) == CanaryStatus.ROLLED_BACK
    control = experiment.variants.get(name="control")
    later = [call_record(at=timezone.now(), latency_ms=180) for _ in range(4)]
    for call in later:
        call.experiment_variant_id = control.pk
    LlmCall.objects.bulk_create(later)
    experiment.refresh_from_db()
    return experiment


def requests_of(page: Page, variant: str):
    return page.locator(f'.exp-figures tr[data-variant="{variant}"] [data-figure="requests"]')


def test_create_start_watch_the_figures_move_and_stop(
    logged_in_page,
    treatment_model,
    upstream_a,
    upstream_b,
    gateway,
    recorded_calls,
    browser_errors,
):
    page: Page = logged_in_page(user=member(Role.OPERATOR))
    page.goto("/admin/experiment-board/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#no-experiments")).to_be_visible()

    page.get_by_label("Name", exact=True).first.fill(NAME)
    page.get_by_label("Metric").fill("accuracy")
    page.get_by_label("Hypothesis").fill("The smaller model answers as well for less.")
    control, treatment = (page.locator("[data-variant-form]").nth(i) for i in (0, 1))
    expect(control.get_by_label("Name")).to_have_value("control")
    control.get_by_label("Provider").select_option("a")
    treatment.get_by_label("Name").fill("small")
    treatment.get_by_label("Model").select_option("chat-b")
    treatment.get_by_label("Temperature").fill("0.3")
    # A third row, added and removed again: the rows are renumbered as the server expects.
    page.get_by_role("button", name="Add a variant").click()
    expect(page.locator("[data-variant-form]").nth(2).locator("legend")).to_have_text("Variant 3")
    page.get_by_role("button", name="Remove variant 3").click()
    expect(page.locator("[data-variant-form]")).to_have_count(2)
    screenshot(page, "experiment-form")

    page.get_by_role("button", name="Create the experiment").click()
    expect(page).to_have_url(re.compile(r"/admin/experiment-board/\d+/$"))
    experiment = Experiment.objects.get(name=NAME)
    assert experiment.metric == "accuracy" and experiment.status == ExperimentStatus.DRAFT
    variants = {v.name: v for v in experiment.variants.all()}
    assert (variants["control"].kind, variants["control"].provider) == (VariantKind.CONTROL, "a")
    small = variants["small"]
    assert (small.kind, small.model, small.temperature) == ("treatment", "chat-b", 0.3)
    expect(page.get_by_text(f"Experiment {NAME} created")).to_be_visible()
    expect(page.locator("#experiment-status")).to_have_text("draft")

    page.get_by_role("button", name="Start the experiment").click()
    expect(page.locator("#experiment-status")).to_have_text("running")
    expect(requests_of(page, "control")).to_have_text("0")
    page.evaluate("window.stayed = true")

    users = [f"u{i}" for i in range(24)]
    for user in users:
        gateway.chat.completions.create(
            model="chat", messages=HELLO, user=user, extra_body={"experiment": NAME}
        )
    on_b = upstream_b.stats()["requests"]
    assert upstream_a.stats()["requests"] + on_b == len(users) and 0 < on_b < len(users)
    recorded_calls(len(users))  # stored as a worker does; the page is not told
    expect(requests_of(page, "small")).to_have_text(str(on_b), timeout=20_000)
    expect(requests_of(page, "control")).to_have_text(str(len(users) - on_b))
    figures = page.locator(".exp-figures")
    expect(figures.locator('tr[data-variant="small"] td[data-label="Success"]')).to_have_text(
        "100.0%"
    )
    expect(page.locator("[data-figure='users']").first).to_have_text(str(len(users)))
    expect(page.locator("#experiment-health")).to_contain_text("split healthy")
    expect(page.locator("#experiment-verdict")).to_contain_text("guardrail")
    assert page.evaluate("window.stayed") is True, "the figures moved without a reload"
    screenshot(page, "experiment-running")

    page.get_by_role("button", name="Stop the experiment").click()
    expect(page.locator("#experiment-status")).to_have_text("stopped")
    expect(page.locator("#experiment-decision")).to_contain_text("no winner")
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED and experiment.winner is None
    page.get_by_role("link", name="All experiments").click()
    row = page.locator(f'.exp-list tr[data-experiment="{experiment.pk}"]')
    expect(row.locator(".exp-status")).to_have_text("stopped")
    screenshot(page, "experiment-board")

    # Stopped, it no longer changes what requests get.
    answer = gateway.chat.completions.create(
        model="chat", messages=HELLO, user="u1", extra_body={"experiment": NAME}
    )
    assert answer.model == "fake-model"
    assert browser_errors.console_errors == []


def test_a_viewer_reads_but_may_not_create_start_or_stop(
    logged_in_page, client_as, browser_errors, two_providers
):
    experiment = experiment_create(
        name="read only",
        variants=[
            {"name": "control", "type": "control", "traffic_percentage": 50, "config": {}},
            {"name": "b", "type": "treatment", "traffic_percentage": 50, "config": {}},
        ],
    )
    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto("/admin/experiment-board/")
    expect(page.locator("#experiment-not-allowed")).to_contain_text("not create one")
    expect(page.get_by_role("button", name="Create the experiment")).to_be_disabled()
    page.get_by_role("link", name="read only").click()
    expect(page.locator("#experiment-status")).to_have_text("draft")
    expect(page.locator("#experiment-start")).to_have_count(0)
    assert browser_errors.console_errors == []

    viewer = client_as(Role.VIEWER)
    url = f"/admin/experiment-board/{experiment.pk}/"
    assert viewer.post(url, {"action": "start"}).status_code == 403
    assert viewer.post("/admin/experiment-board/", {"name": "x"}).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_a_rolled_back_canary_shows_its_steps_and_why(client_as):
    experiment = canary_experiment()
    page = client_as(Role.VIEWER).get(f"/admin/experiment-board/{experiment.pk}/figures/")
    html = page.content.decode()
    assert "Rolled back" in html and "error rate 50.0% against the control&#x27;s 0.0%" in html
    assert page.context["phases"][0].number == 2
    assert [row["requests"] for row in page.context["rows"]] == [4, 0]  # phase 2's only


def test_the_page_shows_feedback_means_and_each_earlier_phases_figures(
    logged_in_page, browser_errors
):
    experiment = canary_experiment()  # phase 1: 6 calls a side; the rollback's phase 2: 4
    control, treatment = (experiment.variants.get(name=name) for name in ("control", "chat-b"))
    for phase, variant, scores in [(1, control, [4, 5]), (1, treatment, [2]), (2, control, [3])]:
        for n, score in enumerate(scores):
            user = f"{variant.name}-{phase}-{n}"
            Assignment.objects.create(
                experiment=experiment, phase=phase, variant=variant, user_id=user
            )
            TrackedEvent.objects.create(
                experiment=experiment,
                phase=phase,
                variant=variant,
                user_id=user,
                kind=TrackedEventKind.FEEDBACK,
                value=score,
            )

    page: Page = logged_in_page(user=member(Role.VIEWER))
    page.goto(f"/admin/experiment-board/{experiment.pk}/")
    # Once connected the page fetches its figures again (for events missed while it connected):
    # let that land before reading them, so no element read here is swapped out under the test.
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=15_000)
    page.wait_for_load_state("networkidle")

    def figure(scope, variant: str, name: str):
        return scope.locator(f'tr[data-variant="{variant}"] [data-figure="{name}"]')

    current = page.locator("#current-figures")
    expect(current.get_by_role("heading", level=2)).to_contain_text("phase 2")
    expect(figure(current, "control", "requests")).to_have_text("4")
    expect(figure(current, "control", "feedback")).to_have_text("3.00 (1 score)")
    expect(figure(current, "chat-b", "feedback")).to_have_text("—")
    expect(current.get_by_role("columnheader", name="Feedback mean (scores)")).to_be_visible()
    earlier = page.locator('.exp-earlier[data-phase="1"]')
    expect(earlier.get_by_role("heading", level=3)).to_contain_text("Figures of phase 1")
    expect(earlier.get_by_role("heading", level=3)).to_contain_text("3 users")
    expect(figure(earlier, "control", "requests")).to_have_text("6")
    expect(figure(earlier, "chat-b", "requests")).to_have_text("6")
    expect(figure(earlier, "control", "feedback")).to_have_text("4.50 (2 scores)")
    expect(figure(earlier, "chat-b", "feedback")).to_have_text("2.00 (1 score)")
    expect(earlier.locator('tr[data-variant="chat-b"] td[data-label="Success"]')).to_have_text(
        "50.0%"
    )
    expect(page.locator(".exp-earlier")).to_have_count(1)
    earlier.scroll_into_view_if_needed()
    screenshot(page, "experiment-phases")
    assert browser_errors.console_errors == []


def test_a_form_whose_shares_do_not_add_up_is_shown_again_with_the_reason(client_as):
    data = {
        "name": "skewed", "metric": "conversion", "user_percentage": "100", "hypothesis": "",
        "variants-TOTAL_FORMS": "2", "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2", "variants-MAX_NUM_FORMS": "10",
        "variants-0-name": "control", "variants-0-type": "control",
        "variants-0-traffic_percentage": "60",
        "variants-1-name": "b", "variants-1-type": "treatment",
        "variants-1-traffic_percentage": "30",
    }  # fmt: skip
    response = client_as(Role.OPERATOR).post("/admin/experiment-board/", data)
    assert response.status_code == 200
    assert "The traffic percentages add up to 90, not 100." in response.content.decode()
    assert not Experiment.objects.exists()
